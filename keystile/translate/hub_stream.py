"""Reading the hub's stream: Anthropic Messages events, handed to a client format's encoder.

Chat, Responses and Gemini clients served by an Anthropic-family deployment (or by any
deployment, through the hub) each turn the same event sequence into their own API's stream.
Reading an event and choosing what to do with it is the same for all of them; only what each
kind of event becomes differs, and that is what an encoder defines.
"""

from __future__ import annotations

import logging

import orjson

from keystile.accounting.usage import Usage, usage_from_anthropic

log = logging.getLogger("keystile.translate")


class HubStreamEncoder:
    """Base of the encoders from the hub's stream events to a client format's stream.

    ``feed`` takes one upstream event and returns the bytes to send the client for it (``b""``
    for none). A subclass implements one method per event kind; ``_message_start`` and
    ``_message_delta`` may return None when the event only updates state.
    """

    finished = False
    """Set once the client's stream has ended (its finish signal or an in-band error sent)."""
    usage: Usage
    """What the stream has reported so far (``message_start``, then each ``message_delta``)."""
    direction = "anthropic→?"
    """For the debug line about an event that is not JSON."""

    def feed(self, event: str | None, data: bytes) -> bytes:
        """One upstream Anthropic event → zero or more events of the client's stream."""
        if self.finished:
            return b""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.debug("%s stream: skipping an event that is not JSON: %r", self.direction, data[:200])
            return b""
        if not isinstance(obj, dict):
            return b""
        kind = obj.get("type") or event
        if kind == "content_block_delta":
            return self._block_delta(obj)
        if kind == "content_block_start":
            return self._block_start(obj)
        if kind == "content_block_stop":
            return self._block_stop(obj)
        if kind == "message_start":
            return self._message_start(obj) or b""
        if kind == "message_delta":
            return self._message_delta(obj) or b""
        if kind == "message_stop":
            return self._end()
        if kind == "error":
            return self._error(obj)
        return b""  # ping and event types added after this was written

    def finish(self) -> bytes:
        """The upstream ended without ``message_stop``: close what is open and send the client's
        finish signal anyway."""
        if self.finished:
            return b""
        return self._end()

    def _take_usage(self, delta: dict) -> None:
        """A ``message_delta``'s usage: cumulative totals, output always, input and cache counts
        only when the event repeats them."""
        usage = delta.get("usage")
        if not isinstance(usage, dict):
            return
        update = usage_from_anthropic(usage)
        self.usage.output_tokens = update.output_tokens
        if usage.get("input_tokens") is not None:
            self.usage.input_tokens = update.input_tokens
        if usage.get("cache_read_input_tokens") is not None:
            self.usage.cache_read_tokens = update.cache_read_tokens
        if usage.get("cache_creation_input_tokens") is not None:
            self.usage.cache_write_tokens = update.cache_write_tokens

    def _block_start(self, obj: dict) -> bytes:
        raise NotImplementedError

    def _block_delta(self, obj: dict) -> bytes:
        raise NotImplementedError

    def _block_stop(self, obj: dict) -> bytes:
        raise NotImplementedError

    def _message_start(self, obj: dict) -> bytes | None:
        raise NotImplementedError

    def _message_delta(self, obj: dict) -> bytes | None:
        raise NotImplementedError

    def _end(self) -> bytes:
        raise NotImplementedError

    def _error(self, obj: dict) -> bytes:
        """An ``error`` event: the client's in-band error; ends its stream."""
        raise NotImplementedError
