"""The mock upstream speaks Responses and Gemini as OpenAI's and Google's own SDKs parse them.

The expected shapes come from the official SDKs' types (openai's Responses models, google-genai's
GenerateContentResponse), not from keystile's translators.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from keystile.testing.upstream import start_in_thread

TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture(scope="module")
def mock():  # type: ignore[no-untyped-def]
    url, handle = start_in_thread()
    yield handle
    handle.stop()


def test_responses_json_and_stream_through_the_openai_sdk(mock):
    client = openai.OpenAI(base_url=f"{mock.url}/v1", api_key="sk-test", max_retries=0)
    response = client.responses.create(model="gpt-5", input="Hello there")
    assert response.output_text.startswith("Hello from keystile mock.")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    with client.responses.stream(model="gpt-5", input=[{"role": "user", "content": "Hello there"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds
    assert final.output_text == response.output_text


def test_responses_tool_call_and_its_result(mock):
    client = openai.OpenAI(base_url=f"{mock.url}/v1", api_key="sk-test", max_retries=0)
    response = client.responses.create(model="gpt-5", input="weather?", tools=TOOLS)
    [call] = [item for item in response.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.arguments == '{"city":"mock"}'
    followup = client.responses.create(
        model="gpt-5",
        tools=TOOLS,
        input=[
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert followup.output_text == "Tool result received: sunny"


def test_gemini_generate_and_stream(mock):
    types = pytest.importorskip("google.genai.types")
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]}
    headers = {"x-goog-api-key": "test"}
    answer = httpx.post(f"{mock.url}/v1beta/models/gemini-2.5-pro:generateContent", json=body, headers=headers).json()
    parsed = types.GenerateContentResponse.model_validate(answer)
    assert parsed.text.startswith("Hello from keystile mock.")
    assert parsed.candidates[0].finish_reason == types.FinishReason.STOP
    with httpx.stream("POST", f"{mock.url}/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", json=body, headers=headers) as response:
        chunks = [types.GenerateContentResponse.model_validate_json(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert "".join(chunk.text or "" for chunk in chunks) == parsed.text
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count > 0
    missing_key = httpx.post(f"{mock.url}/v1beta/models/gemini-2.5-pro:generateContent", json=body)
    assert missing_key.status_code == 401 and missing_key.json()["error"]["status"] == "UNAUTHENTICATED"
