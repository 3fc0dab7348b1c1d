"""Streams: Anthropic Messages SSE ⇄ OpenAI Responses SSE, one event at a time.

``MessagesStreamToResponses`` (a Responses client served through the Messages hub) emits
the whole sequence OpenAI sends and that Codex CLI and the SDKs rely on: ``response.created``
and ``response.in_progress``; for each output item ``response.output_item.added``, its
parts and deltas, and ``response.output_item.done`` carrying the finished item (Codex builds
its answer from those only); finally ``response.completed`` — or ``response.incomplete``
when Claude stopped at ``max_tokens`` or refused (see ``output``) — with the whole output
and the usage. Every event carries a ``sequence_number``. Per block:

- text → a ``message`` item, one ``output_text`` part, ``response.output_text.delta`` as
  Claude writes; consecutive text blocks continue the same part.
- thinking → a ``reasoning`` item: ``response.reasoning_summary_part.added`` and
  ``response.reasoning_summary_text.delta`` as Claude thinks; the signature arrives last and
  is in the ``output_item.done`` item's ``encrypted_content`` (``reasoning``).
- tool_use → ``function_call`` with ``response.function_call_arguments.delta`` as the JSON
  arrives. A custom tool's call is buffered to the end of its block, because its text is
  inside Claude's JSON (``{"input": "…"}``) and is only known whole; it is then sent as one
  ``response.custom_tool_call_input.delta``. A ``local_shell_call`` is likewise sent whole.
- An Anthropic ``error`` event, and ``fail()``, become what OpenAI sends when a response
  fails: an ``error`` event, then ``response.failed`` whose ``response.error`` carries the
  message (Codex reads only the latter, and reports it). The error code is
  ``rate_limit_exceeded`` for a rate limit, else ``server_error``. Items still open then
  get no ``output_item.done``: Codex would run a half-streamed tool call.

``ResponsesStreamToMessages`` (an Anthropic-form request served by an OpenAI Responses
upstream) turns items into content blocks the other way round: ``message`` → text (a
refusal too), ``reasoning`` → thinking, with ``signature_delta`` carrying the
``encrypted_content`` before the block stops, ``function_call``/``custom_tool_call`` →
``tool_use`` streamed as ``input_json_delta`` (a custom call's text is JSON-escaped into
``{"input": "…"}`` piece by piece). Items the upstream sends only as ``output_item.done``
(no deltas) are emitted whole. OpenAI streams items one after another; a delta for an item
that is no longer the open one is dropped (debug log). Usage comes from the terminal event.
How it ends:

- ``response.completed`` → ``stop_reason`` ``tool_use``/``end_turn`` (``refusal`` after a
  refusal part), ``response.incomplete`` for ``max_output_tokens`` → ``max_tokens``, for
  ``content_filter`` → ``refusal``; then ``message_delta`` and ``message_stop``.
- ``response.failed``, an ``error`` event, or ``response.incomplete`` for any other reason
  → Anthropic's in-band ``error`` event, and ``failed`` is set: the upstream did not finish
  the answer. (A stream cut off by keystile goes through ``fail()``, which does not set it.)
  ``complete`` is set by the proper ends of the first point only, not by ``finish()``.
"""

from __future__ import annotations

import logging
import time

import orjson

from keystile.accounting.usage import Usage, usage_from_anthropic, usage_from_responses, usage_to_anthropic, usage_to_responses
from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, error_body, kind_for_status
from keystile.sse import encode_event
from keystile.translate.errors import translate_error_object
from keystile.translate.hub_stream import HubStreamEncoder
from keystile.translate.ids import anthropic_message_id, new_tool_use_id
from keystile.translate.responses.output import (
    Envelope,
    ItemIds,
    call_item,
    message_item,
    output_text_part,
    response_head,
    response_id,
    status_for,
)
from keystile.translate.responses.reasoning import REASONING_PREFIX, reasoning_item, reasoning_text, summary_parts
from keystile.translate.responses.response import message_texts
from keystile.translate.responses.tools import CUSTOM, FUNCTION, ClientTool, ToolNames, anthropic_tool_name, tool_names
from keystile.translate.tool_arguments import parse_arguments

log = logging.getLogger("keystile.translate")

_MESSAGE, _REASONING, _CALL, _SKIP = "message", "reasoning", "call", "skip"


class _OpenItem:
    """The Responses output item being streamed, and the Anthropic block(s) feeding it."""

    __slots__ = ("kind", "id", "index", "parts", "signature", "summary_open", "tool", "call_id", "streamed", "delta_head")

    def __init__(self, kind: str, item_id: str, index: int) -> None:
        self.kind = kind
        self.id = item_id
        self.index = index  # output_index
        self.parts: list[str] = []  # text, thinking or argument JSON so far
        self.signature = ""
        self.summary_open = False
        self.tool: ClientTool | None = None
        self.call_id = ""
        self.streamed = False  # argument deltas were sent
        self.delta_head = b""  # this item's delta event up to its "delta" value, encoded once


class MessagesStreamToResponses(HubStreamEncoder):
    """Feed each upstream Anthropic SSE event (name + data); send what ``feed``/``finish`` return."""

    direction = "anthropic→responses"

    def __init__(self, request: dict) -> None:
        self.usage = Usage()
        self.finished = False
        self._request = request if isinstance(request, dict) else {}
        self._names: ToolNames | None = None  # read from the request at the first tool call
        self._envelope: Envelope | None = None  # built at the start: the echo is encoded once
        self._seq = 0
        self._id = ""
        self._ids: ItemIds | None = None
        self._model = ""
        self._created = int(time.time())
        self._output: list[dict] = []  # finished items, in output_index order
        self._open: _OpenItem | None = None
        self._blocks: dict[int, str] = {}  # Anthropic block index → what it feeds
        self._next_index = 0
        self._stop_reason: str | None = None

    # --- public API -------------------------------------------------------------------

    def fail(self, status: int, message: str) -> bytes:
        """A gateway-side failure mid-stream: ``error`` and ``response.failed``."""
        if self.finished:
            return b""
        kind = kind_for_status(status)
        return self._failure("rate_limit_exceeded" if kind is ErrorKind.RATE_LIMITED else "server_error", message)

    def _error(self, obj: dict) -> bytes:
        err = translate_error_object(obj, 0, upstream=ApiFormat.ANTHROPIC, client=ApiFormat.OPENAI)["error"]
        code = "rate_limit_exceeded" if err.get("type") == "rate_limit_error" else "server_error"
        return self._failure(code, err.get("message") or "upstream error")

    # --- Anthropic events -------------------------------------------------------------

    def _message_start(self, obj: dict) -> bytes:
        message = obj.get("message")
        if not isinstance(message, dict):
            message = {}
        self.usage = usage_from_anthropic(message.get("usage"))
        if self._envelope is not None:
            return b""
        model = message.get("model")
        return self._begin(message.get("id"), model if isinstance(model, str) else "")

    def _begin(self, message_id: object, model: str) -> bytes:
        self._envelope = Envelope(self._request)
        self._id = response_id(message_id)
        self._ids = ItemIds(self._id)
        if not model:
            requested = self._request.get("model")
            model = requested if isinstance(requested, str) else ""
        self._model = model
        return self._response_event("response.created", "in_progress") + self._response_event("response.in_progress", "in_progress")

    def _ensure_started(self) -> bytes:
        return b"" if self._envelope is not None else self._begin(None, "")

    def _block_start(self, obj: dict) -> bytes:
        index = obj.get("index")
        block = obj.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            return b""
        out = self._ensure_started()
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _MESSAGE
            if self._open is None or self._open.kind != _MESSAGE:
                out += self._close() + self._open_message()
            text = block.get("text")
            return out + (self._text_delta(text) if isinstance(text, str) and text else b"")
        if kind == "thinking":
            self._blocks[index] = _REASONING
            out += self._close()
            self._open = _OpenItem(_REASONING, self._new_id("reasoning"), self._take_index())
            out += self._event("response.output_item.added", output_index=self._open.index, item={"id": self._open.id, "type": "reasoning", "summary": []})
            text = block.get("thinking")
            return out + (self._thinking_delta(text) if isinstance(text, str) and text else b"")
        if kind == "redacted_thinking":
            self._blocks[index] = _SKIP
            item = reasoning_item(block, self._new_id("reasoning"))
            if item is None:
                return out
            out += self._close()
            return out + self._whole_item(item)
        if kind == "tool_use":
            self._blocks[index] = _CALL
            out += self._close()
            return out + self._open_call(block)
        self._blocks[index] = _SKIP
        log.debug("anthropic→responses stream: skipping %r block", kind)
        return out

    def _block_delta(self, obj: dict) -> bytes:
        delta = obj.get("delta")
        index = obj.get("index")
        if not isinstance(delta, dict) or not isinstance(index, int):
            return b""
        feeds = self._blocks.get(index)
        item = self._open
        if item is None or feeds != item.kind:
            return b""
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return self._text_delta(text) if isinstance(text, str) and text else b""
        if kind == "thinking_delta":
            text = delta.get("thinking")
            return self._thinking_delta(text) if isinstance(text, str) and text else b""
        if kind == "signature_delta":
            signature = delta.get("signature")
            if isinstance(signature, str):
                item.signature += signature
            return b""
        if kind == "input_json_delta":
            partial = delta.get("partial_json")
            if not isinstance(partial, str) or not partial:
                return b""
            item.parts.append(partial)
            if item.tool is not None and item.tool.kind == FUNCTION:
                item.streamed = True
                return self._delta(item, partial)
        return b""  # citations_delta and newer delta types

    def _block_stop(self, obj: dict) -> bytes:
        index = obj.get("index")
        feeds = self._blocks.pop(index, None) if isinstance(index, int) else None
        if feeds in (_REASONING, _CALL) and self._open is not None and self._open.kind == feeds:
            return self._close()
        return b""  # a message stays open: the next text block continues it

    def _message_delta(self, obj: dict) -> None:
        self._take_usage(obj)
        delta = obj.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if isinstance(reason, str):
            self._stop_reason = reason

    # --- items ------------------------------------------------------------------------

    def _take_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _new_id(self, kind: str) -> str:
        assert self._ids is not None
        return self._ids.new(kind)

    def _open_message(self) -> bytes:
        item = self._open = _OpenItem(_MESSAGE, self._new_id("message"), self._take_index())
        added = {"id": item.id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        return self._event("response.output_item.added", output_index=item.index, item=added) + self._event(
            "response.content_part.added", item_id=item.id, output_index=item.index, content_index=0, part=output_text_part("")
        )

    def _text_delta(self, text: str) -> bytes:
        item = self._open
        assert item is not None
        item.parts.append(text)
        return self._delta(item, text)

    def _thinking_delta(self, text: str) -> bytes:
        item = self._open
        assert item is not None
        out = b""
        if not item.summary_open:
            item.summary_open = True
            out = self._event("response.reasoning_summary_part.added", item_id=item.id, output_index=item.index, summary_index=0,
                              part={"type": "summary_text", "text": ""})
        item.parts.append(text)
        return out + self._delta(item, text)

    def _delta(self, item: _OpenItem, text: str) -> bytes:
        """The item's delta event (text, summary text or arguments): the hot path, so the
        constant part is encoded once per item and only the text per event."""
        head = item.delta_head
        if not head:
            if item.kind == _MESSAGE:
                name, fields = "response.output_text.delta", {"content_index": 0, "logprobs": []}
            elif item.kind == _REASONING:
                name, fields = "response.reasoning_summary_text.delta", {"summary_index": 0}
            else:
                name, fields = "response.function_call_arguments.delta", {}
            encoded = orjson.dumps({"type": name, "item_id": item.id, "output_index": item.index, **fields})
            head = item.delta_head = b"event: " + name.encode() + b"\ndata: " + encoded[:-1] + b',"delta":'
        seq = self._seq
        self._seq = seq + 1
        return head + orjson.dumps(text) + b',"sequence_number":%d}\n\n' % seq

    def _open_call(self, block: dict) -> bytes:
        name = block.get("name")
        if self._names is None:
            self._names = tool_names(self._request)
        tool = self._names.client_tool(name if isinstance(name, str) else "")
        item = self._open = _OpenItem(_CALL, self._new_id(tool.kind), self._take_index())
        item.tool = tool
        call_id = block.get("id")
        item.call_id = call_id if isinstance(call_id, str) and call_id else new_tool_use_id()
        tool_input = block.get("input")
        if isinstance(tool_input, dict) and tool_input:  # the whole input up front (not how Anthropic streams, but valid)
            item.parts.append(orjson.dumps(tool_input).decode())
        if tool.kind == FUNCTION:
            added = {"id": item.id, "type": "function_call", "status": "in_progress", "call_id": item.call_id, "name": tool.name, "arguments": ""}
        elif tool.kind == CUSTOM:
            added = {"id": item.id, "type": "custom_tool_call", "status": "in_progress", "call_id": item.call_id, "name": tool.name, "input": ""}
        else:
            return b""  # a local shell call is sent whole when its block stops
        if tool.namespace:
            added["namespace"] = tool.namespace
        out = self._event("response.output_item.added", output_index=item.index, item=added)
        if item.parts and tool.kind == FUNCTION:
            item.streamed = True
            out += self._delta(item, item.parts[0])
        return out

    def _close(self) -> bytes:
        """Finish the open item: its closing events and ``output_item.done``."""
        item, self._open = self._open, None
        if item is None:
            return b""
        if item.kind == _MESSAGE:
            text = "".join(item.parts)
            part = output_text_part(text)
            done = message_item(item.id, text)
            return (
                self._event("response.output_text.done", item_id=item.id, output_index=item.index, content_index=0, text=text, logprobs=[])
                + self._event("response.content_part.done", item_id=item.id, output_index=item.index, content_index=0, part=part)
                + self._done(item.index, done)
            )
        if item.kind == _REASONING:
            text = "".join(item.parts)
            out = b""
            if item.summary_open:
                out = self._event("response.reasoning_summary_text.done", item_id=item.id, output_index=item.index, summary_index=0, text=text) + self._event(
                    "response.reasoning_summary_part.done", item_id=item.id, output_index=item.index, summary_index=0,
                    part={"type": "summary_text", "text": text},
                )
            done = reasoning_item({"type": "thinking", "thinking": text, "signature": item.signature}, item.id)
            return out + self._done(item.index, done or {"id": item.id, "type": "reasoning", "summary": summary_parts(text)})
        assert item.tool is not None
        raw = "".join(item.parts)
        done = call_item(item.tool, item.call_id, parse_arguments(raw), item.id)
        if done["type"] == "function_call":
            if item.tool.kind != FUNCTION:  # a local shell call Claude did not shape as one
                return self._whole_item(done, index=item.index)
            arguments = raw if item.streamed else done["arguments"]
            done["arguments"] = arguments
            out = b"" if item.streamed else self._delta(item, arguments)
            return out + self._event("response.function_call_arguments.done", item_id=item.id, output_index=item.index, arguments=arguments) + self._done(item.index, done)
        if done["type"] == "custom_tool_call":
            text = done["input"]
            out = self._event("response.custom_tool_call_input.delta", item_id=item.id, output_index=item.index, delta=text) if text else b""
            return out + self._event("response.custom_tool_call_input.done", item_id=item.id, output_index=item.index, input=text) + self._done(item.index, done)
        return self._whole_item(done, index=item.index)

    def _whole_item(self, item: dict, index: int | None = None) -> bytes:
        """An item sent in one go: ``output_item.added`` then ``output_item.done``."""
        output_index = self._take_index() if index is None else index
        return self._event("response.output_item.added", output_index=output_index, item=item) + self._done(output_index, item)

    def _done(self, index: int, item: dict) -> bytes:
        self._output.append(item)
        return self._event("response.output_item.done", output_index=index, item=item)

    # --- the end ----------------------------------------------------------------------

    def _end(self) -> bytes:
        out = self._ensure_started() + self._close()
        status, incomplete = status_for(self._stop_reason)
        name = "response.completed" if status == "completed" else "response.incomplete"
        out += self._response_event(name, status, incomplete_details=incomplete, usage=usage_to_responses(self.usage))
        self.finished = True
        return out

    def _failure(self, code: str, message: str) -> bytes:
        out = self._ensure_started()
        out += self._event("error", code=code, message=message, param=None)
        error = {"code": code, "message": message}
        out += self._response_event("response.failed", "failed", error=error, usage=usage_to_responses(self.usage))
        self.finished = True
        self._open = None
        return out

    # --- encoding ---------------------------------------------------------------------

    def _event(self, name: str, **fields: object) -> bytes:
        payload = {"type": name, "sequence_number": self._seq, **fields}
        self._seq += 1
        return encode_event(orjson.dumps(payload), name)

    def _response_event(self, name: str, status: str, *, incomplete_details: dict | None = None, error: dict | None = None,
                        usage: dict | None = None) -> bytes:
        assert self._envelope is not None
        done = name != "response.created" and name != "response.in_progress"
        completed_at = int(time.time()) if status == "completed" else None
        head = response_head(self._id, self._created, self._model, status, self._output if done else [], usage,
                             incomplete_details=incomplete_details, error=error, completed_at=completed_at)
        data = b'{"type":"' + name.encode() + b'","sequence_number":%d,"response":' % self._seq + self._envelope.response_bytes(head) + b"}"
        self._seq += 1
        return encode_event(data, name)


# --- Responses → Messages -------------------------------------------------------------

_TEXT, _THINKING, _TOOL = "text", "thinking", "tool_use"
_STOP_FOR_INCOMPLETE = {"max_output_tokens": "max_tokens", "content_filter": "refusal"}


class ResponsesStreamToMessages:
    """Feed each upstream Responses SSE event (name + data); send what ``feed``/``finish`` return."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.finished = False
        self.failed = False
        self.complete = False  # the upstream ended properly (response.completed, or incomplete for a known reason)
        self._started = False
        self._next_block = 0
        self._open: str | None = None  # kind of the open block
        self._open_item: int | None = None  # output_index of the item feeding it
        self._custom = False  # the open tool_use block is a custom tool call (text inside {"input": …})
        self._delta_seen: set[int] = set()  # output indexes whose content arrived as deltas
        self._summary_index: int | None = None
        self._used_tools = False
        self._refused = False

    # --- public API -------------------------------------------------------------------

    def feed(self, event: str | None, data: bytes) -> bytes:
        """One upstream Responses event → Anthropic SSE bytes."""
        if self.finished:
            return b""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.debug("responses→anthropic stream: skipping an event that is not JSON: %r", data[:200])
            return b""
        if not isinstance(obj, dict):
            return b""
        kind = obj.get("type") or event
        if not isinstance(kind, str):
            return b""
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            return self._text(obj, refusal=kind == "response.refusal.delta")
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._thinking(obj)
        if kind == "response.function_call_arguments.delta":
            return self._arguments(obj, custom=False)
        if kind == "response.custom_tool_call_input.delta":
            return self._arguments(obj, custom=True)
        if kind == "response.output_item.added":
            return self._item_added(obj)
        if kind == "response.output_item.done":
            return self._item_done(obj)
        if kind in ("response.created", "response.in_progress", "response.queued"):
            response = obj.get("response")
            return self._start(response if isinstance(response, dict) else {})
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            return self._terminal(kind, obj.get("response"))
        if kind == "error":
            inner = obj.get("error")  # some servers nest it; OpenAI puts code and message on the event
            source = inner if isinstance(inner, dict) else {k: obj.get(k) for k in ("message", "code", "param")}
            return self._upstream_failure(source)
        return b""  # content_part / *.done / annotation events and newer ones carry nothing new

    def finish(self) -> bytes:
        """Upstream ended without a terminal event: close blocks, ``message_delta`` + ``message_stop``."""
        if self.finished:
            return b""
        return self._end(None)

    def fail(self, status: int, message: str) -> bytes:
        """A gateway-side failure mid-stream, as Anthropic's in-band ``error`` event."""
        if self.finished:
            return b""
        self.finished = True
        return _event("error", error_body(ApiFormat.ANTHROPIC, kind_for_status(status), message))

    # --- events -----------------------------------------------------------------------

    def _start(self, response: dict) -> bytes:
        if self._started:
            return b""
        self._started = True
        resp_id = response.get("id")
        model = response.get("model")
        message = {
            "id": anthropic_message_id("msg_" + resp_id.removeprefix("resp_") if isinstance(resp_id, str) and resp_id else None),
            "type": "message",
            "role": "assistant",
            "model": model if isinstance(model, str) else "",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _item_added(self, obj: dict) -> bytes:
        item = obj.get("item")
        if not isinstance(item, dict):
            return b""
        index = self._index(obj)
        out = self._start({})
        kind = item.get("type")
        if kind == "reasoning":
            out += self._close() + self._open_block(_THINKING, index, {"type": "thinking", "thinking": "", "signature": ""})
        elif kind in ("function_call", "custom_tool_call") and isinstance(item.get("name"), str):
            out += self._close() + self._open_tool(item, index)
            if kind == "function_call" and isinstance(item.get("arguments"), str) and item["arguments"]:
                self._delta_seen.add(index)
                out += self._json_delta(item["arguments"])
            elif kind == "custom_tool_call" and isinstance(item.get("input"), str) and item["input"]:
                self._delta_seen.add(index)
                out += self._json_delta(_json_string_piece(item["input"]))
        elif kind == "message":
            out += self._close()
        return out

    def _text(self, obj: dict, *, refusal: bool) -> bytes:
        delta = obj.get("delta")
        if not isinstance(delta, str) or not delta:
            return b""
        index = self._index(obj)
        self._refused |= refusal
        out = self._start({})
        self._delta_seen.add(index)
        if self._open != _TEXT or self._open_item != index:
            out += self._close() + self._open_block(_TEXT, index, {"type": "text", "text": ""})
        return out + _block_delta(self._next_block - 1, {"type": "text_delta", "text": delta})

    def _thinking(self, obj: dict) -> bytes:
        delta = obj.get("delta")
        if not isinstance(delta, str) or not delta:
            return b""
        index = self._index(obj)
        out = self._start({})
        if self._open != _THINKING or self._open_item != index:
            out += self._close() + self._open_block(_THINKING, index, {"type": "thinking", "thinking": "", "signature": ""})
        summary = obj.get("summary_index")
        if isinstance(summary, int) and self._summary_index is not None and summary != self._summary_index and index in self._delta_seen:
            delta = "\n\n" + delta  # the summary's parts, as reasoning_text joins them
        if isinstance(summary, int):
            self._summary_index = summary
        self._delta_seen.add(index)
        return out + _block_delta(self._next_block - 1, {"type": "thinking_delta", "thinking": delta})

    def _arguments(self, obj: dict, *, custom: bool) -> bytes:
        delta = obj.get("delta")
        if not isinstance(delta, str) or not delta:
            return b""
        index = self._index(obj)
        if self._open != _TOOL or self._open_item != index or self._custom != custom:
            log.debug("responses→anthropic stream: dropping arguments for a call that is not the open one")
            return b""
        self._delta_seen.add(index)
        return self._json_delta(_json_string_piece(delta) if custom else delta)

    def _item_done(self, obj: dict) -> bytes:
        item = obj.get("item")
        if not isinstance(item, dict):
            return b""
        index = self._index(obj)
        out = self._start({})
        kind = item.get("type")
        is_open = self._open_item == index and self._open is not None
        streamed = index in self._delta_seen
        if kind == "message":
            if not streamed:
                texts, refused = message_texts(item.get("content"))
                self._refused |= refused
                if texts:
                    out += self._close() + self._open_block(_TEXT, index, {"type": "text", "text": ""})
                    out += _block_delta(self._next_block - 1, {"type": "text_delta", "text": "".join(texts)})
            return out + (self._close() if self._open_item == index else b"")
        if kind == "reasoning":
            if not (is_open and self._open == _THINKING):
                out += self._close() + self._open_block(_THINKING, index, {"type": "thinking", "thinking": "", "signature": ""})
            text = reasoning_text(item)
            if not streamed and text:
                out += _block_delta(self._next_block - 1, {"type": "thinking_delta", "thinking": text})
            encrypted = item.get("encrypted_content")
            if isinstance(encrypted, str) and encrypted:
                out += _block_delta(self._next_block - 1, {"type": "signature_delta", "signature": REASONING_PREFIX + encrypted})
            return out + self._close()
        if kind in ("function_call", "custom_tool_call") and isinstance(item.get("name"), str):
            custom = kind == "custom_tool_call"
            if not (is_open and self._open == _TOOL):
                out += self._close() + self._open_tool(item, index)
            if not streamed:
                whole = item.get("input") if custom else item.get("arguments")
                if isinstance(whole, str) and whole:
                    out += self._json_delta(_json_string_piece(whole) if custom else whole)
            return out + self._close()
        return out

    def _index(self, obj: dict) -> int:
        """The event's ``output_index``; a server that leaves it out means the item being streamed."""
        index = obj.get("output_index")
        if isinstance(index, int):
            return index
        return self._open_item if self._open_item is not None else -1

    def _terminal(self, kind: str, response: object) -> bytes:
        response = response if isinstance(response, dict) else {}
        out = self._start(response)
        usage = response.get("usage")
        if isinstance(usage, dict):
            self.usage = usage_from_responses(usage)
        if kind == "response.failed":
            error = response.get("error")
            return out + self._upstream_failure(error if isinstance(error, dict) else {"message": "upstream response failed"})
        if kind == "response.incomplete":
            details = response.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            stop_reason = _STOP_FOR_INCOMPLETE.get(reason) if isinstance(reason, str) else None
            if stop_reason is None:
                return out + self._upstream_failure({"message": f"upstream response is incomplete (reason: {str(reason)[:100]})", "code": "server_error"})
            return out + self._end(stop_reason, complete=True)
        return out + self._end(None, complete=True)

    def _upstream_failure(self, error: dict) -> bytes:
        """An upstream ``error`` / ``response.failed``: Anthropic's in-band ``error`` event."""
        out = self._start({})
        code = error.get("code")
        described = {"error": {"message": error.get("message"), "type": error.get("type") or code, "code": code, "param": error.get("param")}}
        self.finished = self.failed = True
        return out + _event("error", translate_error_object(described, 0, upstream=ApiFormat.OPENAI, client=ApiFormat.ANTHROPIC))

    def _end(self, stop_reason: str | None, *, complete: bool = False) -> bytes:
        self.complete = complete
        out = self._start({}) + self._close()
        if stop_reason is None:
            stop_reason = "refusal" if self._refused else "tool_use" if self._used_tools else "end_turn"
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        out += _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_to_anthropic(self.usage)})
        self.finished = True
        return out + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

    # --- blocks -----------------------------------------------------------------------

    def _open_block(self, kind: str, item_index: int, block: dict) -> bytes:
        out = _event("content_block_start", {"type": "content_block_start", "index": self._next_block, "content_block": block})
        self._next_block += 1
        self._open = kind
        self._open_item = item_index
        self._summary_index = None
        return out

    def _open_tool(self, item: dict, index: int) -> bytes:
        self._used_tools = True
        block = tool_use_block(item)
        out = self._open_block(_TOOL, index, block)
        self._custom = item.get("type") == "custom_tool_call"
        if self._custom:
            out += self._json_delta('{"input":"')
        return out

    def _json_delta(self, partial: str) -> bytes:
        return _block_delta(self._next_block - 1, {"type": "input_json_delta", "partial_json": partial})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        out = b""
        if self._open == _TOOL and self._custom:
            out = self._json_delta('"}')
        self._open = self._open_item = None
        self._custom = False
        return out + b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n' % (self._next_block - 1)


def tool_use_block(item: dict) -> dict:
    """The ``content_block_start`` of a call item; its input follows as JSON deltas."""
    namespace = item.get("namespace")
    call_id = item.get("call_id")
    return {
        "type": "tool_use",
        "id": call_id if isinstance(call_id, str) and call_id else new_tool_use_id(),
        "name": anthropic_tool_name(item["name"], namespace if isinstance(namespace, str) else None),
        "input": {},
    }


def _json_string_piece(text: str) -> str:
    """``text`` escaped for the inside of a JSON string (a piece of one, streamed)."""
    return orjson.dumps(text).decode()[1:-1]


def _event(name: str, payload: dict) -> bytes:
    return encode_event(orjson.dumps(payload), name)


def _block_delta(index: int, delta: dict) -> bytes:
    return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
