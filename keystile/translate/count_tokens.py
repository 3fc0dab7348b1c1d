"""A local *estimate* of input tokens for Anthropic ``count_tokens`` on non-Anthropic upstreams.

Claude Code calls ``/v1/messages/count_tokens`` to decide when to compact; an OpenAI-style
upstream has no such endpoint. This is a heuristic, not a tokenizer (tiktoken downloads
its encodings at first use and fails offline, and no OpenAI-side tokenizer matches an
arbitrary local model anyway):

- text: about 4 characters per token (English prose and code average 3.5–4.5), counted
  over system, message text, thinking, tool inputs and results, and tool definitions
  (name, description and the JSON of the schema);
- each image: 1,600 tokens (Anthropic's figure for an image at the ~1.15 megapixel cap,
  which is the size clients usually send);
- each PDF document: 1,500 tokens per estimated page, pages guessed at 50 KB of file each;
- a few tokens of framing per message and per tool.

Expect ±25% on text; good enough for "am I near the context limit".
"""

from __future__ import annotations

import orjson

from keystile.translate.invalid_request import expect_dict, expect_list

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600
PDF_TOKENS_PER_PAGE = 1500
PDF_BYTES_PER_PAGE = 50_000
MESSAGE_OVERHEAD = 4
TOOL_OVERHEAD = 8
_MAX_DEPTH = 16


def estimate_input_tokens(body: dict) -> int:
    """Estimated ``input_tokens`` for an Anthropic request body (system + messages + tools).

    Raises ``GatewayError(INVALID_REQUEST)`` only if the body or ``messages`` is not the
    right type; odd shapes inside are counted as best they can be.
    """
    body = expect_dict(body, "body")
    counter = _Counter()
    counter.add(body.get("system"))
    for message in expect_list(body.get("messages"), "messages"):
        counter.tokens += MESSAGE_OVERHEAD
        counter.add(message.get("content") if isinstance(message, dict) else message)
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            counter.tokens += TOOL_OVERHEAD
            counter.add_json(tool)
    return max(1, counter.tokens + (counter.chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


class _Counter:
    __slots__ = ("chars", "tokens")

    def __init__(self) -> None:
        self.chars = 0
        self.tokens = 0

    def add(self, value: object, depth: int = 0) -> None:
        if isinstance(value, str):
            self.chars += len(value)
        elif depth > _MAX_DEPTH:
            self.add_json(value)  # absurdly nested input: count its JSON, do not recurse
        elif isinstance(value, list):
            for item in value:
                self.add(item, depth + 1)
        elif isinstance(value, dict):
            self._add_block(value, depth + 1)

    def add_json(self, value: object) -> None:
        try:
            self.chars += len(orjson.dumps(value))
        except TypeError:  # nested deeper than orjson serialises
            pass

    def _add_block(self, block: dict, depth: int) -> None:
        kind = block.get("type")
        if kind == "text":
            self.add(block.get("text"))
        elif kind == "image":
            self.tokens += IMAGE_TOKENS
        elif kind == "document":
            self._add_document(block.get("source"))
        elif kind == "thinking":
            self.add(block.get("thinking"))
        elif kind == "tool_use":
            self.add(block.get("name"))
            self.add_json(block.get("input"))
        elif kind == "tool_result":
            self.add(block.get("content"), depth)
        elif kind == "redacted_thinking":
            pass  # opaque; its tokens are not knowable
        else:
            self.add_json(block)

    def _add_document(self, source: object) -> None:
        if not isinstance(source, dict):
            return
        kind = source.get("type")
        if kind == "text":
            self.add(source.get("data"))
        elif kind == "content":
            self.add(source.get("content"))
        else:
            data = source.get("data")
            size = len(data) * 3 // 4 if isinstance(data, str) else PDF_BYTES_PER_PAGE
            self.tokens += PDF_TOKENS_PER_PAGE * max(1, -(-size // PDF_BYTES_PER_PAGE))
