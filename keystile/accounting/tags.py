"""What a spend-log row says about its request beyond usage: its tags and its call type.

Tags let a platform team see spend by project, job or feature (``GET /spend/tags``). A client
attaches them as LiteLLM's clients do: a comma-separated ``x-keystile-tags`` or
``x-litellm-tags`` header, or ``metadata.tags`` (a list of strings) in the body. Reading them
costs a dict lookup for the headers (collected with the others in one pass) and one for the
body's ``metadata``; nothing is parsed when no tag was sent.
"""

from __future__ import annotations

from keystile.apiformat import ApiFormat
from keystile.providers.base import Operation

TAG_HEADERS = (b"x-keystile-tags", b"x-litellm-tags")
MAX_TAGS = 32
MAX_TAG_CHARS = 128

# LiteLLM's call_type names for the routes keystile serves.
CALL_TYPES: dict[tuple[ApiFormat, Operation], str] = {
    (ApiFormat.ANTHROPIC, Operation.GENERATE): "anthropic_messages",
    (ApiFormat.ANTHROPIC, Operation.COUNT_TOKENS): "count_tokens",
    (ApiFormat.OPENAI, Operation.GENERATE): "acompletion",
    (ApiFormat.OPENAI, Operation.EMBEDDINGS): "aembedding",
    (ApiFormat.RESPONSES, Operation.GENERATE): "aresponses",
    (ApiFormat.GEMINI, Operation.GENERATE): "agenerate_content",
    (ApiFormat.GEMINI, Operation.COUNT_TOKENS): "count_tokens",
    (ApiFormat.BEDROCK, Operation.GENERATE): "anthropic_messages",
    (ApiFormat.BEDROCK, Operation.COUNT_TOKENS): "count_tokens",
    (ApiFormat.VERTEX, Operation.GENERATE): "anthropic_messages",
    (ApiFormat.VERTEX, Operation.COUNT_TOKENS): "count_tokens",
}


def call_type_of(client: ApiFormat, operation: Operation) -> str | None:
    return CALL_TYPES.get((client, operation))


def request_tags(headers: dict[bytes, bytes], body: dict) -> list[str] | None:
    """The request's tags (header ones first, then the body's), de-duplicated and bounded; None without any."""
    raw = headers.get(b"x-keystile-tags") or headers.get(b"x-litellm-tags")
    metadata = body.get("metadata")
    body_tags = metadata.get("tags") if metadata.__class__ is dict else None
    if not raw and not body_tags:
        return None
    found: list[str] = []
    if raw:
        found.extend(raw.decode("utf-8", "replace").split(","))
    if body_tags.__class__ is list:
        found.extend(t for t in body_tags if t.__class__ is str)
    tags: dict[str, None] = {}
    for tag in found:
        tag = "".join(c for c in tag.strip() if c.isprintable())[:MAX_TAG_CHARS]
        if tag:
            tags[tag] = None
            if len(tags) == MAX_TAGS:
                break
    return list(tags) or None


def without_body_tags(body: dict) -> dict:
    """``body`` without ``metadata.tags``: the tags are keystile's (and LiteLLM's) to read, and the
    upstreams' own ``metadata`` refuses them (Anthropic takes only ``user_id``; OpenAI only strings)."""
    metadata = body.get("metadata")
    if metadata.__class__ is not dict or "tags" not in metadata:
        return body
    rest = {k: v for k, v in metadata.items() if k != "tags"}
    if rest:
        return {**body, "metadata": rest}
    return {k: v for k, v in body.items() if k != "metadata"}
