"""Thinking and ``thoughtSignature`` carried across a round trip, in both directions.

Each side only gives back what its own clients are obliged to keep, so each carries the
other's state inside the field its clients keep verbatim.

**Claude's thinking, to a Gemini client.** Claude needs its thinking blocks back, text and
signature unchanged, at the start of an assistant turn that used tools; Gemini clients drop
thought parts from their history (Gemini CLI strips every ``thought: true`` part) but keep a
part's ``thoughtSignature``, the opaque bytes Gemini itself asks to get back. So the thought
text is shown as ``thought: true`` parts, and the thinking blocks themselves (thinking,
redacted thinking, signatures; unsigned ones from an OpenAI-compatible upstream too) travel as
the ``thoughtSignature`` of the first part after them: base64 of ``keystile:thinking:`` + their
JSON. Gemini CLI keeps the first text part of a run when it merges streamed text, so the
carrier goes on that first part; a turn that ends in thinking gets an empty text part for it.
A request's carrier restores the blocks in front of the part that carries it; thought parts in
requests are dropped (Claude accepts only the thinking it signed, and the carrier has it).

**A Gemini upstream's signatures, to an Anthropic client.** Anthropic clients keep thinking
blocks verbatim, so each Gemini signature becomes one: a signed thought part becomes a thinking
block with signature ``gemini:<sig>``; a signature on any other part (Gemini 3 signs the first
``functionCall``, or the last text part) becomes an empty thinking block with signature
``gemini-next:<sig>`` just before that part's block. Going back, ``gemini:`` puts the signature
on the thought part, ``gemini-next:`` on the part made from the next block (or an empty text
part at the end), so the upstream gets its parts back as it sent them. Such blocks are
meaningless to Claude: a conversation moved from a Gemini to a Claude deployment mid-way fails
there with Anthropic's signature error.
"""

from __future__ import annotations

import base64
import binascii
import logging

import orjson

log = logging.getLogger("keystile.translate")

GEMINI_SIGNATURE = "gemini:"
GEMINI_NEXT_SIGNATURE = "gemini-next:"

# Gemini CLI's and Google's documented stand-in for a signature it does not have; the API
# accepts it on a function call whose real signature was lost.
SKIP_SIGNATURE_VALIDATOR = "skip_thought_signature_validator"

_CARRIER_MAGIC = b"keystile:thinking:"  # 18 bytes, a multiple of 3: its base64 prefixes every carrier
_CARRIER_PREFIX = base64.b64encode(_CARRIER_MAGIC).decode("ascii")


def thinking_carrier(blocks: list[dict]) -> str:
    """Anthropic thinking blocks as a ``thoughtSignature`` value (standard base64)."""
    return base64.b64encode(_CARRIER_MAGIC + orjson.dumps(blocks)).decode("ascii")


def thinking_from_carrier(signature: object) -> list[dict] | None:
    """The thinking blocks inside a keystile carrier; None for any other signature.

    The value comes from a client: malformed carriers and malformed blocks are ignored
    (Claude verifies every signature it gets back anyway).
    """
    if not isinstance(signature, str) or not signature.startswith(_CARRIER_PREFIX):
        return None
    try:
        raw = base64.b64decode(signature, validate=True)
        blocks = orjson.loads(raw[len(_CARRIER_MAGIC) :])
    except (binascii.Error, ValueError):
        log.debug("gemini→anthropic request: ignoring a malformed keystile thought signature")
        return None
    if not isinstance(blocks, list):
        return None
    kept = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "thinking" and isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str):
            kept.append({"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]})
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            kept.append({"type": "redacted_thinking", "data": block["data"]})
    return kept


def thinking_block_for_signature(signature: str, *, own_part: bool, thinking: str = "") -> dict:
    """The Anthropic thinking block that carries a Gemini ``thoughtSignature``."""
    prefix = GEMINI_SIGNATURE if own_part else GEMINI_NEXT_SIGNATURE
    return {"type": "thinking", "thinking": thinking, "signature": prefix + signature}
