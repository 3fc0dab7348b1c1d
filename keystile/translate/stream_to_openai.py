"""Anthropic Messages SSE events → OpenAI chat.completion.chunk stream, one event at a time.

Tool calls are numbered by the order they start (``tool_calls[].index`` counts tool calls,
not Anthropic content blocks). Thinking is surfaced as in ``response_to_openai``:
``thinking_delta`` → ``delta.reasoning_content`` as it arrives, and when a thinking block
ends, one ``delta.thinking_blocks`` entry carrying the whole block and its signature (with
an ``index``, so the OpenAI SDK's delta accumulator merges it like ``tool_calls``).
``ping`` and ``citations_delta`` produce nothing; server-tool blocks are skipped.

Every chunk shares one prefix (id, object, created, model), encoded once at
``message_start``; per event only the delta is serialised.
"""

from __future__ import annotations

import logging
import time

import orjson

from keystile.accounting.usage import Usage, usage_from_anthropic, usage_to_openai
from keystile.apiformat import ApiFormat
from keystile.errors import error_body, kind_for_status
from keystile.translate.errors import translate_error_object
from keystile.translate.hub_stream import HubStreamEncoder
from keystile.translate.ids import openai_completion_id
from keystile.translate.stop_reasons import finish_reason_for

log = logging.getLogger("keystile.translate")

_DONE = b"data: [DONE]\n\n"


class MessagesStreamToChat(HubStreamEncoder):
    """Feed each upstream Anthropic SSE event (name + data); send what ``feed``/``finish`` return."""

    direction = "anthropic→openai"

    def __init__(self, *, include_usage: bool, model: str | None = None) -> None:
        self.usage = Usage()
        self.finished = False
        self._include_usage = include_usage
        self._model = model
        self._created = int(time.time())
        self._id = openai_completion_id(None)
        self._prefix = b""
        self._started = False
        self._tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool call index
        self._thinking: dict[int, list[str]] = {}  # Anthropic block index → thinking text so far
        self._signatures: dict[int, str] = {}
        self._thinking_blocks = 0
        self._finish_sent = False

    # --- public API -------------------------------------------------------------------

    def fail(self, status: int, message: str) -> bytes:
        """A gateway-side failure mid-stream, as an in-band ``{"error": …}`` data line."""
        if self.finished:
            return b""
        self.finished = True
        return b"data: " + orjson.dumps(error_body(ApiFormat.OPENAI, kind_for_status(status), message)) + b"\n\n"

    def _error(self, obj: dict) -> bytes:
        self.finished = True
        err = translate_error_object(obj, 0, upstream=ApiFormat.ANTHROPIC, client=ApiFormat.OPENAI)
        return b"data: " + orjson.dumps(err) + b"\n\n"

    # --- events -----------------------------------------------------------------------

    def _message_start(self, obj: dict) -> bytes:
        message = obj.get("message")
        if not isinstance(message, dict):
            message = {}
        self.usage = usage_from_anthropic(message.get("usage"))
        if self._started:
            return b""
        self._id = openai_completion_id(message.get("id"))
        model = self._model or message.get("model")
        return self._begin(model if isinstance(model, str) else "")

    def _begin(self, model: str) -> bytes:
        self._started = True
        self._prefix = (
            b'{"id":' + orjson.dumps(self._id) + b',"object":"chat.completion.chunk","created":%d,"model":' % self._created
        ) + orjson.dumps(model)
        return self._chunk({"role": "assistant", "content": ""})

    def _ensure_started(self) -> bytes:
        return b"" if self._started else self._begin(self._model or "")

    def _block_start(self, obj: dict) -> bytes:
        index = obj.get("index")
        block = obj.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            return b""
        kind = block.get("type")
        head = self._ensure_started()
        if kind == "text":
            text = block.get("text")
            return head + (self._chunk({"content": text}) if isinstance(text, str) and text else b"")
        if kind == "tool_use":
            k = len(self._tool_index)
            self._tool_index[index] = k
            tool_input = block.get("input")
            arguments = orjson.dumps(tool_input).decode() if isinstance(tool_input, dict) and tool_input else ""
            call = {"index": k, "id": block.get("id"), "type": "function", "function": {"name": block.get("name"), "arguments": arguments}}
            return head + self._chunk({"tool_calls": [call]})
        if kind == "thinking":
            text = block.get("thinking")
            self._thinking[index] = [text] if isinstance(text, str) and text else []
            return head + (self._chunk({"reasoning_content": text}) if isinstance(text, str) and text else b"")
        if kind == "redacted_thinking":
            entry = {"index": self._thinking_blocks, "type": "redacted_thinking", "data": block.get("data")}
            self._thinking_blocks += 1
            return head + self._chunk({"thinking_blocks": [entry]})
        log.debug("anthropic→openai stream: skipping %r block", kind)
        return head

    def _block_delta(self, obj: dict) -> bytes:
        delta = obj.get("delta")
        index = obj.get("index")
        if not isinstance(delta, dict) or not isinstance(index, int):
            return b""
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                return self._ensure_started() + self._chunk({"content": text})
            return b""
        if kind == "input_json_delta":
            k = self._tool_index.get(index)
            partial = delta.get("partial_json")
            if k is None or not isinstance(partial, str) or not partial:
                return b""
            return self._chunk({"tool_calls": [{"index": k, "function": {"arguments": partial}}]})
        if kind == "thinking_delta":
            text = delta.get("thinking")
            parts = self._thinking.get(index)
            if not isinstance(text, str) or not text:
                return b""
            if parts is not None:
                parts.append(text)
            return self._ensure_started() + self._chunk({"reasoning_content": text})
        if kind == "signature_delta":
            signature = delta.get("signature")
            if isinstance(signature, str):
                self._signatures[index] = signature
        return b""

    def _block_stop(self, obj: dict) -> bytes:
        index = obj.get("index")
        parts = self._thinking.pop(index, None) if isinstance(index, int) else None
        if parts is None:
            return b""
        entry = {
            "index": self._thinking_blocks,
            "type": "thinking",
            "thinking": "".join(parts),
            "signature": self._signatures.pop(index, ""),
        }
        self._thinking_blocks += 1
        return self._chunk({"thinking_blocks": [entry]})

    def _message_delta(self, obj: dict) -> bytes:
        self._take_usage(obj)
        delta = obj.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if stop_reason is None or self._finish_sent:
            return b""
        self._finish_sent = True
        return self._ensure_started() + self._chunk({}, finish_reason_for(stop_reason))

    def _end(self) -> bytes:
        out = [self._ensure_started()]
        if not self._finish_sent:
            self._finish_sent = True
            out.append(self._chunk({}, "stop"))
        if self._include_usage:
            out.append(b"data: " + self._prefix + b',"choices":[],"usage":' + orjson.dumps(usage_to_openai(self.usage)) + b"}\n\n")
        out.append(_DONE)
        self.finished = True
        return b"".join(out)

    # --- encoding ---------------------------------------------------------------------

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> bytes:
        reason = b'"' + finish_reason.encode() + b'"' if finish_reason else b"null"
        return (
            b"data: "
            + self._prefix
            + b',"choices":[{"index":0,"delta":'
            + orjson.dumps(delta)
            + b',"logprobs":null,"finish_reason":'
            + reason
            + b"}]}\n\n"
        )
