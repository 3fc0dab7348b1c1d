"""OpenAI chat.completion.chunk stream → Anthropic Messages SSE events, one chunk at a time.

Anthropic content blocks are strictly sequential (start, deltas, stop, then the next
block) while OpenAI fragments can interleave: several tool calls advance by ``index`` in
any order, and text can arrive while a tool call is still open. The rule used here:

- Text and thinking blocks can always be closed; a later fragment simply opens a new block.
- A tool_use block stays open until its accumulated arguments form a complete JSON object
  (a complete object can never be extended, so closing it then is safe). Fragments of other
  tool calls, and text, that arrive while an incomplete tool call is open are buffered;
  they are emitted as soon as the open call is complete, or at the end of the stream.
- In the usual sequential stream this means each tool call streams live, fragment by
  fragment; only genuinely interleaved calls are held back. A buffered call whose
  arguments are not a JSON object is emitted as ``{"_raw_arguments": "..."}`` (the live
  one cannot be repaired after the fact).
- A tool call opens its block once its name is known (it normally arrives in the first
  fragment, with the id); a new ``index``, or a new ``id`` at a known index, is a new call.

``reasoning_content`` / ``reasoning`` deltas become a thinking block (``signature`` "", see
``response_to_anthropic``). OpenAI reports usage once, at the end, so ``message_start``
carries zero input tokens and ``message_delta`` carries the real input, cache and output
counts (the SDKs take input counts from ``message_delta`` when present).
"""

from __future__ import annotations

import logging

import orjson

from keystile.accounting.usage import Usage, usage_from_openai, usage_to_anthropic
from keystile.apiformat import ApiFormat
from keystile.errors import error_body, kind_for_status
from keystile.sse import encode_event
from keystile.translate.errors import translate_error_object
from keystile.translate.ids import anthropic_message_id, new_tool_use_id
from keystile.translate.stop_reasons import stop_reason_for
from keystile.translate.tool_arguments import is_complete_object, parse_arguments

log = logging.getLogger("keystile.translate")

_TEXT, _THINKING, _TOOL = "text", "thinking", "tool_use"


class _ToolCall:
    __slots__ = ("id", "name", "fragments", "block", "checked", "complete")

    def __init__(self, call_id: str | None) -> None:
        self.id = call_id
        self.name: str | None = None
        self.fragments: list[str] = []
        self.block: int | None = None  # Anthropic content block index once opened
        self.checked = 0  # len(fragments) at the last completeness check
        self.complete = False


class ChatStreamToMessages:
    """Feed the ``data`` of each upstream SSE event; send what ``feed``/``finish`` return."""

    def __init__(self, *, message_id: str | None = None, model: str | None = None) -> None:
        self.usage = Usage()
        self.finished = False
        self._message_id = message_id
        self._model = model
        self._started = False
        self._next_block = 0
        self._open: str | None = None  # kind of the open block
        self._open_call: _ToolCall | None = None
        self._calls: list[_ToolCall] = []  # every tool call, in order of first appearance
        self._by_index: dict[int, _ToolCall] = {}
        self._held: list[tuple[str, str]] = []  # (kind, text) waiting for an open tool call
        self._finish_reason: str | None = None
        self._stop_sequence: str | None = None
        self._refused = False
        self._used_tools = False

    # --- public API -------------------------------------------------------------------

    @property
    def finish_reason(self) -> str | None:
        """The upstream's finish reason, once a chunk carried one (parsed, never pattern-matched)."""
        return self._finish_reason

    def feed(self, data: bytes) -> bytes:
        """One upstream event's data (a JSON chunk or ``[DONE]``) → Anthropic SSE bytes."""
        if self.finished:
            return b""
        if data[:6] == b"[DONE]" or data.strip() == b"[DONE]":
            return self.finish()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.debug("openai→anthropic stream: skipping a chunk that is not JSON: %r", data[:200])
            return b""
        if not isinstance(chunk, dict):
            return b""
        if chunk.get("error") is not None and not chunk.get("choices"):
            self.finished = True
            obj = translate_error_object(chunk, 0, upstream=ApiFormat.OPENAI, client=ApiFormat.ANTHROPIC)
            return encode_event(orjson.dumps(obj), "error")

        out: list[bytes] = []
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage_from_openai(usage)
        if not self._started:
            self._start(chunk, out)
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue  # n > 1 is not requested for Anthropic clients
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    self._delta(delta, out)
                reason = choice.get("finish_reason")
                if isinstance(reason, str):
                    self._finish_reason = reason
                    matched = choice.get("stop_reason")  # vLLM: the stop string that matched
                    if isinstance(matched, str):
                        self._stop_sequence = matched
        return b"".join(out)

    def finish(self) -> bytes:
        """Upstream ended: close blocks, flush held fragments, send message_delta + message_stop."""
        if self.finished:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start({}, out)
        if self._open is not None:
            self._close(out)
        self._flush_held(out)
        for call in self._calls:
            if call.block is None:
                self._emit_buffered_call(call, out)
        if self._open is not None:
            self._close(out)

        stop_reason = stop_reason_for(
            self._finish_reason,
            has_tool_calls=self._used_tools,
            stop_sequence=self._stop_sequence if self._finish_reason == "stop" else None,
        )
        if self._refused and stop_reason == "end_turn":
            stop_reason = "refusal"
        delta = {
            "stop_reason": stop_reason,
            "stop_sequence": self._stop_sequence if stop_reason == "stop_sequence" else None,
        }
        out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_to_anthropic(self.usage)}))
        out.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        self.finished = True
        return b"".join(out)

    def fail(self, status: int, message: str) -> bytes:
        """A gateway-side failure mid-stream, as Anthropic's in-band ``error`` event."""
        if self.finished:
            return b""
        self.finished = True
        return _event("error", error_body(ApiFormat.ANTHROPIC, kind_for_status(status), message))

    # --- chunks -----------------------------------------------------------------------

    def _start(self, chunk: dict, out: list[bytes]) -> None:
        self._started = True
        model = self._model or chunk.get("model")
        start_usage = usage_to_anthropic(self.usage)
        start_usage["output_tokens"] = 0
        message = {
            "id": self._message_id or anthropic_message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": model if isinstance(model, str) else "",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        out.append(_event("message_start", {"type": "message_start", "message": message}))

    def _delta(self, delta: dict, out: list[bytes]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self._text(_THINKING, reasoning, out)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text(_TEXT, content, out)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refused = True
            self._text(_TEXT, refusal, out)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, fragment in enumerate(calls):
                if isinstance(fragment, dict):
                    self._tool_fragment(fragment, position, out)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            self._tool_fragment({"index": 0, "function": legacy}, 0, out)

    def _text(self, kind: str, text: str, out: list[bytes]) -> None:
        if self._open == kind:
            out.append(_block_delta(self._next_block - 1, kind, text))
            return
        if self._open == _TOOL and not self._call_complete(self._open_call):
            self._held.append((kind, text))
            return
        if self._open is not None:
            self._close(out)
        if self._held:
            self._flush_held(out)
            if self._open == kind:
                out.append(_block_delta(self._next_block - 1, kind, text))
                return
            if self._open is not None:
                self._close(out)
        self._open_block(kind, out)
        out.append(_block_delta(self._next_block - 1, kind, text))

    def _flush_held(self, out: list[bytes]) -> None:
        held, self._held = self._held, []
        for kind, text in held:
            if self._open != kind:
                if self._open is not None:
                    self._close(out)
                self._open_block(kind, out)
            out.append(_block_delta(self._next_block - 1, kind, text))

    def _tool_fragment(self, fragment: dict, position: int, out: list[bytes]) -> None:
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = position
        call_id = fragment.get("id")
        call_id = call_id if isinstance(call_id, str) and call_id else None
        call = self._by_index.get(index)
        if call is None or (call_id is not None and call.id is not None and call_id != call.id):
            call = _ToolCall(call_id)
            self._by_index[index] = call
            self._calls.append(call)
        elif call_id is not None and call.id is None:
            call.id = call_id
        function = fragment.get("function")
        arguments = None
        if isinstance(function, dict):
            name = function.get("name")
            if isinstance(name, str) and name and call.name is None:
                call.name = name
            arguments = function.get("arguments")
            if isinstance(arguments, dict):
                arguments = orjson.dumps(arguments).decode()
            if isinstance(arguments, str) and arguments:
                call.fragments.append(arguments)
            else:
                arguments = None

        if call.block is not None:
            if call is self._open_call and arguments is not None:
                out.append(_json_delta(call.block, arguments))
            elif arguments is not None:
                log.debug("openai→anthropic stream: dropping arguments for an already closed tool call")
            return
        if call.name is None:
            return  # cannot open a tool_use block without a name; keep buffering
        if self._open == _TOOL and not self._call_complete(self._open_call):
            return  # another call is still receiving arguments; this one waits
        if self._open is not None:
            self._close(out)
        self._flush_held(out)
        if self._open is not None:
            self._close(out)
        self._open_call_block(call, out)

    def _call_complete(self, call: _ToolCall | None) -> bool:
        if call is None or call.complete:
            return True
        if call.checked != len(call.fragments):
            call.checked = len(call.fragments)
            call.complete = is_complete_object("".join(call.fragments))
        return call.complete

    # --- blocks -----------------------------------------------------------------------

    def _open_block(self, kind: str, out: list[bytes]) -> None:
        block = {"type": "text", "text": ""} if kind == _TEXT else {"type": "thinking", "thinking": "", "signature": ""}
        out.append(_event("content_block_start", {"type": "content_block_start", "index": self._next_block, "content_block": block}))
        self._next_block += 1
        self._open = kind

    def _open_call_block(self, call: _ToolCall, out: list[bytes]) -> None:
        if call.id is None:
            call.id = new_tool_use_id()
        call.block = self._next_block
        self._next_block += 1
        self._open = _TOOL
        self._open_call = call
        self._used_tools = True
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        out.append(_event("content_block_start", {"type": "content_block_start", "index": call.block, "content_block": block}))
        if call.fragments:
            out.append(_json_delta(call.block, "".join(call.fragments)))

    def _emit_buffered_call(self, call: _ToolCall, out: list[bytes]) -> None:
        if call.name is None:
            log.debug("openai→anthropic stream: dropping a tool call that never received a name")
            return
        if self._open is not None:
            self._close(out)
        arguments = "".join(call.fragments)
        if arguments:
            # Not streamed yet, so it can still be repaired: a non-object becomes {"_raw_arguments": …}.
            call.fragments = [orjson.dumps(parse_arguments(arguments)).decode()]
        self._open_call_block(call, out)
        self._close(out)

    def _close(self, out: list[bytes]) -> None:
        out.append(b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n' % (self._next_block - 1))
        self._open = None
        self._open_call = None


def _event(name: str, payload: dict) -> bytes:
    return encode_event(orjson.dumps(payload), name)


def _block_delta(index: int, kind: str, text: str) -> bytes:
    if kind == _TEXT:
        delta = {"type": "text_delta", "text": text}
    else:
        delta = {"type": "thinking_delta", "thinking": text}
    return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _json_delta(index: int, partial: str) -> bytes:
    return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": partial}})
