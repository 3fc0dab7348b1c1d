"""Token usage in one normalised shape, whatever format the upstream reported it in.

The shape follows Anthropic's semantics: ``input_tokens`` excludes cache reads and cache
writes, which are counted separately. OpenAI's ``prompt_tokens`` (Chat Completions) and
``input_tokens`` (Responses) and Gemini's ``promptTokenCount`` include cached tokens, so
converting subtracts them instead of counting them twice. Output includes reasoning:
Anthropic counts thinking in ``output_tokens``, OpenAI in ``completion_tokens`` and
``output_tokens`` (``output_tokens_details.reasoning_tokens`` is only a breakdown), Gemini
separately as ``thoughtsTokenCount``, which is added.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def prompt_tokens(self) -> int:
        """OpenAI's ``prompt_tokens``: every input token, cached or not."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


MAX_TOKENS = 10**15
"""A count above this (a thousand trillion tokens) can only be an upstream's error. It is taken
as this, so every total stays an exact integer wherever it goes: JSON (the access log, the
client's answer), Redis counters, BIGINT columns (an upstream reporting 2^63 tokens used to
make every later spend write fail)."""


def _int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value if value <= MAX_TOKENS else MAX_TOKENS
    return 0


def usage_from_anthropic(usage: dict | None) -> Usage:
    """An Anthropic ``usage`` object (response, ``message_start`` or ``message_delta``)."""
    if not isinstance(usage, dict):
        return Usage()
    return Usage(  # input, output, cache read, cache write
        _int(usage.get("input_tokens")),
        _int(usage.get("output_tokens")),
        _int(usage.get("cache_read_input_tokens")),
        _int(usage.get("cache_creation_input_tokens")),
    )


def usage_from_openai(usage: dict | None) -> Usage:
    """An OpenAI ``usage`` object; cached prompt tokens are moved out of ``input_tokens``.

    OpenAI reports cache reads as ``prompt_tokens_details.cached_tokens`` (included in
    ``prompt_tokens``); some compatible servers report Anthropic-style cache fields too.
    """
    if not isinstance(usage, dict):
        return Usage()
    prompt = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cache_read = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cache_read = cache_read or _int(usage.get("cache_read_input_tokens"))
    cache_write = _int(usage.get("cache_creation_input_tokens"))
    return Usage(max(prompt - cache_read - cache_write, 0), _int(usage.get("completion_tokens")), cache_read, cache_write)


def usage_from_gemini(usage_metadata: dict | None) -> Usage:
    """A Gemini ``usageMetadata``: prompt minus cached content is input; output adds thoughts.

    ``toolUsePromptTokenCount`` (what built-in tools such as Google Search fed the model) is
    billed as input and counted as such. Gemini has no cache writes (explicit caches are
    created and paid for outside the request).
    """
    if not isinstance(usage_metadata, dict):
        return Usage()
    prompt = _int(usage_metadata.get("promptTokenCount"))
    cached = min(_int(usage_metadata.get("cachedContentTokenCount")), prompt)
    tool_prompt = _int(usage_metadata.get("toolUsePromptTokenCount"))
    output = _int(usage_metadata.get("candidatesTokenCount")) + _int(usage_metadata.get("thoughtsTokenCount"))
    return Usage(prompt - cached + tool_prompt, output, cached, 0)


def usage_from_responses(usage: dict | None) -> Usage:
    """An OpenAI Responses ``usage`` object (a response, or ``response.completed``'s).

    ``input_tokens`` includes ``input_tokens_details.cached_tokens`` (cache reads) and,
    where reported, ``input_tokens_details.cache_write_tokens``; both are moved out.
    """
    if not isinstance(usage, dict):
        return Usage()
    total = _int(usage.get("input_tokens"))
    details = usage.get("input_tokens_details")
    cache_read = cache_write = 0
    if isinstance(details, dict):
        cache_read = _int(details.get("cached_tokens"))
        cache_write = _int(details.get("cache_write_tokens"))
    return Usage(max(total - cache_read - cache_write, 0), _int(usage.get("output_tokens")), cache_read, cache_write)


def usage_to_anthropic(usage: Usage) -> dict:
    out = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if usage.cache_read_tokens or usage.cache_write_tokens:
        out["cache_creation_input_tokens"] = usage.cache_write_tokens
        out["cache_read_input_tokens"] = usage.cache_read_tokens
    return out


def usage_to_openai(usage: Usage) -> dict:
    out: dict = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.prompt_tokens + usage.output_tokens,
    }
    if usage.cache_read_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    return out


def usage_to_gemini(usage: Usage) -> dict:
    """Gemini ``usageMetadata``; thinking cannot be told apart from the answer, so all output is
    ``candidatesTokenCount`` (cache writes count as prompt tokens, as OpenAI's do)."""
    out = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.prompt_tokens + usage.output_tokens,
    }
    if usage.cache_read_tokens:
        out["cachedContentTokenCount"] = usage.cache_read_tokens
    return out


def usage_to_responses(usage: Usage) -> dict:
    """A Responses ``usage`` object. Anthropic does not split thinking out of its output
    count, so ``reasoning_tokens`` is 0 (the thinking is inside ``output_tokens``)."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.output_tokens,
    }
