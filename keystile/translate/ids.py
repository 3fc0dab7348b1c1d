"""Response ids in each format's own shape, derived from the upstream's id when it has one.

Anthropic clients expect ``msg_…`` message ids, OpenAI clients ``chatcmpl-…``; keeping the
upstream id inside the new one lets a request be traced across the translation.
"""

from __future__ import annotations

import os


def _random() -> str:
    return os.urandom(12).hex()


def anthropic_message_id(upstream_id: object) -> str:
    """``msg_`` + the OpenAI completion id (minus its ``chatcmpl-`` prefix), or a random one."""
    if isinstance(upstream_id, str) and upstream_id:
        if upstream_id.startswith("msg_"):
            return upstream_id
        return "msg_" + upstream_id.removeprefix("chatcmpl-")
    return "msg_" + _random()


def openai_completion_id(upstream_id: object) -> str:
    """``chatcmpl-`` + the Anthropic message id (minus its ``msg_`` prefix), or a random one."""
    if isinstance(upstream_id, str) and upstream_id:
        if upstream_id.startswith("chatcmpl-"):
            return upstream_id
        return "chatcmpl-" + upstream_id.removeprefix("msg_")
    return "chatcmpl-" + _random()


def new_tool_use_id() -> str:
    """For upstream tool calls that arrive without an id (some local servers omit it)."""
    return "toolu_" + _random()
