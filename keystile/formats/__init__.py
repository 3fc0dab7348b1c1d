"""Every API format keystile speaks, in one registry: ``FORMATS[ApiFormat]``.

Each entry is a module (``messages``, ``chat``, …) with the same names, so the inference
handler never asks which format it holds:

- a client side — ``check_request``, ``forward`` (same format upstream), ``to_hub``,
  ``response_from_hub``, ``Encoder`` (hub stream → this format), ``Watch`` (a same-format
  stream relayed as is), ``stream_error``;
- an upstream side — ``from_hub``, ``response_to_hub``, ``usage``, ``Decoder`` (this
  format's stream → hub);
- token counts where the format has them — ``count_from_hub`` / ``count_to_hub``.

The hub is Anthropic Messages (see ``formats.base``).
"""

from __future__ import annotations

from types import ModuleType

from keystile.apiformat import ApiFormat
from keystile.formats import chat, gemini, messages, responses

FORMATS: dict[ApiFormat, ModuleType] = {
    ApiFormat.ANTHROPIC: messages,
    ApiFormat.OPENAI: chat,
    ApiFormat.RESPONSES: responses,
    ApiFormat.GEMINI: gemini,
}
