"""Responses tools ⇄ Anthropic tools, and the name map that turns Claude's tool calls back.

Anthropic has one kind of client tool: a name, a description and a JSON input schema. The
Responses API has several, so the mapping is kept per request (``ToolNames``), and the
response translators use it to give each ``tool_use`` block back its Responses shape:

- ``function`` → the same tool (``strict`` is dropped: Anthropic's strict tools need a beta).
- ``namespace`` (Codex groups tools this way: ``multi_agent_v1`` holding ``spawn_agent`` …)
  → each inner tool, flattened under the name ``<namespace>__<name>``; Claude's call comes
  back as a ``function_call`` (or ``custom_tool_call``) with ``namespace`` and ``name`` split
  again. A flattened name that breaks Anthropic's ``^[a-zA-Z0-9_-]{1,64}$`` is shortened
  with a hash suffix (the map, not the name, is what translates back). The namespace's own
  description is not repeated on every inner tool.
- ``custom`` (Codex's freeform ``apply_patch``, ``exec``: the model writes plain text, often
  constrained by a Lark or regex grammar) → a tool taking ``{"input": string}``; the grammar
  is appended to the description so Claude knows the format. The call comes back as a
  ``custom_tool_call`` whose ``input`` is that string.
- ``local_shell`` (Codex's older shell tool) → a ``local_shell`` tool taking the exec
  action's fields; the call comes back as a ``local_shell_call``.
- Tools OpenAI runs itself (``web_search``, ``file_search``, ``code_interpreter``,
  ``image_generation``, ``mcp``, ``computer_use``, ``tool_search``, ``shell``,
  ``apply_patch``) have no Anthropic client-tool equivalent and are dropped (debug log).
- Tools from ``additional_tools`` input items (Codex's built-in OpenAI provider sends them
  there) count as if they were in ``tools``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from keystile.errors import GatewayError
from keystile.translate.invalid_request import expect_dict, expect_list, expect_str, invalid, optional_str

log = logging.getLogger("keystile.translate")

SEPARATOR = "__"
_VALID_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")

FUNCTION, CUSTOM, LOCAL_SHELL = "function", "custom", "local_shell"

_LOCAL_SHELL_SCHEMA = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "description": "The command and its arguments (argv)."},
        "working_directory": {"type": "string"},
        "timeout_ms": {"type": "integer"},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["command"],
}


@dataclass(frozen=True, slots=True)
class ClientTool:
    """The Responses tool an Anthropic tool name stands for."""

    kind: str  # FUNCTION, CUSTOM or LOCAL_SHELL
    name: str
    namespace: str | None = None


class ToolNames:
    """Anthropic tool name ⇄ Responses tool, for one request's tools."""

    __slots__ = ("_by_anthropic", "_to_anthropic")

    def __init__(self) -> None:
        self._by_anthropic: dict[str, ClientTool] = {}
        self._to_anthropic: dict[tuple[str | None, str], str] = {}

    def add(self, tool: ClientTool, at: str) -> str:
        name = anthropic_tool_name(tool.name, tool.namespace)
        if name in self._by_anthropic:
            raise invalid(f"{at}: a second tool is named {name!r}"[:200], at)
        self._by_anthropic[name] = tool
        self._to_anthropic[(tool.namespace, tool.name)] = name
        return name

    def client_tool(self, anthropic_name: str) -> ClientTool:
        """What a ``tool_use`` block's name stands for (a plain function if it is unknown)."""
        tool = self._by_anthropic.get(anthropic_name)
        return tool if tool is not None else ClientTool(FUNCTION, anthropic_name)

    def anthropic_name(self, name: str, namespace: str | None = None) -> str:
        known = self._to_anthropic.get((namespace, name))
        return known if known is not None else anthropic_tool_name(name, namespace)

    def __contains__(self, anthropic_name: str) -> bool:
        return anthropic_name in self._by_anthropic


def anthropic_tool_name(name: str, namespace: str | None = None) -> str:
    if not namespace:
        return name  # the client's own name, untouched (OpenAI and Anthropic share the rules)
    joined = namespace + SEPARATOR + name
    if _VALID_NAME.fullmatch(joined):
        return joined
    digest = hashlib.sha256(joined.encode()).hexdigest()[:8]
    return _INVALID_CHARS.sub("_", joined)[:55] + "_" + digest


def convert_tools(tools: object, extra: list[tuple[list, str]]) -> tuple[list[dict], ToolNames]:
    """Responses ``tools`` (plus ``additional_tools`` items: (tools, where)) → Anthropic tools.

    Raises ``GatewayError(INVALID_REQUEST)`` naming the field for malformed tools.
    """
    converted: list[dict] = []
    return converted, _walk(tools, extra, converted)


def tool_names(request: object) -> ToolNames:
    """The name map of an already translated request; never raises (malformed → empty map).

    Only names are collected (no schemas), so answering costs little on top of the request.
    """
    if not isinstance(request, dict):
        return ToolNames()
    try:
        return _walk(request.get("tools"), additional_tools(request.get("input")), None)
    except GatewayError:
        return ToolNames()


def additional_tools(items: object) -> list[tuple[list, str]]:
    """The tool lists of ``additional_tools`` input items, with where each sits."""
    if not isinstance(items, list):
        return []
    found = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "additional_tools":
            found.append((expect_list(item.get("tools"), f"input[{i}].tools"), f"input[{i}].tools"))
    return found


def _walk(tools: object, extra: list[tuple[list, str]], out: list[dict] | None) -> ToolNames:
    names = ToolNames()
    groups = [] if tools is None else [(expect_list(tools, "tools"), "tools")]
    for group, where in groups + extra:
        for i, tool in enumerate(group):
            _convert_tool(expect_dict(tool, f"{where}[{i}]"), f"{where}[{i}]", None, names, out)
    return names


def _convert_tool(tool: dict, at: str, namespace: str | None, names: ToolNames, out: list[dict] | None) -> None:
    """Register ``tool``'s name; with ``out``, also append its Anthropic form."""
    kind = tool.get("type")
    if kind in ("function", "custom"):
        name = expect_str(tool.get("name"), f"{at}.name")
        anthropic_name = names.add(ClientTool(FUNCTION if kind == "function" else CUSTOM, name, namespace), at)
        if out is None:
            return
        converted = {"name": anthropic_name}
        description = optional_str(tool.get("description"), f"{at}.description")
        if kind == "function":
            _describe(converted, description)
            converted["input_schema"] = _schema(tool.get("parameters"), f"{at}.parameters")
        else:
            _describe(converted, (description or "") + _grammar_note(tool.get("format"), f"{at}.format"))
            converted["input_schema"] = {
                "type": "object",
                "properties": {"input": {"type": "string", "description": "The tool's input: plain text, not JSON."}},
                "required": ["input"],
                "additionalProperties": False,
            }
        out.append(converted)
    elif kind == "namespace" and namespace is None:
        inner_namespace = expect_str(tool.get("name"), f"{at}.name")
        for j, inner in enumerate(expect_list(tool.get("tools"), f"{at}.tools")):
            inner = expect_dict(inner, f"{at}.tools[{j}]")
            if inner.get("type") not in ("function", "custom"):
                raise invalid(f"{at}.tools[{j}].type: a namespace holds function and custom tools only", f"{at}.tools[{j}].type")
            _convert_tool(inner, f"{at}.tools[{j}]", inner_namespace, names, out)
    elif kind == "local_shell":
        anthropic_name = names.add(ClientTool(LOCAL_SHELL, "local_shell"), at)
        if out is not None:
            out.append(
                {
                    "name": anthropic_name,
                    "description": "Run a command on the user's machine. `command` is the argument vector, e.g. [\"bash\", \"-lc\", \"ls\"].",
                    "input_schema": _LOCAL_SHELL_SCHEMA,
                }
            )
    elif isinstance(kind, str):
        if out is not None:
            log.debug("responses→anthropic request: dropping %r tool at %s: OpenAI runs it, Claude cannot", kind, at)
    else:
        raise invalid(f"{at}.type: expected a string, got {kind!r}"[:200], f"{at}.type")


def _describe(tool: dict, description: str | None) -> None:
    if description:
        tool["description"] = description


def _schema(parameters: object, at: str) -> dict:
    if parameters is None:
        return {"type": "object", "properties": {}}
    schema = expect_dict(parameters, at)
    if "type" not in schema:  # Anthropic requires an object schema; {} means "no arguments"
        schema = {"type": "object", "properties": {}, **schema}
    return schema


def _grammar_note(fmt: object, at: str) -> str:
    if fmt is None:
        return ""
    fmt = expect_dict(fmt, at)
    if fmt.get("type") != "grammar":
        return ""
    syntax = optional_str(fmt.get("syntax"), f"{at}.syntax") or "lark"
    definition = expect_str(fmt.get("definition"), f"{at}.definition")
    return f"\n\nThe input is plain text (not JSON) that must match this {syntax} grammar:\n```\n{definition.strip()}\n```"
