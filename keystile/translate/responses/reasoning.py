"""Claude thinking blocks ⇄ Responses reasoning items, so that each survives a round trip.

Both sides sign their reasoning and want it back verbatim: Claude a thinking block's
``signature`` (and a ``redacted_thinking`` block's ``data``), OpenAI a reasoning item's
``encrypted_content``. Each carries the other's opaque value in its own opaque field, with
a prefix saying whose it is:

    Claude thinking    → reasoning item: summary = [the thinking text],
                                          encrypted_content = "keystile.thinking:" + signature
    redacted_thinking  → reasoning item: summary = [],
                                          encrypted_content = "keystile.redacted_thinking:" + data
    OpenAI reasoning   → thinking block:  thinking = the summary texts (or reasoning text),
                                          signature = "keystile.reasoning:" + encrypted_content

On the way back only values with the receiving side's own prefix are unwrapped; anything
else was signed by someone the upstream cannot verify (a conversation moved between
deployments) and is dropped, as the Chat translators drop foreign thinking. The thinking
text is put in ``summary`` because every Responses client shows and returns summaries;
it must come back unchanged, since Anthropic checks it against the signature.

Thinking with an empty signature is keystile-made (a Chat upstream's ``reasoning_content``,
see ``response_to_anthropic``) and keeps its empty signature through the round trip, so
the Chat translator can hand it back to that upstream (DeepSeek needs it in tool loops);
likewise an OpenAI reasoning item without ``encrypted_content`` becomes a thinking block
with an empty signature.
"""

from __future__ import annotations

import logging

log = logging.getLogger("keystile.translate")

THINKING_PREFIX = "keystile.thinking:"
REDACTED_PREFIX = "keystile.redacted_thinking:"
REASONING_PREFIX = "keystile.reasoning:"


def reasoning_item(block: dict, item_id: str) -> dict | None:
    """A Claude ``thinking``/``redacted_thinking`` block → a Responses reasoning output item."""
    kind = block.get("type")
    if kind == "thinking":
        text = block.get("thinking")
        text = text if isinstance(text, str) else ""
        signature = block.get("signature")
        signature = signature if isinstance(signature, str) else ""
        return {"id": item_id, "type": "reasoning", "summary": summary_parts(text), "encrypted_content": THINKING_PREFIX + signature}
    if kind == "redacted_thinking" and isinstance(block.get("data"), str):
        return {"id": item_id, "type": "reasoning", "summary": [], "encrypted_content": REDACTED_PREFIX + block["data"]}
    return None


def summary_parts(text: str) -> list[dict]:
    return [{"type": "summary_text", "text": text}] if text else []


def thinking_for_client_reasoning(item: dict) -> dict | None:
    """A reasoning item a Responses client sends back → the Claude block it came from, or None."""
    encrypted = item.get("encrypted_content")
    if isinstance(encrypted, str):
        if encrypted.startswith(THINKING_PREFIX):
            return {"type": "thinking", "thinking": reasoning_text(item), "signature": encrypted[len(THINKING_PREFIX) :]}
        if encrypted.startswith(REDACTED_PREFIX):
            return {"type": "redacted_thinking", "data": encrypted[len(REDACTED_PREFIX) :]}
    log.debug("responses→anthropic request: dropping a reasoning item Claude did not sign")
    return None


def thinking_for_upstream_reasoning(item: dict) -> dict:
    """A reasoning item from an OpenAI Responses upstream → a thinking block for an Anthropic client."""
    encrypted = item.get("encrypted_content")
    signature = REASONING_PREFIX + encrypted if isinstance(encrypted, str) and encrypted else ""
    return {"type": "thinking", "thinking": reasoning_text(item), "signature": signature}


def reasoning_input_for_thinking(block: dict) -> dict | None:
    """A thinking block an Anthropic client sends back → the OpenAI reasoning input item, or None."""
    signature = block.get("signature")
    if isinstance(signature, str) and signature.startswith(REASONING_PREFIX):
        text = block.get("thinking")
        return {
            "type": "reasoning",
            "summary": summary_parts(text if isinstance(text, str) else ""),
            "encrypted_content": signature[len(REASONING_PREFIX) :],
        }
    log.debug("anthropic→responses request: dropping a thinking block OpenAI did not sign")
    return None


def reasoning_text(item: dict) -> str:
    """The summary texts of a reasoning item (blank-line separated), else its reasoning text."""
    texts = _texts(item.get("summary"))
    if not texts:
        texts = _texts(item.get("content"))
    return "\n\n".join(texts)


def _texts(parts: object) -> list[str]:
    if not isinstance(parts, list):
        return []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"]]
