"""Gemini ``usageMetadata`` ⇄ keystile's Usage, and the meter for same-format Gemini streams."""

from __future__ import annotations

import orjson

from keystile.accounting.meters import GeminiStreamMeter, is_gemini_content_chunk
from keystile.accounting.usage import Usage, usage_from_gemini, usage_to_gemini
from keystile.sse import SSEParser

from .gemini_harness import RECORDED


def test_usage_from_gemini() -> None:
    # Worked from Google's usage docs: promptTokenCount includes the cached part; thoughts are output.
    metadata = {"promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 40,
                "thoughtsTokenCount": 300, "toolUsePromptTokenCount": 15, "totalTokenCount": 1555}
    assert usage_from_gemini(metadata) == Usage(input_tokens=215, output_tokens=340, cache_read_tokens=1000, cache_write_tokens=0)
    assert usage_from_gemini({"promptTokenCount": 5, "candidatesTokenCount": 44, "thoughtsTokenCount": 186}) == Usage(5, 230, 0, 0)
    assert usage_from_gemini(None) == Usage() and usage_from_gemini({"promptTokenCount": "9", "candidatesTokenCount": True}) == Usage()
    assert usage_from_gemini({"promptTokenCount": 3, "cachedContentTokenCount": 10}) == Usage(0, 0, 3, 0)


def test_usage_to_gemini() -> None:
    assert usage_to_gemini(Usage(20, 9, 100, 5)) == {
        "promptTokenCount": 125, "candidatesTokenCount": 9, "totalTokenCount": 134, "cachedContentTokenCount": 100,
    }
    assert usage_to_gemini(Usage(3, 4)) == {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}


def meter_over(raw: bytes) -> GeminiStreamMeter:
    meter = GeminiStreamMeter()
    parser = SSEParser()
    for event in parser.feed(raw) + parser.close():
        meter.observe(event.data)
    return meter


def test_meter_on_a_recorded_stream() -> None:
    meter = meter_over(RECORDED)
    assert meter.finish_reason == "STOP" and meter.error is None
    assert meter.usage == Usage(5, 230, 0, 0)  # the last chunk's counts: 44 answer + 186 thinking
    assert meter.model == "models/gemini-2.5-flash-preview-05-20"


def test_meter_on_a_stream_cut_before_its_finish() -> None:
    first = RECORDED.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    meter = meter_over(first)
    assert meter.finish_reason is None
    assert meter.usage == Usage(5, 39 + 186, 0, 0)  # read lazily from the one chunk seen


def test_meter_sees_an_error_chunk() -> None:
    meter = meter_over(RECORDED.split(b"\r\n\r\n")[0] + b'\r\n\r\ndata: {"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}\r\n\r\n')
    assert meter.error == "An internal error has occurred." and meter.finish_reason is None
    assert meter.usage.output_tokens == 225


def test_meter_ignores_the_words_inside_text() -> None:
    text = {"candidates": [{"content": {"parts": [{"text": 'say "finishReason" and "usageMetadata"'}], "role": "model"}, "index": 0}]}
    meter = GeminiStreamMeter()
    meter.observe(orjson.dumps(text))
    assert meter.finish_reason is None and meter.usage == Usage()


def test_content_chunks() -> None:
    assert is_gemini_content_chunk(b'{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}')
    assert is_gemini_content_chunk(b'{"candidates":[{"content":{"parts":[{"functionCall":{"name":"ls"}}]}}]}')
    assert not is_gemini_content_chunk(b'{"candidates":[{"content":{"parts":[{"text":""}]},"finishReason":"STOP"}]}')
    assert not is_gemini_content_chunk(b'{"usageMetadata":{"promptTokenCount":3}}')
