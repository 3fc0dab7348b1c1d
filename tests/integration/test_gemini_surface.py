"""The Gemini API surface through google-genai (the official SDK) and raw HTTP: generateContent,
streamGenerateContent, countTokens and the model list, on Anthropic-, OpenAI- and mock-served
models; keys from x-goog-api-key or ?key=; errors in Google's shape."""

from __future__ import annotations

import json

import httpx
import pytest
from google import genai
from google.genai import types

from tests.integration.harness import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY


def _client(gateway, key: str) -> genai.Client:  # type: ignore[no-untyped-def]
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gateway.url, timeout=30_000))


@pytest.mark.parametrize(
    "model,path,upstream_key",
    [("claude-test", "/v1/messages", UPSTREAM_ANTHROPIC_KEY), ("gpt-test", "/v1/chat/completions", UPSTREAM_OPENAI_KEY)],
)
def test_generate_content_on_translated_upstreams(gateway, key, upstream, model, path, upstream_key):
    client = _client(gateway, key)  # held: a dropped genai.Client closes its connection pool
    response = client.models.generate_content(model=model, contents="Hello there")
    assert response.text.startswith("Hello from keystile mock. You said: Hello there")
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.prompt_token_count > 0 and response.usage_metadata.candidates_token_count > 0
    sent = upstream.requests()[-1]
    assert sent["path"] == path
    headers = dict(sent["headers"])
    assert upstream_key in (headers.get("x-api-key", "") + headers.get("authorization", ""))
    assert key not in json.dumps(sent)


@pytest.mark.parametrize("model", ["claude-test", "gpt-test", "mock-builtin"])
def test_stream_generate_content_ends_with_a_finish_reason(gateway, key, model):
    client = _client(gateway, key)
    chunks = list(client.models.generate_content_stream(model=model, contents="Hello there"))
    text = "".join(chunk.text or "" for chunk in chunks)
    assert text.startswith("Hello from keystile mock.")
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count > 0


def test_streamed_usage_is_charged(gateway, upstream):
    key = gateway.create_key()
    client = _client(gateway, key)
    list(client.models.generate_content_stream(model="claude-test", contents="Hello there"))
    info = gateway.admin("GET", "/key/info", params={"key": key}).json()
    assert info["info"]["spend"] > 0


def test_function_calling_round_trip(gateway, key):
    client = _client(gateway, key)
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                description="Weather for a city",
                parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]),
            )
        ]
    )
    config = types.GenerateContentConfig(tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    first = client.models.generate_content(model="claude-test", contents="Weather in Paris?", config=config)
    [call] = first.function_calls
    assert call.name == "get_weather" and call.args == {"city": "mock"}
    second = client.models.generate_content(
        model="claude-test",
        config=config,
        contents=[
            types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
            first.candidates[0].content,
            types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": "sunny"})]),
        ],
    )
    assert second.text.startswith("Tool result received:")
    assert "sunny" in second.text


def test_count_tokens(gateway, key, upstream):
    client = _client(gateway, key)
    result = client.models.count_tokens(model="claude-test", contents="Hello there, how are you?")
    assert result.total_tokens > 0
    assert upstream.requests()[-1]["path"] == "/v1/messages/count_tokens"


def test_model_list_in_googles_shape(gateway, key):
    client = _client(gateway, key)
    names = [model.name for model in client.models.list()]
    assert "models/claude-test" in names and "models/gpt-test" in names
    one = httpx.get(f"{gateway.url}/v1beta/models/gpt-test", headers={"x-goog-api-key": key}).json()
    assert one["name"] == "models/gpt-test" and "generateContent" in one["supportedGenerationMethods"]


def test_the_key_may_come_in_the_query_and_never_leaves_the_gateway(gateway, key, upstream):
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]}
    response = httpx.post(f"{gateway.url}/v1beta/models/claude-test:generateContent?key={key}", json=body)
    assert response.status_code == 200, response.text
    sent = upstream.requests()[-1]
    assert key not in json.dumps(sent) and sent["query"] in ("", None)
    assert key not in gateway.log()


@pytest.mark.parametrize(
    "path,body,headers,status,google_status",
    [
        ("/v1beta/models/claude-test:generateContent", {"contents": []}, {"x-goog-api-key": "sk-ks-wrong-0000000000"}, 401, "UNAUTHENTICATED"),
        ("/v1beta/models/no-such-model:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}, None, 404, "NOT_FOUND"),
        ("/v1beta/models/claude-test:generateContent", {"contents": "not a list"}, None, 400, "INVALID_ARGUMENT"),
        ("/v1beta/models/claude-test:generateContent", {"contents": [{"parts": [{"inlineData": 5}]}]}, None, 400, "INVALID_ARGUMENT"),
    ],
)
def test_errors_are_in_googles_shape(gateway, key, path, body, headers, status, google_status):
    response = httpx.post(f"{gateway.url}{path}", json=body, headers=headers or {"x-goog-api-key": key})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status and error["status"] == google_status and error["message"]


def test_malformed_json_is_a_400_in_googles_shape(gateway, key):
    response = httpx.post(
        f"{gateway.url}/v1beta/models/claude-test:streamGenerateContent?alt=sse",
        content=b"{not json",
        headers={"x-goog-api-key": key, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
