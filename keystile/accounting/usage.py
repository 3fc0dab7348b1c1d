"""Token usage in one normalised shape, whatever format the upstream reported it in.

The shape follows Anthropic's semantics: ``input_tokens`` excludes cache reads and cache
writes, which are counted separately. OpenAI's ``prompt_tokens`` includes cached tokens, so
converting subtracts them instead of counting them twice.
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
