"""The mock upstream over real HTTP: official SDK clients, recording, faults, connections."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Iterator

import anthropic
import httpx
import openai
import orjson
import pytest

from keystile.sse import SSEParser
from keystile.testing.upstream import MockUpstreamThread, parse_fault_rules, start_in_thread

MESSAGE = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi there"}]}
STREAM_MESSAGE = {**MESSAGE, "stream": True}
CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "Hi there"}]}
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-api03-test", "anthropic-version": "2023-06-01"}
TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstreamThread]:
    _, handle = start_in_thread()
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def clean(upstream: MockUpstreamThread) -> None:
    upstream.reset()


@pytest.fixture
def http(upstream: MockUpstreamThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.url, timeout=5) as client:
        yield client


@pytest.fixture
def claude(upstream: MockUpstreamThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=upstream.url, api_key="sk-ant-api03-test", max_retries=0)


@pytest.fixture
def gpt(upstream: MockUpstreamThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-openai-test", max_retries=0)


def set_faults(http: httpx.Client, rules: list) -> None:
    response = http.post("/_mock/faults", json=rules)
    assert response.status_code == 200, response.text


def wait_for(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def raw_connection(upstream: MockUpstreamThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", upstream.server.port), timeout=5)
    return sock


def raw_post(path: str, body: dict, headers: dict[str, str] | None = None) -> bytes:
    data = orjson.dumps(body)
    lines = [f"POST {path} HTTP/1.1", "host: mock", f"content-length: {len(data)}", "content-type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or ANTHROPIC_HEADERS).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def read_until_closed(sock: socket.socket) -> tuple[bytes, BaseException | None]:
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError as exc:
            return received, exc
        if not chunk:
            return received, None
        received += chunk


def sse_payloads(raw: bytes) -> list:
    """SSE events out of a chunked HTTP response body, decoded loosely."""
    _, _, body = raw.partition(b"\r\n\r\n")
    data = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        if not size_line:
            break
        size = int(size_line, 16)
        if size == 0:
            break
        data += rest[:size]
        body = rest[size + 2 :]
    return SSEParser().feed(data)


# ---------------------------------------------------------------------------------------
# Official SDKs end to end


def test_anthropic_sdk_create_stream_and_count_tokens(claude: anthropic.Anthropic, upstream: MockUpstreamThread) -> None:
    message = claude.messages.create(**MESSAGE)
    assert message.content[0].text == "Hello from keystile mock. You said: Hi there"
    assert message.model == "claude-test" and message.stop_reason == "end_turn"
    assert message._request_id.startswith("req_mock_")

    with claude.messages.stream(**MESSAGE) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) >= 3 and "".join(texts) == message.content[0].text
    assert final.content[0].text == message.content[0].text
    assert final.usage.output_tokens == message.usage.output_tokens

    count = claude.messages.count_tokens(model="claude-test", messages=MESSAGE["messages"])
    assert count.input_tokens == message.usage.input_tokens


def test_anthropic_sdk_tool_round_trip(claude: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = claude.messages.create(model="claude-test", max_tokens=64, tools=TOOLS, messages=messages)
    assert first.stop_reason == "tool_use"
    tool_use = first.content[-1]
    assert tool_use.name == "get_weather" and tool_use.input == {"city": "mock"}

    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}]},
    ]
    with claude.messages.stream(model="claude-test", max_tokens=64, tools=TOOLS, messages=messages) as stream:
        second = stream.get_final_message()
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Tool result received: sunny"


def test_anthropic_sdk_streamed_tool_use(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-test", max_tokens=64, tools=TOOLS, messages=MESSAGE["messages"]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[-1].input == {"city": "mock"}


def test_anthropic_sdk_models_list(claude: anthropic.Anthropic) -> None:
    assert [m.id for m in claude.models.list()] == ["mock-claude", "mock-gpt", "mock-embedding"]


def test_openai_sdk_create_stream_embeddings_models(gpt: openai.OpenAI) -> None:
    completion = gpt.chat.completions.create(**CHAT)
    assert completion.choices[0].message.content == "Hello from keystile mock. You said: Hi there"
    assert completion.model == "gpt-test"

    stream = gpt.chat.completions.create(**CHAT, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == completion.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == completion.usage.total_tokens

    embeddings = gpt.embeddings.create(model="emb-test", input=["a", "b"])
    assert len(embeddings.data) == 2 and len(embeddings.data[0].embedding) == 8
    floats = gpt.embeddings.create(model="emb-test", input=["a", "b"], encoding_format="float")
    assert [round(x, 5) for x in floats.data[0].embedding] == [round(x, 5) for x in embeddings.data[0].embedding]

    assert "mock-gpt" in [m.id for m in gpt.models.list()]


def test_openai_sdk_tool_round_trip_streaming(gpt: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}} for t in TOOLS]
    messages: list = [{"role": "user", "content": "Weather in Paris?"}]
    calls: dict[int, dict] = {}
    finish = None
    for chunk in gpt.chat.completions.create(model="gpt-test", messages=messages, tools=tools, stream=True):
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for fragment in choice.delta.tool_calls or []:
            call = calls.setdefault(fragment.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = fragment.id or call["id"]
            if fragment.function:
                call["name"] = fragment.function.name or call["name"]
                call["arguments"] += fragment.function.arguments or ""
    assert finish == "tool_calls"
    call = calls[0]
    assert call["name"] == "get_weather" and orjson.loads(call["arguments"]) == {"city": "mock"}

    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    second = gpt.chat.completions.create(model="gpt-test", messages=messages, tools=tools)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Tool result received: sunny"


def test_openai_compatible_base_without_v1(upstream: MockUpstreamThread) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="x", max_retries=0)
    assert client.chat.completions.create(**CHAT).choices[0].finish_reason == "stop"
    assert len(client.embeddings.create(model="e", input="a").data) == 1
    assert [r["path"] for r in upstream.requests()] == ["/chat/completions", "/embeddings"]


def test_azure_sdk_and_its_required_parameters(upstream: MockUpstreamThread, http: httpx.Client) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=upstream.url, api_key="azure-key", api_version="2024-10-21", max_retries=0
    )
    completion = client.chat.completions.create(model="my-deployment", messages=CHAT["messages"])
    assert completion.choices[0].message.content.startswith("Hello from keystile mock.")
    embeddings = client.embeddings.create(model="my-embeddings", input="hello")
    assert len(embeddings.data) == 1
    first, second = upstream.requests()
    assert first["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert first["query"] == "api-version=2024-10-21"
    assert ["api-key", "azure-key"] in first["headers"]
    assert second["path"] == "/openai/deployments/my-embeddings/embeddings"

    path = "/openai/deployments/d/chat/completions"
    no_version = http.post(path, json=CHAT, headers={"api-key": "k"})
    assert no_version.status_code == 400 and "api-version" in no_version.json()["error"]["message"]
    no_key = http.post(path + "?api-version=2024-10-21", json=CHAT)
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
    assert no_key.headers["x-request-id"].startswith("req_mock_")


# ---------------------------------------------------------------------------------------
# Validation, recording, control API


def test_anthropic_routes_validate_like_the_real_api(http: httpx.Client) -> None:
    no_key = http.post("/v1/messages", json=MESSAGE, headers={"anthropic-version": "2023-06-01"})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "authentication_error"
    assert no_key.json()["request_id"] == no_key.headers["request-id"]

    bearer = http.post("/v1/messages", json=MESSAGE, headers={"authorization": "Bearer sk-ant-oat01-x"})
    assert bearer.status_code == 200

    no_max = http.post("/v1/messages", json={k: v for k, v in MESSAGE.items() if k != "max_tokens"}, headers=ANTHROPIC_HEADERS)
    assert no_max.status_code == 400
    assert no_max.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}

    not_json = http.post("/v1/messages", content=b"{nope", headers=ANTHROPIC_HEADERS)
    assert not_json.status_code == 400 and not_json.json()["type"] == "error"

    unknown = http.get("/v2/whatever")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    unknown_anthropic = http.post("/v1/messages/batches", json={}, headers=ANTHROPIC_HEADERS)
    assert unknown_anthropic.status_code == 404 and unknown_anthropic.json()["error"]["type"] == "not_found_error"
    wrong_method = http.get("/v1/chat/completions")
    assert wrong_method.status_code == 405


def test_requests_are_recorded_exactly(upstream: MockUpstreamThread, http: httpx.Client) -> None:
    body = orjson.dumps(MESSAGE)
    response = http.post(
        "/v1/messages?beta=true",
        content=body,
        headers={**ANTHROPIC_HEADERS, "X-Custom-Header": "Value", "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    http.get("/_mock/stats")  # control calls are not recorded
    recorded = http.get("/_mock/requests").json()
    assert len(recorded) == 1
    record = recorded[0]
    assert record["method"] == "POST" and record["path"] == "/v1/messages" and record["query"] == "beta=true"
    assert record["body"] == body.decode()
    assert ["x-custom-header", "Value"] in record["headers"]
    assert ["x-api-key", "sk-ant-api03-test"] in record["headers"]
    assert all(name == name.lower() for name, _ in record["headers"])
    assert upstream.requests() == recorded

    assert http.delete("/_mock/requests").json() == {"ok": True}
    assert http.get("/_mock/requests").json() == []


def test_chunked_request_bodies_are_read(upstream: MockUpstreamThread, http: httpx.Client) -> None:
    body = orjson.dumps(MESSAGE)
    response = http.post("/v1/messages", content=iter([body[:10], body[10:]]), headers=ANTHROPIC_HEADERS)
    assert response.status_code == 200
    record = upstream.requests()[0]
    assert ["transfer-encoding", "chunked"] in record["headers"] and record["body"] == body.decode()


def test_fault_rules_are_validated(http: httpx.Client) -> None:
    bad = http.post("/_mock/faults", json=[{"action": {"type": "explode"}}])
    assert bad.status_code == 400 and "action.type" in bad.json()["error"]
    with pytest.raises(ValueError, match="times"):
        parse_fault_rules([{"times": -1, "action": {"type": "hang"}}])
    with pytest.raises(ValueError, match="header"):
        parse_fault_rules([{"match": {"header": "x"}, "action": {"type": "hang"}}])
    assert http.get("/_mock/nothing").status_code == 404


# ---------------------------------------------------------------------------------------
# Faults


def test_status_fault_defaults_to_a_realistic_error_and_counts_down(
    http: httpx.Client, claude: anthropic.Anthropic
) -> None:
    set_faults(http, [{"match": {"path": "/v1/messages"}, "times": 1, "action": {"type": "status", "status": 529, "headers": {"retry-after": "1"}}}])
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(**MESSAGE)
    error = caught.value
    assert error.status_code == 529
    assert error.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert error.response.headers["retry-after"] == "1"
    assert claude.messages.create(**MESSAGE).stop_reason == "end_turn"  # times exhausted
    recorded = http.get("/_mock/requests").json()
    assert [r["fault"] for r in recorded] == ["status", None]


def test_status_fault_in_openai_format_and_custom_bodies(http: httpx.Client, gpt: openai.OpenAI) -> None:
    set_faults(
        http,
        [
            {"match": {"model": "text-body"}, "action": {"type": "status", "status": 502, "body": "<html>bad gateway</html>"}},
            {"match": {"model": "json-body"}, "action": {"type": "status", "status": 400, "body": {"error": {"message": "custom"}}}},
            {"match": {"path": "/v1/chat/completions"}, "action": {"type": "status", "status": 429}},
        ],
    )
    with pytest.raises(openai.RateLimitError) as caught:
        gpt.chat.completions.create(**CHAT)
    assert caught.value.body["type"] == "rate_limit_error"
    text = http.post("/v1/chat/completions", json={**CHAT, "model": "text-body"})
    assert text.status_code == 502 and text.text == "<html>bad gateway</html>"
    assert text.headers["content-type"].startswith("text/plain")
    custom = http.post("/v1/chat/completions", json={**CHAT, "model": "json-body"})
    assert custom.status_code == 400 and custom.json() == {"error": {"message": "custom"}}


def test_fault_match_fields_are_anded(http: httpx.Client) -> None:
    set_faults(
        http,
        [{"match": {"path": "/v1/messages", "model": "m1", "header": ["x-api-key", "k1"], "stream": False}, "action": {"type": "status", "status": 500}}],
    )
    def status(model: str, key: str, stream: bool = False) -> int:
        body = {**MESSAGE, "model": model, "stream": stream}
        return http.post("/v1/messages", json=body, headers={"x-api-key": key}).status_code

    assert status("m1", "k1") == 500
    assert status("m2", "k1") == 200
    assert status("m1", "k2") == 200
    assert status("m1", "k1", stream=True) == 200
    assert http.post("/v1/chat/completions", json={**CHAT, "model": "m1"}, headers={"x-api-key": "k1"}).status_code == 200


def test_hang_answers_never_and_the_peer_close_is_seen(upstream: MockUpstreamThread, http: httpx.Client) -> None:
    set_faults(http, [{"action": {"type": "hang"}}])
    before = upstream.stats()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(upstream.url + "/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS, timeout=0.3)
    wait_for(lambda: upstream.stats()["disconnects_during_response"] == before["disconnects_during_response"] + 1)
    stats = upstream.stats()
    assert stats["connections_closed_by_peer"] > before["connections_closed_by_peer"]
    assert stats["responses"] == before["responses"]


def test_delay_waits_before_answering(http: httpx.Client) -> None:
    set_faults(http, [{"times": 1, "action": {"type": "delay", "seconds": 0.3}}])
    started = time.monotonic()
    assert http.post("/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    http.post("/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS)
    assert time.monotonic() - started < 0.25


def test_close_drops_the_connection_without_a_response(upstream: MockUpstreamThread) -> None:
    with httpx.Client(base_url=upstream.url, timeout=2) as http:
        set_faults(http, [{"match": {"path": "/v1/messages"}, "action": {"type": "close"}}])
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS)
    assert upstream.stats()["connections_closed_by_server"] >= 1


def test_reset_after_events_aborts_the_stream(upstream: MockUpstreamThread, http: httpx.Client) -> None:
    set_faults(http, [{"action": {"type": "reset_after_events", "events": 2}}])
    sock = raw_connection(upstream)
    sock.sendall(raw_post("/v1/messages", STREAM_MESSAGE))
    received, error = read_until_closed(sock)
    sock.close()
    assert isinstance(error, ConnectionResetError)  # an RST, not a clean end
    events = sse_payloads(received)
    assert [e.event for e in events] == ["message_start", "content_block_start"]
    assert b"0\r\n\r\n" not in received

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.post(upstream.url + "/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS, timeout=2)


def test_malformed_after_events_sends_garbage_then_ends(upstream: MockUpstreamThread, http: httpx.Client) -> None:
    set_faults(http, [{"action": {"type": "malformed_after_events", "events": 3}}])
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = SSEParser().feed(response.read())
    assert len(events) == 4
    for event in events[:3]:
        orjson.loads(event.data)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(events[3].data)


def test_event_delay_spaces_out_the_events(upstream: MockUpstreamThread, http: httpx.Client) -> None:
    set_faults(http, [{"action": {"type": "event_delay", "seconds": 0.05}}])
    arrivals = []
    parser = SSEParser()
    with http.stream("POST", "/v1/messages", json=STREAM_MESSAGE, headers=ANTHROPIC_HEADERS) as response:
        for chunk in response.iter_raw():
            for _ in parser.feed(chunk):
                arrivals.append(time.monotonic())
    assert len(arrivals) == 10  # every event arrives on its own
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert min(gaps) >= 0.03


def test_event_delay_pauses_limits_the_pauses(upstream: MockUpstreamThread, http: httpx.Client) -> None:
    """``pauses: 3``: three pauses, before the 2nd, 3rd and 4th event; the other six follow at once."""
    set_faults(http, [{"action": {"type": "event_delay", "seconds": 0.1, "pauses": 3}}])
    arrivals = []
    parser = SSEParser()
    with http.stream("POST", "/v1/messages", json=STREAM_MESSAGE, headers=ANTHROPIC_HEADERS) as response:
        for chunk in response.iter_raw():
            for _ in parser.feed(chunk):
                arrivals.append(time.monotonic())
    assert len(arrivals) == 10
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert [g >= 0.04 for g in gaps] == [True] * 3 + [False] * 6, gaps
    with pytest.raises(ValueError, match="pauses"):
        parse_fault_rules([{"action": {"type": "event_delay", "seconds": 0.1, "pauses": -1}}])


def test_client_disconnect_mid_stream_is_counted(upstream: MockUpstreamThread, http: httpx.Client) -> None:
    set_faults(http, [{"action": {"type": "event_delay", "seconds": 0.2}}])
    before = upstream.stats()
    sock = raw_connection(upstream)
    sock.sendall(raw_post("/v1/messages", STREAM_MESSAGE))
    assert b"message_start" in sock.recv(65536)
    # Counters only ever grow: other tests' connections closing meanwhile cannot confuse this.
    assert upstream.stats()["connections_opened"] >= before["connections_opened"] + 1
    sock.close()
    wait_for(lambda: upstream.stats()["disconnects_during_response"] == before["disconnects_during_response"] + 1)
    closed = [c for c in http.get("/_mock/connections").json() if c["closed_during_response"]]
    assert closed and closed[-1]["closed_by"] == "peer"


def test_non_streaming_requests_are_unaffected_by_stream_faults(http: httpx.Client) -> None:
    set_faults(http, [{"action": {"type": "event_delay", "seconds": 1}}])
    started = time.monotonic()
    assert http.post("/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS).status_code == 200
    assert time.monotonic() - started < 0.5
    set_faults(http, [{"action": {"type": "malformed_after_events", "events": 1}}])
    broken = http.post("/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(broken.content)


# ---------------------------------------------------------------------------------------
# Connections and running modes


def test_keep_alive_reuses_one_connection(upstream: MockUpstreamThread) -> None:
    before = upstream.stats()["connections_opened"]
    with httpx.Client(base_url=upstream.url, timeout=5) as client:
        for _ in range(5):
            assert client.post("/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS).status_code == 200
            assert client.post("/v1/messages", json=STREAM_MESSAGE, headers=ANTHROPIC_HEADERS).status_code == 200
        stats = upstream.stats()
        assert stats["connections_opened"] == before + 1
        used = {r["connection"] for r in upstream.requests()}
        assert len(used) == 1
    # This client's own connection is closed; other tests' connections may come and go meanwhile.
    (mine,) = used
    wait_for(lambda: any(c["id"] == mine and not c["open"] for c in upstream.connections()))


def test_pipelined_requests_on_a_raw_socket_are_answered_in_order(upstream: MockUpstreamThread) -> None:
    sock = raw_connection(upstream)
    first = raw_post("/v1/messages", {**MESSAGE, "model": "first"})
    second = raw_post("/v1/messages", {**MESSAGE, "model": "second"}, {**ANTHROPIC_HEADERS, "connection": "close"})
    sock.sendall(first + second)
    received, error = read_until_closed(sock)
    sock.close()
    assert error is None
    assert received.count(b"HTTP/1.1 200 OK") == 2
    assert received.index(b'"model":"first"') < received.index(b'"model":"second"')
    assert b"connection: close" in received


def test_malformed_http_gets_400(upstream: MockUpstreamThread) -> None:
    sock = raw_connection(upstream)
    sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    received, _ = read_until_closed(sock)
    sock.close()
    assert received.startswith(b"HTTP/1.1 400")


def test_latency_option_delays_every_answer() -> None:
    url, handle = start_in_thread(latency_ms=150)
    try:
        started = time.monotonic()
        response = httpx.post(url + "/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS, timeout=5)
        assert response.status_code == 200 and time.monotonic() - started >= 0.15
        assert httpx.get(url + "/_mock/stats").status_code == 200
    finally:
        handle.stop()


def test_runs_as_a_subprocess() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "keystile.testing.upstream", "--port", "0", "--latency-ms", "1"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        response = httpx.post(url + "/v1/messages", json=STREAM_MESSAGE, headers=ANTHROPIC_HEADERS, timeout=5)
        assert response.headers["content-type"] == "text/event-stream"
        assert [e.event for e in SSEParser().feed(response.content)][-1] == "message_stop"
        assert httpx.get(url + "/_mock/stats").json()["requests"] == 1
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_cache_header_picks_how_cached_prefixes_are_reported(http: httpx.Client) -> None:
    body = {**MESSAGE, "system": [{"type": "text", "text": "x" * 400, "cache_control": {"type": "ephemeral"}}]}
    read = http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS).json()["usage"]
    written = http.post("/v1/messages", json=body, headers={**ANTHROPIC_HEADERS, "x-mock-cache": "write"}).json()["usage"]
    uncached = http.post("/v1/messages", json=body, headers={**ANTHROPIC_HEADERS, "x-mock-cache": "none"}).json()["usage"]
    assert read["cache_read_input_tokens"] == 100 and read["cache_creation_input_tokens"] == 0
    assert written["cache_creation_input_tokens"] == 100 and written["cache_read_input_tokens"] == 0
    assert uncached["input_tokens"] == read["input_tokens"] + 100


def test_expect_100_continue_is_honoured(upstream: MockUpstreamThread) -> None:
    sock = raw_connection(upstream)
    body = orjson.dumps(MESSAGE)
    head = f"POST /v1/messages HTTP/1.1\r\nhost: mock\r\nx-api-key: k\r\ncontent-length: {len(body)}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n"
    sock.sendall(head.encode())
    assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
    sock.sendall(body)
    received, _ = read_until_closed(sock)
    sock.close()
    assert received.startswith(b"HTTP/1.1 200 OK")


def test_coalesced_streams_are_still_one_chunk_per_event() -> None:
    url, handle = start_in_thread(coalesce_stream=True, record_limit=0)
    try:
        with httpx.Client(base_url=url, timeout=5) as http:
            response = http.post("/v1/messages", json=STREAM_MESSAGE, headers=ANTHROPIC_HEADERS)
            assert [e.event for e in SSEParser().feed(response.content)][-1] == "message_stop"
            assert http.get("/_mock/requests").json() == []  # recording switched off
            assert http.get("/_mock/stats").json()["requests"] == 1
    finally:
        handle.stop()


def test_error_after_events_sends_the_in_band_error_event(http: httpx.Client) -> None:
    set_faults(http, [{"action": {"type": "error_after_events", "events": 1}}])
    with http.stream("POST", "/v1/messages", json=STREAM_MESSAGE, headers=ANTHROPIC_HEADERS) as response:
        assert response.status_code == 200
        events = SSEParser().feed(response.read())
    assert [e.event for e in events] == ["message_start", "error"]
    assert orjson.loads(events[1].data)["error"]["type"] == "overloaded_error"

    set_faults(http, [{"action": {"type": "error_after_events", "events": 0, "status": 500}}])
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        events = SSEParser().feed(response.read())
    assert [orjson.loads(e.data)["error"]["type"] for e in events] == ["server_error"]
    not_streaming = http.post("/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS)  # gets the status instead
    assert not_streaming.status_code == 500 and not_streaming.json()["error"]["type"] == "api_error"


def test_a_websocket_upgrade_is_refused_with_426_at_once(upstream: MockUpstreamThread) -> None:
    # Codex's Responses WebSocket attempt: an HTTP-only server says 426, and Codex falls back to POST.
    sock = raw_connection(upstream)
    request = (
        "GET /v1/responses HTTP/1.1\r\nhost: mock\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
        "sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    sock.sendall(request.encode())
    received, _ = read_until_closed(sock)
    sock.close()
    assert received.startswith(b"HTTP/1.1 426 "), received[:200]
    assert b"WebSocket" in received


def test_an_effort_for_a_model_that_does_not_reason_is_refused_as_openai_does(http: httpx.Client) -> None:
    chat = http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4.1", "reasoning_effort": "high"})
    assert chat.status_code == 400 and chat.json()["error"]["code"] == "unsupported_parameter"
    assert chat.json()["error"]["param"] == "reasoning_effort"
    responses = http.post("/v1/responses", json={"model": "gpt-4o", "input": "hi", "reasoning": {"effort": "low"}})
    assert responses.status_code == 400 and responses.json()["error"]["param"] == "reasoning.effort"
    assert http.post("/v1/chat/completions", json={**CHAT, "model": "o3", "reasoning_effort": "high"}).status_code == 200
    assert http.post("/v1/responses", json={"model": "gpt-4o", "input": "hi", "reasoning": {"summary": "auto"}}).status_code == 200
