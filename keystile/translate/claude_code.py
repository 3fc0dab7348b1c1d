"""What Claude Code puts into a Messages request that only Anthropic should see.

Claude Code's first system block is ``x-anthropic-billing-header: cc_version=…;
cc_entrypoint=…;`` and changes from one request to the next. Anthropic reads it as metadata;
any other model would get it as the first words of its prompt, and — the reason it matters —
a prompt whose first bytes change on every request never hits the upstream's prefix cache
(OpenAI, DeepSeek, vLLM and Gemini all cache by exact prompt prefix), so every turn of a
long Claude Code session would pay for the whole prompt again. keystile therefore drops that
block whenever the request is translated for a non-Anthropic upstream; Anthropic-type
upstreams (Anthropic, Bedrock, Vertex) receive it untouched.
"""

from __future__ import annotations

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"


def without_billing_header(hub: dict) -> dict:
    """The Messages request without Claude Code's per-request billing block (a copy only if it had one)."""
    system = hub.get("system")
    if isinstance(system, list) and system:
        kept = [block for block in system if not _is_billing_block(block)]
        if len(kept) != len(system):
            return {**hub, "system": kept} if kept else {k: v for k, v in hub.items() if k != "system"}
    elif isinstance(system, str) and system.startswith(BILLING_HEADER_PREFIX):
        rest = system.split("\n", 1)[1] if "\n" in system else ""
        return {**hub, "system": rest} if rest else {k: v for k, v in hub.items() if k != "system"}
    return hub


def _is_billing_block(block: object) -> bool:
    return (
        isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
        and block["text"].startswith(BILLING_HEADER_PREFIX)
    )
