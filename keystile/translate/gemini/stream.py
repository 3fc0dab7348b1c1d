"""Gemini ``streamGenerateContent?alt=sse`` ⇄ Anthropic Messages SSE, one event at a time.

Gemini's stream is data-only SSE: each event one ``GenerateContentResponse`` chunk, framed as
Google frames it, ``data: <json>\\r\\n\\r\\n`` (clients split on either line ending). There is
no start event and no ``[DONE]``: the chunk carrying ``finishReason`` ends the stream, and a
mid-stream failure is a chunk ``{"error":{code,message,status}}`` (google-genai raises it as an
``APIError``). Gemini CLI retries a stream that ends without a ``finishReason`` three times and
prints the text each time, so every stream produced here ends with one, or with an error.

``MessagesStreamToGemini`` (Claude answering a Gemini client):

- Text and thinking deltas go out as they arrive, one part per chunk (thinking as
  ``thought: true`` parts); a ``tool_use`` goes out whole as one ``functionCall`` part when its
  block ends, since Gemini clients expect complete calls. Each chunk repeats the same
  ``modelVersion`` and ``responseId``, encoded once.
- Thinking blocks ride in the ``thoughtSignature`` of the first part after them (see
  ``signatures``); the parts are the same as ``messages_response_to_gemini`` would give.
- ``message_stop`` (or ``finish``, when the upstream ended without one) sends the final chunk:
  an empty text part (or the pending thinking carrier), ``finishReason`` and ``usageMetadata``.
  Usage is sent only there: Gemini clients read the last chunk's.
- An Anthropic ``error`` event, or ``fail``, becomes the error chunk and ends the stream.

``GeminiStreamToMessages`` (a Gemini upstream answering an Anthropic client):

- ``message_start`` comes with the first chunk, carrying the prompt counts Gemini reports in
  every chunk; parts become blocks as in ``response.blocks_from_parts``, opened and closed
  strictly in sequence (text and thought parts extend an open block of their kind; a
  ``functionCall`` is a whole ``tool_use`` block; a ``thoughtSignature`` is a thinking block).
- The chunk with ``finishReason`` closes the message (Gemini puts the final usage in that same
  chunk): ``message_delta`` with the stop reason of ``finish_reasons`` and the usage, then
  ``message_stop``. A blocking reason (SAFETY …) ends as ``refusal`` and sets ``failed``; a
  malformed-call reason, an error chunk or ``fail`` becomes an Anthropic ``error`` event and
  sets ``failed``. A prompt blocked before any candidate (``promptFeedback.blockReason``) is a
  ``refusal`` with no content. ``complete`` says the upstream ended properly (a
  ``finishReason`` or a blocked prompt arrived), as opposed to being cut off; ``finish``
  closes a message that was cut off, as it stands.
"""

from __future__ import annotations

import logging

import orjson

from keystile.accounting.usage import Usage, usage_from_anthropic, usage_from_gemini, usage_to_anthropic, usage_to_gemini
from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, error_body, kind_for_status
from keystile.sse import encode_event
from keystile.translate.gemini.errors import anthropic_error_to_gemini, gemini_error_body, gemini_error_object_to_anthropic
from keystile.translate.gemini.finish_reasons import BLOCKED, finish_reason_for, stop_reason_for
from keystile.translate.gemini.response import tool_use_id_for
from keystile.translate.gemini.signatures import GEMINI_NEXT_SIGNATURE, GEMINI_SIGNATURE, thinking_carrier
from keystile.translate.hub_stream import HubStreamEncoder
from keystile.translate.ids import anthropic_message_id
from keystile.translate.tool_arguments import parse_arguments

log = logging.getLogger("keystile.translate")

_END = b"\r\n\r\n"


class _Block:
    __slots__ = ("kind", "id", "name", "input", "fragments", "thinking", "signature")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.id = ""
        self.name = ""
        self.input: dict = {}
        self.fragments: list[str] = []
        self.thinking: list[str] = []
        self.signature = ""


class MessagesStreamToGemini(HubStreamEncoder):
    """Feed each upstream Anthropic SSE event (name + data); send what ``feed``/``finish`` return."""

    direction = "anthropic→gemini"

    def __init__(self, model: str) -> None:
        self.usage = Usage()
        self.finished = False
        self._model = model
        self._suffix = b""
        self._blocks: dict[int, _Block] = {}
        self._thinking: list[dict] = []  # finished thinking blocks waiting for the next part
        self._stop_reason: object = None

    # --- public API -------------------------------------------------------------------

    def fail(self, status: int, message: str) -> bytes:
        """A gateway-side failure mid-stream, as Google's in-band error chunk."""
        if self.finished:
            return b""
        self.finished = True
        return _data(gemini_error_body(status, message))

    def _error(self, obj: dict) -> bytes:
        self.finished = True
        return _data(anthropic_error_to_gemini(obj, 0))

    # --- events -----------------------------------------------------------------------

    def _message_start(self, obj: dict) -> None:
        message = obj.get("message")
        if not isinstance(message, dict):
            return
        self.usage = usage_from_anthropic(message.get("usage"))
        if not self._suffix:
            message_id = message.get("id")
            self._begin(message_id if isinstance(message_id, str) else "")

    def _begin(self, response_id: str) -> None:
        self._suffix = b',"modelVersion":' + orjson.dumps(self._model) + b',"responseId":' + orjson.dumps(response_id) + b"}" + _END

    def _block_start(self, obj: dict) -> bytes:
        index = obj.get("index")
        block = obj.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            return b""
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text")
            text = block.get("text")
            return self._part({"text": text}) if isinstance(text, str) and text else b""
        if kind == "thinking":
            entry = self._blocks[index] = _Block("thinking")
            text = block.get("thinking")
            if isinstance(text, str) and text:
                entry.thinking.append(text)
                return self._thought(text)
            return b""
        if kind == "redacted_thinking":
            data = block.get("data")
            if isinstance(data, str):
                self._thinking.append({"type": "redacted_thinking", "data": data})
            return b""
        if kind == "tool_use":
            entry = self._blocks[index] = _Block("tool_use")
            entry.id = block.get("id") if isinstance(block.get("id"), str) else ""
            entry.name = block.get("name") if isinstance(block.get("name"), str) else ""
            if isinstance(block.get("input"), dict):
                entry.input = block["input"]
            return b""
        log.debug("anthropic→gemini stream: skipping %r block", kind)
        return b""

    def _block_delta(self, obj: dict) -> bytes:
        delta = obj.get("delta")
        index = obj.get("index")
        entry = self._blocks.get(index) if isinstance(index, int) else None
        if not isinstance(delta, dict) or entry is None:
            return b""
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return self._part({"text": text}) if isinstance(text, str) and text else b""
        if kind == "thinking_delta":
            text = delta.get("thinking")
            if isinstance(text, str) and text:
                entry.thinking.append(text)
                return self._thought(text)
        elif kind == "input_json_delta":
            partial = delta.get("partial_json")
            if isinstance(partial, str):
                entry.fragments.append(partial)
        elif kind == "signature_delta":
            signature = delta.get("signature")
            if isinstance(signature, str):
                entry.signature = signature
        return b""

    def _block_stop(self, obj: dict) -> bytes:
        index = obj.get("index")
        entry = self._blocks.pop(index, None) if isinstance(index, int) else None
        if entry is None:
            return b""
        if entry.kind == "thinking":
            self._thinking.append({"type": "thinking", "thinking": "".join(entry.thinking), "signature": entry.signature})
            return b""
        if entry.kind == "tool_use" and entry.name:
            raw = "".join(entry.fragments)
            args = parse_arguments(raw) if raw else entry.input
            return self._part({"functionCall": {"id": entry.id, "name": entry.name, "args": args}})
        return b""

    def _message_delta(self, obj: dict) -> None:
        self._take_usage(obj)
        delta = obj.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason") is not None:
            self._stop_reason = delta["stop_reason"]

    def _end(self) -> bytes:
        self.finished = True
        part: dict = {"text": ""}
        if self._thinking:
            part["thoughtSignature"] = thinking_carrier(self._thinking)
            self._thinking = []
        candidate = {"content": {"parts": [part], "role": "model"}, "finishReason": finish_reason_for(self._stop_reason), "index": 0}
        return (
            b'data: {"candidates":'
            + orjson.dumps([candidate])
            + b',"usageMetadata":'
            + orjson.dumps(usage_to_gemini(self.usage))
            + self._chunk_suffix()
        )

    # --- encoding ---------------------------------------------------------------------

    def _chunk_suffix(self) -> bytes:
        if not self._suffix:
            self._begin("")
        return self._suffix

    def _thought(self, text: str) -> bytes:
        return self._chunk(orjson.dumps({"text": text, "thought": True}))

    def _part(self, part: dict) -> bytes:
        if self._thinking:
            part["thoughtSignature"] = thinking_carrier(self._thinking)
            self._thinking = []
        return self._chunk(orjson.dumps(part))

    def _chunk(self, part: bytes) -> bytes:
        return b'data: {"candidates":[{"content":{"parts":[' + part + b'],"role":"model"},"index":0}]' + self._chunk_suffix()


def _data(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + _END


# =========================================================================================


class GeminiStreamToMessages:
    """Feed each upstream Gemini SSE event (name, normally None, + data); send what ``feed`` returns."""

    def __init__(self, model: str) -> None:
        self.usage = Usage()
        self.finished = False
        self.failed = False
        self.complete = False  # the upstream ended properly: a finishReason, or a blocked prompt
        self._model = model
        self._started = False
        self._next_block = 0
        self._open: str | None = None  # "text" or "thinking" while that block is open
        self._used_tools = False

    # --- public API -------------------------------------------------------------------

    def feed(self, event: str | None, data: bytes) -> bytes:
        """One upstream Gemini chunk → Anthropic SSE bytes."""
        if self.finished:
            return b""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.debug("gemini→anthropic stream: skipping a chunk that is not JSON: %r", data[:200])
            return b""
        if isinstance(chunk, list) and len(chunk) == 1:
            chunk = chunk[0]  # an alt=json array element
        if not isinstance(chunk, dict):
            return b""
        candidates = chunk.get("candidates")
        if chunk.get("error") is not None and not candidates:
            self.finished = self.failed = True
            return _event("error", gemini_error_object_to_anthropic(chunk, 0))

        out: list[bytes] = []
        metadata = chunk.get("usageMetadata")
        if isinstance(metadata, dict):
            self.usage = usage_from_gemini(metadata)
        if not self._started:
            self._start(chunk, out)
        candidate = candidates[0] if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict) else None
        if candidate is None:
            feedback = chunk.get("promptFeedback")
            if isinstance(feedback, dict) and isinstance(feedback.get("blockReason"), str):
                self.failed = self.complete = True
                self._stop("refusal", out)
            return b"".join(out)
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if isinstance(parts, list):
            for part in parts:
                if isinstance(part, dict):
                    self._part(part, out)
        finish = candidate.get("finishReason")
        if isinstance(finish, str) and finish:
            self.complete = True
            stop_reason = stop_reason_for(finish, has_tool_calls=self._used_tools)
            if stop_reason is None:
                self._close(out)
                detail = candidate.get("finishMessage")
                suffix = f": {detail}" if isinstance(detail, str) and detail else ""
                out.append(self._error(ErrorKind.UPSTREAM_ERROR, f"upstream model finished with {finish}{suffix}"[:500]))
            else:
                self.failed = finish in BLOCKED
                self._stop(stop_reason, out)
        return b"".join(out)

    def finish(self) -> bytes:
        """Upstream ended without a ``finishReason``: close the message as it stands."""
        if self.finished:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start({}, out)
        self._stop("tool_use" if self._used_tools else "end_turn", out)
        return b"".join(out)

    def fail(self, status: int, message: str) -> bytes:
        """A gateway-side failure mid-stream, as Anthropic's in-band ``error`` event."""
        if self.finished:
            return b""
        return self._error(kind_for_status(status), message)

    # --- chunks -----------------------------------------------------------------------

    def _start(self, chunk: dict, out: list[bytes]) -> None:
        self._started = True
        version = chunk.get("modelVersion")
        start_usage = usage_to_anthropic(self.usage)
        start_usage["output_tokens"] = 0
        message = {
            "id": anthropic_message_id(chunk.get("responseId")),
            "type": "message",
            "role": "assistant",
            "model": self._model or (version if isinstance(version, str) else ""),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        out.append(_event("message_start", {"type": "message_start", "message": message}))

    def _part(self, part: dict, out: list[bytes]) -> None:
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        text = part.get("text")
        if part.get("thought") is True:
            if self._open != "thinking":
                self._close(out)
                self._open_block({"type": "thinking", "thinking": "", "signature": ""}, out)
                self._open = "thinking"
            if isinstance(text, str) and text:
                out.append(_delta(self._next_block - 1, {"type": "thinking_delta", "thinking": text}))
            if signature:
                out.append(_delta(self._next_block - 1, {"type": "signature_delta", "signature": GEMINI_SIGNATURE + signature}))
                self._close(out)
            return
        if signature:
            self._close(out)
            self._open_block({"type": "thinking", "thinking": "", "signature": ""}, out)
            out.append(_delta(self._next_block - 1, {"type": "signature_delta", "signature": GEMINI_NEXT_SIGNATURE + signature}))
            self._open = "thinking"
            self._close(out)
        if isinstance(text, str):
            if text:
                if self._open != "text":
                    self._close(out)
                    self._open_block({"type": "text", "text": ""}, out)
                    self._open = "text"
                out.append(_delta(self._next_block - 1, {"type": "text_delta", "text": text}))
            return
        call = part.get("functionCall")
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            self._close(out)
            args = call.get("args")
            block = {
                "type": "tool_use",
                "id": tool_use_id_for(call.get("id")),
                "name": call["name"],
                "input": {},
            }
            self._open_block(block, out)
            arguments = orjson.dumps(args if isinstance(args, dict) else {}).decode()
            out.append(_delta(self._next_block - 1, {"type": "input_json_delta", "partial_json": arguments}))
            self._open = "tool_use"
            self._close(out)
            self._used_tools = True
        else:
            log.debug("gemini→anthropic stream: dropping a part with keys %s", sorted(part))

    def _open_block(self, block: dict, out: list[bytes]) -> None:
        out.append(_event("content_block_start", {"type": "content_block_start", "index": self._next_block, "content_block": block}))
        self._next_block += 1

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n' % (self._next_block - 1))
            self._open = None

    def _stop(self, stop_reason: str, out: list[bytes]) -> None:
        self._close(out)
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_to_anthropic(self.usage)}))
        out.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        self.finished = True

    def _error(self, kind: ErrorKind, message: str) -> bytes:
        self.finished = self.failed = True
        return _event("error", error_body(ApiFormat.ANTHROPIC, kind, message))


def _event(name: str, payload: dict) -> bytes:
    return encode_event(orjson.dumps(payload), name)


def _delta(index: int, delta: dict) -> bytes:
    return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
