"""Reading what a Messages request (keystile's hub form) asks for, once for every format it becomes.

Chat Completions, Responses and Gemini each put the same hub fields — the client's tools, the
tool choice, the effort and the output format — into their own words. Reading and checking
those fields lives here, so each rule (what counts as a server tool, which efforts exist, what
an output format must be) is written once and every upstream format gets the same 400 for the
same mistake.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from keystile.translate.invalid_request import expect_dict, expect_list, expect_str, invalid, optional_bool, optional_str

log = logging.getLogger("keystile.translate")

EFFORTS = ("low", "medium", "high", "xhigh", "max")
"""Anthropic's ``output_config.effort`` levels."""

SERVER_TOOL_BLOCKS = frozenset(
    {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)
"""Content blocks of Anthropic's server-side tools: history that a model of another API cannot be shown."""


@dataclass(frozen=True, slots=True)
class HubTool:
    """A tool the client runs (Anthropic's server tools are not among them)."""

    name: str
    description: str | None
    schema: dict
    """JSON Schema of the tool's input (an empty object schema when the client gave none)."""
    strict: bool | None


@dataclass(frozen=True, slots=True)
class HubToolChoice:
    kind: str
    """``auto``, ``any`` (some tool must be called), ``none`` or ``tool`` (``name`` must be)."""
    name: str | None
    parallel: bool
    """False when the client set ``disable_parallel_tool_use``."""


def hub_tools(tools: object, target: str) -> list[HubTool]:
    """The client tools of a Messages request. Anthropic's server tools (``web_search_…``,
    ``bash_…``, ``code_execution_…``) have no equivalent in ``target``'s format and are dropped."""
    if tools is None:
        return []
    out = []
    for i, tool in enumerate(expect_list(tools, "tools")):
        at = f"tools[{i}]"
        tool = expect_dict(tool, at)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            log.debug("anthropic→%s request: dropping server tool %r (%s): no equivalent", target, tool.get("name"), kind)
            continue
        schema = tool.get("input_schema")
        strict = tool.get("strict")
        out.append(
            HubTool(
                expect_str(tool.get("name"), f"{at}.name"),
                optional_str(tool.get("description"), f"{at}.description") or None,
                {"type": "object", "properties": {}} if schema is None else expect_dict(schema, f"{at}.input_schema"),
                strict if isinstance(strict, bool) else None,
            )
        )
    return out


def hub_tool_choice(choice: object, tool_names: set[str], target: str) -> HubToolChoice | None:
    """The request's ``tool_choice``; None when there is none, or when it names a tool that was
    not carried over (a server tool) — then the model chooses."""
    if choice is None:
        return None
    choice = expect_dict(choice, "tool_choice")
    kind = choice.get("type")
    if kind not in ("auto", "any", "none", "tool"):
        raise invalid(f"tool_choice.type: unsupported value {kind!r}"[:200], "tool_choice.type")
    parallel = not optional_bool(choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use")
    name = None
    if kind == "tool":
        name = expect_str(choice.get("name"), "tool_choice.name")
        if name not in tool_names:
            log.debug("anthropic→%s request: tool_choice names %r, which was not carried over; dropping it", target, name)
            return None
    return HubToolChoice(kind, name, parallel)


def hub_output_config(output_config: object) -> tuple[str | None, dict | None]:
    """(``output_config.effort``, the JSON Schema of ``output_config.format``), each None if absent."""
    if output_config is None:
        return None, None
    output_config = expect_dict(output_config, "output_config")
    effort = optional_str(output_config.get("effort"), "output_config.effort")
    if effort is not None and effort not in EFFORTS:
        raise invalid(f"output_config.effort: unsupported value {effort!r}"[:200], "output_config.effort")
    schema = None
    fmt = output_config.get("format")
    if fmt is not None:
        fmt = expect_dict(fmt, "output_config.format")
        if fmt.get("type") != "json_schema":
            raise invalid("output_config.format.type: expected 'json_schema'", "output_config.format.type")
        schema = expect_dict(fmt.get("schema"), "output_config.format.schema")
    return effort, schema


def search_result_text(block: dict, at: str) -> str:
    """A ``search_result`` block as plain text (title, source, then each text), for APIs without one."""
    lines = [value for value in (block.get("title"), block.get("source")) if isinstance(value, str) and value]
    for i, inner in enumerate(expect_list(block.get("content"), f"{at}.content")):
        inner = expect_dict(inner, f"{at}.content[{i}]")
        lines.append(expect_str(inner.get("text"), f"{at}.content[{i}].text"))
    return "\n".join(lines)


def content_source_text(source: dict, at: str) -> str:
    """A document whose source is ``{"type": "content"}``: its text blocks, one paragraph each."""
    texts = []
    for i, inner in enumerate(expect_list(source.get("content"), f"{at}.source.content")):
        inner = expect_dict(inner, f"{at}.source.content[{i}]")
        if inner.get("type") == "text":
            texts.append(expect_str(inner.get("text"), f"{at}.source.content[{i}].text"))
    return "\n\n".join(texts)
