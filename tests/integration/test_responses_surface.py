"""The OpenAI Responses surface through the official openai SDK: to an Anthropic deployment
(translated through the hub), an OpenAI-compatible Chat deployment (Responses → Messages → Chat),
and an OpenAI Responses deployment (passed through); streams, tools, stateless history, errors."""

from __future__ import annotations

import json
import textwrap
from typing import Iterator

import httpx
import openai
import pytest

from tests.integration.harness import UPSTREAM_OPENAI_KEY, GatewayProcess, standard_config

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


@pytest.fixture(scope="module")
def gateway(upstream) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    responses_deployment = textwrap.dedent(
        f"""\
        - name: gpt-responses
          provider: openai
          model: gpt-5
          api_base: {upstream.url}/v1
          api_key: {UPSTREAM_OPENAI_KEY}
          wire_api: responses
        """
    )
    with GatewayProcess(standard_config(upstream.url, extra_models=responses_deployment)) as gw:
        yield gw


@pytest.fixture()
def client(gateway, key) -> Iterator[openai.OpenAI]:  # type: ignore[no-untyped-def]
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:
        yield client


@pytest.mark.parametrize(
    "model,path",
    [("claude-test", "/v1/messages"), ("gpt-test", "/v1/chat/completions"), ("gpt-responses", "/v1/responses")],
)
def test_create_and_stream(client, key, upstream, model, path):
    response = client.responses.create(model=model, input="Hello there")
    assert response.output_text.startswith("Hello from keystile mock. You said: Hello there")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    sent = upstream.requests()[-1]
    assert sent["path"] == path
    assert key not in json.dumps(sent)

    with client.responses.stream(model=model, input=[{"role": "user", "content": "Hello there"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    for kind in ("response.output_item.added", "response.output_text.delta", "response.output_item.done"):
        assert kind in kinds
    assert final.output_text == response.output_text
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["claude-test", "gpt-test", "gpt-responses"])
def test_function_call_and_full_history_follow_up(client, model):
    first = client.responses.create(model=model, input="Weather in Paris?", tools=TOOLS)
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "mock"}
    second = client.responses.create(
        model=model,
        tools=TOOLS,
        store=False,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert second.output_text.startswith("Tool result received:") and "sunny" in second.output_text


def test_streamed_usage_is_charged_to_the_key(gateway, upstream):
    key = gateway.create_key()
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:
        with client.responses.stream(model="claude-test", input="Hello there") as stream:
            stream.get_final_response()
    assert gateway.admin("GET", "/key/info", params={"key": key}).json()["info"]["spend"] > 0


def test_previous_response_id_is_refused_when_translated(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="claude-test", input="more", previous_response_id="resp_123")
    assert "previous_response_id" in str(caught.value)


def test_previous_response_id_is_passed_to_a_responses_upstream(client, upstream):
    with pytest.raises(openai.NotFoundError):  # the mock keeps no state: OpenAI's own 404
        client.responses.create(model="gpt-responses", input="more", previous_response_id="resp_123")
    assert json.loads(upstream.requests()[-1]["body"])["previous_response_id"] == "resp_123"


@pytest.mark.parametrize(
    "body,param",
    [
        ({"model": "claude-test"}, "input"),
        ({"model": "claude-test", "input": 5}, "input"),
        ({"input": "hi"}, "model"),
    ],
)
def test_bad_input_is_a_400_in_openai_shape(gateway, key, body, param):
    response = httpx.post(f"{gateway.url}/v1/responses", json=body, headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_a_wrong_key_is_a_401(gateway):
    response = httpx.post(f"{gateway.url}/responses", json={"model": "claude-test", "input": "hi"}, headers={"authorization": "Bearer sk-ks-nope-00000000"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
