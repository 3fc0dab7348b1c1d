"""How much of ``max_tokens`` thinking may take (``reasoning_effort.thinking_room``), hand-worked.

Anthropic counts thinking inside ``max_tokens``; a client that set no limit (Codex sends no
``max_output_tokens``) must still get an answer, not a budget that leaves one token for it.
"""

from __future__ import annotations

import pytest

from keystile.translate.reasoning_effort import thinking_room


@pytest.mark.parametrize(
    "budget,client_max,default,expected",
    [
        (24576, None, 4096, (24576, 28672)),  # Codex's "high" with keystile's default 4096: answer keeps 4096
        (2048, None, 1000, (2048, 3048)),
        (32768, None, 4096, (27904, 32000)),  # capped at 32000 in all: the answer still keeps 4096
        (24576, None, 32000, (24576, 32000)),  # a default of 32000 gives way: 7424 left for the answer
        (32768, None, 20000, (28000, 32000)),  # ... down to an eighth of the total (4000)
        (2048, None, 30000, (2048, 32000)),
        (24576, 8000, 4096, (7999, 8000)),  # the client's own limit: the budget fits below it
        (2048, 1000, 4096, (999, 1000)),  # too small to think (the caller leaves thinking off)
    ],
)
def test_thinking_room(budget, client_max, default, expected):
    assert thinking_room(budget, client_max, default) == expected
    thinking, max_tokens = expected
    assert thinking < max_tokens  # Anthropic refuses budget_tokens >= max_tokens
