"""Usage read from responses: meters that watch a pass-through SSE stream, and whole bodies.

Meters see every event of every stream, so they decide from the event name or a few byte
checks whether an event can carry usage, and parse JSON only for the few that can. Their
``usage`` is up to date after each event, so a stream cut off mid-way is charged for what
was seen.
"""

from __future__ import annotations

import re
from typing import Callable

import orjson

from keystile.accounting.usage import Usage, usage_from_anthropic, usage_from_gemini, usage_from_openai, usage_from_responses
from keystile.apiformat import ApiFormat

__all__ = [
    "AnthropicStreamMeter",
    "GeminiStreamMeter",
    "OpenAIStreamMeter",
    "ResponsesStreamMeter",
    "is_gemini_content_chunk",
    "is_content_chunk",
    "is_usage_only_chunk",
    "usage_of_cut_stream",
    "usage_from_response",
]


def _loads(data: bytes) -> dict | None:
    try:
        obj = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return obj if isinstance(obj, dict) else None


def _error_message(obj: dict) -> str:
    error = obj.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message:
            return message
        kind = error.get("type")
        if isinstance(kind, str) and kind:
            return kind
    elif isinstance(error, str) and error:
        return error
    return "error"


class AnthropicStreamMeter:
    """Usage, stop reason and any in-band error of one Anthropic Messages stream.

    ``message_start`` carries input and cache counts and an initial output count;
    ``message_delta`` carries cumulative counts (output, and possibly input and cache
    again). Every count is the largest value seen, so nothing is added twice.
    """

    __slots__ = ("usage", "stop_reason", "error", "model")

    # Event names that may carry what we want; every other event is skipped unparsed.
    _WANTED = frozenset(("message_start", "message_delta", "error"))

    def __init__(self) -> None:
        self.usage = Usage()
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.model: str | None = None  # the model that answered, from ``message_start``

    def observe(self, event: str | None, data: bytes) -> None:
        if event is not None:
            if event not in self._WANTED:
                return
        elif b"message_" not in data and b'"error"' not in data:
            # A stream framed without ``event:`` lines; the type is inside the data.
            return
        obj = _loads(data)
        if obj is None:
            return
        kind = obj.get("type") if event is None else event
        if kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self._merge(message.get("usage"))
                model = message.get("model")
                if isinstance(model, str):
                    self.model = model
        elif kind == "message_delta":
            self._merge(obj.get("usage"))
            delta = obj.get("delta")
            if isinstance(delta, dict):
                reason = delta.get("stop_reason")
                if isinstance(reason, str):
                    self.stop_reason = reason
        elif kind == "error":
            self.error = _error_message(obj)

    def _merge(self, raw: object) -> None:
        if not isinstance(raw, dict):
            return
        new = usage_from_anthropic(raw)
        usage = self.usage
        usage.input_tokens = max(usage.input_tokens, new.input_tokens)
        usage.output_tokens = max(usage.output_tokens, new.output_tokens)
        usage.cache_read_tokens = max(usage.cache_read_tokens, new.cache_read_tokens)
        usage.cache_write_tokens = max(usage.cache_write_tokens, new.cache_write_tokens)


_NULL_VALUE = (b":null", b": null")


def _non_null(data: bytes, key: bytes, pattern: re.Pattern[bytes]) -> bool:
    """Does the payload hold ``key`` (quoted) with a value other than null? Bytes only.

    ``rfind`` and ``startswith`` at an offset are the cheapest scans bytes offer (``in`` goes
    through the buffer protocol and costs more), and searching from the end finds ``usage``
    and ``finish_reason`` quickly where OpenAI puts them. A key is taken to occur once per
    payload — true of ``usage``, and of ``finish_reason`` as long as a chunk carries one
    choice, as OpenAI's and vLLM's do. Quotes inside string values are escaped, so only a
    value that is exactly the key's name can look like it; the regex tells those apart.
    """
    at = data.rfind(key)
    while at >= 0:
        if data.startswith(_NULL_VALUE, at + len(key)):
            return False
        if pattern.match(data, at) is not None:
            return True
        at = data.rfind(key, 0, at)
    return False


_USAGE_KEY = b'"usage"'
_USAGE_SET = re.compile(rb'"usage"\s*:\s*(?!null)')
_FINISH_KEY = b'"finish_reason"'
_FINISH_SET = re.compile(rb'"finish_reason"\s*:\s*(?!null)')
# An in-band error is a payload of its own, ``{"error": {...}}``: a prefix test, no scan.
_ERROR_START = (b'{"error"', b'{ "error"')


class OpenAIStreamMeter:
    """Usage, finish reason and any in-band error of one OpenAI Chat Completions stream.

    Usage arrives in the last chunk when the client asked for ``include_usage``; some
    compatible servers send a running total in every chunk or ``"usage": null``. The latest
    non-empty report wins, because OpenAI reports are cumulative and only the final one
    splits out cached tokens.
    """

    __slots__ = ("usage", "finish_reason", "error", "model")

    def __init__(self) -> None:
        self.usage = Usage()
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.model: str | None = None  # as named by the chunks that were parsed

    def observe(self, data: bytes) -> None:
        """One SSE ``data`` payload: a chunk's JSON, or ``b"[DONE]"``."""
        if not (
            _non_null(data, _USAGE_KEY, _USAGE_SET)
            or _non_null(data, _FINISH_KEY, _FINISH_SET)
            or data.startswith(_ERROR_START)
        ):
            return
        obj = _loads(data)
        if obj is None:
            return
        model = obj.get("model")
        if isinstance(model, str) and model:
            self.model = model
        raw_usage = obj.get("usage")
        if raw_usage is None:
            # Groq reports usage inside its own extension object on the last chunk.
            extension = obj.get("x_groq")
            raw_usage = extension.get("usage") if isinstance(extension, dict) else None
        if isinstance(raw_usage, dict):
            new = usage_from_openai(raw_usage)
            if new.total_tokens:
                self.usage = new
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    reason = choice.get("finish_reason")
                    if isinstance(reason, str):
                        self.finish_reason = reason
        if obj.get("error") is not None:
            self.error = _error_message(obj)

    @staticmethod
    def is_usage_only_chunk(data: bytes) -> bool:
        return is_usage_only_chunk(data)


_USAGE_METADATA_KEY = b'"usageMetadata"'
_FINISH_REASON_KEY = b'"finishReason"'


class GeminiStreamMeter:
    """Usage, finish reason and any in-band error of one Gemini ``alt=sse`` stream.

    Gemini puts a running ``usageMetadata`` in every chunk (prompt counts from the first, the
    output so far); the last one is the total. Parsing every chunk for it would cost a JSON
    decode per chunk, so the meter keeps the latest payload that has one and reads it only
    when ``usage`` is asked for. Chunks carrying ``finishReason`` (the last) or an error are
    parsed at once.
    """

    __slots__ = ("finish_reason", "error", "model", "_usage", "_pending")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.model: str | None = None  # ``modelVersion``, as named by the chunks that were parsed
        self._usage = Usage()
        self._pending: bytes | None = None  # the latest chunk with usageMetadata, not parsed yet

    @property
    def usage(self) -> Usage:
        pending = self._pending
        if pending is not None:
            self._pending = None
            obj = _loads(pending)
            if obj is not None:
                self._read_usage(obj)
        return self._usage

    def observe(self, data: bytes) -> None:
        """One SSE ``data`` payload: a ``GenerateContentResponse`` chunk or an error object."""
        if data.startswith(_ERROR_START):
            obj = _loads(data)
            if obj is not None and obj.get("error") is not None:
                self.error = _error_message(obj)
            return
        if data.rfind(_FINISH_REASON_KEY) < 0:
            if data.rfind(_USAGE_METADATA_KEY) >= 0:
                self._pending = data
            return
        obj = _loads(data)
        if obj is None:
            return
        self._pending = None
        self._read_usage(obj)
        candidates = obj.get("candidates")
        if isinstance(candidates, list):
            for candidate in candidates:
                if isinstance(candidate, dict) and isinstance(candidate.get("finishReason"), str):
                    self.finish_reason = candidate["finishReason"]

    def _read_usage(self, obj: dict) -> None:
        metadata = obj.get("usageMetadata")
        if isinstance(metadata, dict):
            new = usage_from_gemini(metadata)
            if new.total_tokens:
                self._usage = new
        model = obj.get("modelVersion")
        if isinstance(model, str) and model:
            self.model = model


_GEMINI_CONTENT = re.compile(rb'"(?:text"\s*:\s*"(?!")|functionCall")')


def is_gemini_content_chunk(data: bytes) -> bool:
    """Does this Gemini chunk carry output — non-empty text (thoughts included) or a function call?"""
    return _GEMINI_CONTENT.search(data) is not None


# Responses streams name every event; these are the ones that can say something to account.
_RESPONSES_TERMINAL = frozenset(("response.completed", "response.incomplete", "response.failed"))
_RESPONSES_WANTED = _RESPONSES_TERMINAL | {"response.created", "error"}
# Without ``event:`` lines the type is inside the data: a cheap test before parsing.
_RESPONSES_MARKERS = (b'"response.c', b'"response.incomplete"', b'"response.failed"', b'"error"')


class ResponsesStreamMeter:
    """Usage, final status and any in-band error of one OpenAI Responses stream.

    Usage arrives once, in the terminal event (``response.completed``, ``response.incomplete``
    or ``response.failed``, all carrying the whole response); ``response.created`` names the
    model. ``finished`` is set by a terminal event. ``error`` is set by an ``error`` event or
    a ``response.failed`` (whose ``response.error`` says why); an incomplete response is not
    an error, its ``status`` is ``incomplete`` and ``incomplete_reason`` says why. Deltas,
    the bulk of a stream, are skipped by their event name without being parsed.
    """

    __slots__ = ("usage", "status", "incomplete_reason", "error", "model", "finished")

    def __init__(self) -> None:
        self.usage = Usage()
        self.status: str | None = None  # completed, incomplete or failed, from the terminal event
        self.incomplete_reason: str | None = None
        self.error: str | None = None
        self.model: str | None = None
        self.finished = False

    def observe(self, event: str | None, data: bytes) -> None:
        if event is not None:
            if event not in _RESPONSES_WANTED:
                return
        elif not any(marker in data for marker in _RESPONSES_MARKERS):
            return
        obj = _loads(data)
        if obj is None:
            return
        kind = obj.get("type") if event is None else event
        if kind == "error":
            self.error = _error_message(obj) if isinstance(obj.get("error"), (dict, str)) else _event_error_message(obj)
            return
        if kind != "response.created" and kind not in _RESPONSES_TERMINAL:
            return
        response = obj.get("response")
        if not isinstance(response, dict):
            return
        model = response.get("model")
        if isinstance(model, str) and model:
            self.model = model
        if kind == "response.created":
            return
        self.finished = True
        self.status = kind.removeprefix("response.")
        usage = response.get("usage")
        if isinstance(usage, dict):
            new = usage_from_responses(usage)
            if new.total_tokens:
                self.usage = new
        if kind == "response.incomplete":
            details = response.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            self.incomplete_reason = reason if isinstance(reason, str) else None
        elif kind == "response.failed":
            self.error = _error_message(response) if response.get("error") else "response failed"


def _event_error_message(obj: dict) -> str:
    """A Responses ``error`` event: ``code`` and ``message`` sit on the event itself."""
    message = obj.get("message")
    if isinstance(message, str) and message:
        return message
    code = obj.get("code")
    return code if isinstance(code, str) and code else "error"


def is_usage_only_chunk(data: bytes) -> bool:
    """True for the chunk OpenAI sends last under ``include_usage``: usage set, ``choices: []``.

    The gateway drops it when it asked for usage on the client's behalf.
    """
    if not _non_null(data, _USAGE_KEY, _USAGE_SET):
        return False
    obj = _loads(data)
    return obj is not None and obj.get("choices") == [] and isinstance(obj.get("usage"), dict)


_CONTENT_SET = re.compile(rb'"(?:content|arguments|reasoning_content|refusal)"\s*:\s*"(?!")')


def is_content_chunk(data: bytes) -> bool:
    """Does this OpenAI chunk carry output — text, reasoning or tool-call arguments, non-empty?

    Quotes inside JSON strings are escaped, so only a real key can match. The first chunk
    (``"content": ""`` with the role) and the finish and usage chunks do not count.
    """
    return _CONTENT_SET.search(data) is not None


def usage_of_cut_stream(seen: Usage, content_events: int, estimate_input: Callable[[], int]) -> Usage:
    """What to charge for a stream that ended early (client gone, upstream failed mid-way).

    The upstream's own counts where it reported them, filled in where it had not yet:
    Anthropic reports input and cache counts in ``message_start`` but the output only at the
    end; OpenAI reports everything only at the end. Output is at least one token per content
    event already relayed (each carries one or more); input, when nothing was reported, is
    estimated from the request body. Both are lower bounds of what the provider bills.
    """
    usage = Usage(seen.input_tokens, max(seen.output_tokens, content_events), seen.cache_read_tokens, seen.cache_write_tokens)
    if usage.prompt_tokens == 0:
        usage.input_tokens = estimate_input()
    return usage


def usage_from_response(body: bytes, fmt: ApiFormat) -> Usage:
    """Usage of a whole non-streaming response body; ``Usage()`` for anything unreadable."""
    obj = _loads(body)
    if obj is None:
        return Usage()
    if fmt is ApiFormat.ANTHROPIC:
        return usage_from_anthropic(obj.get("usage"))
    if fmt is ApiFormat.RESPONSES:
        return usage_from_responses(obj.get("usage"))
    return usage_from_openai(obj.get("usage"))
