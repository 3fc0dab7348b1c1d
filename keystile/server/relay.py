"""Relays: turn an upstream SSE stream into the client's stream, event by event.

Each relay takes upstream bytes as they arrive and returns the bytes to send the client
now — complete events only, never held back longer than it takes to see an event's end.
Same-format relays forward each event's exact bytes and only watch usage; translating
relays run a ``translate.stream_to_*`` state machine. Every relay knows whether the
upstream ended properly, so a stream cut short becomes an in-band error event rather
than a silent truncation.
"""

from __future__ import annotations

import re
from typing import Protocol

import orjson

from keystile.accounting.meters import AnthropicStreamMeter, OpenAIStreamMeter, is_content_chunk, is_usage_only_chunk
from keystile.accounting.usage import Usage
from keystile.apiformat import ApiFormat
from keystile.errors import error_body, kind_for_status
from keystile.sse import SSEParser, encode_event
from keystile.translate.stream_to_anthropic import ChatStreamToMessages
from keystile.translate.stream_to_openai import MessagesStreamToChat

_FINISH_SET = re.compile(rb'"finish_reason"\s*:\s*(?!null)')
TRUNCATED = "The upstream stream ended before it was complete."
MALFORMED = "The upstream sent a malformed stream event."


class Relay(Protocol):
    usage: Usage
    failed: bool
    """An error event was relayed or produced: the stream did not end well."""
    content_events: int
    """Upstream events that carried output (text, thinking or tool input): each is at least one
    output token, which is what a stream cut off before its final usage report is charged."""

    def feed(self, chunk: bytes) -> bytes: ...

    def end(self) -> bytes:
        """Upstream EOF: the closing bytes, or an in-band error if the stream was cut short."""
        ...

    def fail(self, status: int, message: str) -> bytes:
        """A failure on keystile's side of the stream, as the client format's in-band error."""
        ...


def _looks_like_json_object(data: bytes) -> bool:
    return data[:1] == b"{" and data.rstrip()[-1:] == b"}"


class _Passthrough:
    """Same format on both sides: complete events are forwarded as received, a meter reads usage."""

    __slots__ = ("parser", "meter", "done", "failed", "content_events")
    error_event: str | None = None

    def __init__(self, meter: AnthropicStreamMeter | OpenAIStreamMeter) -> None:
        self.parser = SSEParser()
        self.meter = meter
        self.done = False
        self.failed = False
        self.content_events = 0

    @property
    def usage(self) -> Usage:
        return self.meter.usage

    def feed(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        if self.done:
            return b""
        tail = self.feed(b"\n\n") if self.parser.pending.strip() else b""
        if self.done:
            return tail
        return tail + self._unterminated()

    def _unterminated(self) -> bytes:
        return self.fail(502, TRUNCATED)

    def fail(self, status: int, message: str) -> bytes:
        if self.done:
            return b""
        self.done = self.failed = True
        fmt = ApiFormat.ANTHROPIC if self.error_event else ApiFormat.OPENAI
        return encode_event(orjson.dumps(error_body(fmt, kind_for_status(status), message)), self.error_event)


class AnthropicPassthrough(_Passthrough):
    """Anthropic upstream, Anthropic client: events forwarded byte for byte."""

    __slots__ = ()
    error_event = "error"

    def __init__(self) -> None:
        super().__init__(AnthropicStreamMeter())

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        out = []
        for event in self.parser.feed(chunk):
            name = event.event
            if event.data and not _looks_like_json_object(event.data):
                out.append(self.fail(502, MALFORMED))
                break
            self.meter.observe(name, event.data)
            if name == "content_block_delta":
                self.content_events += 1
            out.append(event.raw)
            if name == "message_stop" or name == "error":
                self.done = True
                self.failed = name == "error"
                break
        return b"".join(out)


class OpenAIPassthrough(_Passthrough):
    """OpenAI upstream, OpenAI client: chunks forwarded byte for byte.

    keystile always asks the upstream for the final usage chunk; when the client did not,
    that one chunk is dropped so the client sees exactly the stream it asked for.
    """

    __slots__ = ("strip_usage",)

    def __init__(self, *, client_wants_usage: bool) -> None:
        super().__init__(OpenAIStreamMeter())
        self.strip_usage = not client_wants_usage

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        out = []
        meter = self.meter
        for event in self.parser.feed(chunk):
            data = event.data
            if data == b"[DONE]":
                out.append(event.raw)
                self.done = True
                break
            if data and not _looks_like_json_object(data):
                out.append(self.fail(502, MALFORMED))
                break
            meter.observe(data)
            if is_content_chunk(data):
                self.content_events += 1
            if meter.error is not None:
                out.append(event.raw)
                self.done = self.failed = True
                break
            if self.strip_usage and data and is_usage_only_chunk(data):
                continue
            out.append(event.raw)
        return b"".join(out)

    def _unterminated(self) -> bytes:
        if self.meter.finish_reason is not None:  # complete, the server just never sent [DONE]
            self.done = True
            return b"data: [DONE]\n\n"
        return self.fail(502, TRUNCATED)


class _Translating:
    """Different formats: each upstream event goes through a ``translate.stream_to_*`` state machine."""

    __slots__ = ("parser", "translator", "upstream_done", "failed", "content_events")

    def __init__(self, translator: ChatStreamToMessages | MessagesStreamToChat) -> None:
        self.parser = SSEParser()
        self.translator = translator
        self.upstream_done = False
        self.failed = False
        self.content_events = 0

    @property
    def usage(self) -> Usage:
        return self.translator.usage

    def feed(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        tail = self.feed(b"\n\n") if self.parser.pending.strip() else b""
        if self.translator.finished:
            return tail
        if self.upstream_done:
            return tail + self.translator.finish()
        return tail + self.fail(502, TRUNCATED)

    def fail(self, status: int, message: str) -> bytes:
        if self.translator.finished:
            return b""
        self.failed = True
        return self.translator.fail(status, message)


class OpenAIToAnthropic(_Translating):
    """OpenAI upstream, Anthropic client."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(ChatStreamToMessages())

    def feed(self, chunk: bytes) -> bytes:
        translator = self.translator
        out = []
        for event in self.parser.feed(chunk):
            if translator.finished:
                break
            data = event.data
            if not data:
                continue
            if data == b"[DONE]":
                self.upstream_done = True
            elif not _looks_like_json_object(data):
                out.append(self.fail(502, MALFORMED))
                break
            elif b'"finish_reason"' in data and _FINISH_SET.search(data):
                self.upstream_done = True
            if is_content_chunk(data):
                self.content_events += 1
            produced = translator.feed(data)
            if translator.finished and not self.upstream_done:
                self.failed = True  # an in-band error from the upstream
            out.append(produced)
        return b"".join(out)


class AnthropicToOpenAI(_Translating):
    """Anthropic upstream, OpenAI client."""

    __slots__ = ()

    def __init__(self, *, client_wants_usage: bool) -> None:
        super().__init__(MessagesStreamToChat(include_usage=client_wants_usage))

    def feed(self, chunk: bytes) -> bytes:
        translator = self.translator
        out = []
        for event in self.parser.feed(chunk):
            if translator.finished:
                break
            if event.data and not _looks_like_json_object(event.data):
                out.append(self.fail(502, MALFORMED))
                break
            if event.event == "content_block_delta":
                self.content_events += 1
            elif event.event == "message_stop":
                self.upstream_done = True
            elif event.event == "error":
                self.failed = True
            out.append(translator.feed(event.event, event.data))
        return b"".join(out)


def make_relay(client: ApiFormat, wire: ApiFormat, *, client_wants_usage: bool) -> Relay:
    if client is ApiFormat.ANTHROPIC:
        return AnthropicPassthrough() if wire is ApiFormat.ANTHROPIC else OpenAIToAnthropic()
    if wire is ApiFormat.OPENAI:
        return OpenAIPassthrough(client_wants_usage=client_wants_usage)
    return AnthropicToOpenAI(client_wants_usage=client_wants_usage)
