"""Images and documents: Anthropic ``source`` objects ⇄ OpenAI ``data:``/``https:`` URLs.

Anthropic carries inline media as ``{"type":"base64","media_type","data"}`` and remote media
as ``{"type":"url","url"}``; OpenAI carries both as one URL string. ``data:`` URLs are split
back into media type and base64 data so nothing is re-encoded when it need not be.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote_to_bytes

from keystile.translate.invalid_request import expect_dict, expect_str, invalid


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<media type>[;base64],<payload>`` → (media type, base64 data); None if not a data URL."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep:
        return None
    params = header.split(";")
    media_type = params[0] or "text/plain"
    if "base64" in params[1:]:
        return media_type, payload
    # A percent-encoded data URL: Anthropic only takes base64.
    return media_type, base64.b64encode(unquote_to_bytes(payload)).decode("ascii")


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def anthropic_source_to_url(source: object, field: str) -> str:
    """An Anthropic image/document ``source`` → the URL string OpenAI takes."""
    source = expect_dict(source, field)
    kind = source.get("type")
    if kind == "base64":
        media_type = expect_str(source.get("media_type"), f"{field}.media_type")
        return data_url(media_type, expect_str(source.get("data"), f"{field}.data"))
    if kind == "url":
        return expect_str(source.get("url"), f"{field}.url")
    if kind == "file":
        raise invalid(f"{field}: Files API references (source type 'file') cannot be sent to this model", field)
    raise invalid(f"{field}.type: unsupported source type {kind!r}", f"{field}.type")


def url_to_anthropic_source(url: str, field: str) -> dict:
    """An OpenAI ``image_url.url`` → an Anthropic ``source``."""
    parsed = parse_data_url(url)
    if parsed is not None:
        return {"type": "base64", "media_type": parsed[0], "data": parsed[1]}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise invalid(f"{field}: expected a data: or http(s): URL", field)
