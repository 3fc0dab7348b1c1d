"""Which Anthropic beta flags Claude on Bedrock and on Vertex AI accepts.

Both refuse a whole request that names a beta they do not know (``400 invalid beta flag``),
and Claude Code in its first-party mode sends several (``oauth-…``, ``prompt-caching-scope-…``,
``fast-mode-…``). A client that spoke the cloud's own API chose its betas for that cloud and
keeps them; betas from any other client are filtered through these lists.
"""

from __future__ import annotations

BEDROCK_BETAS = frozenset(
    {
        # AWS's "Anthropic Claude Messages API" parameters page, as listed by LiteLLM's Bedrock
        # filter (BerriAI/litellm#19877, 2026-01-27)
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "output-128k-2025-02-19",
        "dev-full-thinking-2025-05-14",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "effort-2025-11-24",
        "tool-search-tool-2025-10-19",
        "tool-examples-2025-10-29",
        # accepted by Bedrock when tried one by one (router-for-me/CLIProxyAPI#4750, 2026-08-03)
        "claude-code-20250219",
    }
)
VERTEX_BETAS = BEDROCK_BETAS | {
    # what Claude Code 2.1.197 sends in its Vertex mode (recorded), besides the above
    "web-search-2025-03-05",
}


def accepted_betas(header: bytes | None, accepted: frozenset[str]) -> list[str]:
    """The flags of an ``anthropic-beta`` value found in ``accepted``, in order, once each."""
    if not header:
        return []
    out: list[str] = []
    for flag in header.decode("latin-1").split(","):
        flag = flag.strip()
        if flag in accepted and flag not in out:
            out.append(flag)
    return out
