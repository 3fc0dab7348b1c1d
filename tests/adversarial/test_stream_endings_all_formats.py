"""Issue 12.4: every stream ends properly, in every format — its finish signal or an in-band error.

Each client format (Anthropic Messages, Chat Completions, Responses, Gemini) streams from each
upstream format keystile has a provider for (Anthropic, Chat, Responses, Gemini, Bedrock's
event stream), and the upstream's stream is cut short: a TCP reset, a malformed event followed
by a clean close, an in-band error event — each after a pause, so the first event has reached
the client and nothing can be retried — a reset and a malformed event in one burst, and a
stream that closes cleanly after its first events without a finish signal. The official SDK
of the client's format reads the stream; what it sees must be the format's finish signal, an
in-band error, or (when nothing had been sent yet) an HTTP error — never a stream that just
stops. A client that gets no finish signal retries (Gemini CLI three times) or re-sends in a
tight loop (opencode, ~9 requests/s).
"""

from __future__ import annotations

import textwrap
from typing import Iterator

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from keystile.providers import mock_replies, mock_replies_gemini, mock_replies_responses
from tests.integration.clouds import BEDROCK_API_KEY, cloud_gateway
from tests.integration.harness import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, GatewayProcess

# model → (the upstream path its stream comes from, its deployment)
UPSTREAMS = {
    "ends-anthropic": ("/v1/messages", "provider: anthropic\nmodel: claude-sonnet-4-5-20250929\napi_base: {url}\napi_key: {anthropic_key}"),
    "ends-chat": ("/v1/chat/completions", "provider: openai\nmodel: gpt-4.1\napi_base: {url}/v1\napi_key: {openai_key}"),
    "ends-responses": ("/v1/responses", "provider: openai\nmodel: gpt-5\napi_base: {url}/v1\napi_key: {openai_key}\nwire_api: responses"),
    "ends-gemini": (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        "provider: gemini\nmodel: gemini-2.5-flash\napi_base: {url}\napi_key: gemini-key-SECRET-6666",
    ),
    "ends-bedrock": (  # AWS event-stream frames
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
        "provider: bedrock\nmodel: us.anthropic.claude-sonnet-4-5-20250929-v1:0\nregion: us-east-1\napi_base: {url}\napi_key: {bedrock_key}",
    ),
}
# A pause after the first event lets it reach the client on its own: the stream has begun, so the
# failure can only be reported in-band. "malformed-at-once" gives keystile the whole broken
# stream in one read, before it has sent anything: an HTTP error is as good an answer then.
FAULTS = {
    "reset": {"type": "reset_after_events", "events": 3, "seconds": 0.2},
    "malformed": {"type": "malformed_after_events", "events": 3, "seconds": 0.2},
    "in-band-error": {"type": "error_after_events", "events": 3, "status": 529, "seconds": 0.2},
    "reset-at-once": {"type": "reset_after_events", "events": 3},
    "malformed-at-once": {"type": "malformed_after_events", "events": 3},
    "clean-eof-at-once": None,  # the stream's first events, then a clean close: no finish, no error
}
FINISHED, IN_BAND_ERROR, HTTP_ERROR = "finished", "in-band error", "HTTP error"


def _cut_stream(path: str) -> dict:
    """A 200 whose SSE body is the first three events of the mock's own stream for ``path``."""
    body = {"model": "m", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "Hello there"}]}
    if path == "/v1/messages":
        events = mock_replies.anthropic_stream(body)
    elif path == "/v1/chat/completions":
        events = mock_replies.openai_stream(body)
    elif path == "/v1/responses":
        events = mock_replies_responses.responses_stream({"model": "m", "input": "Hello there", "stream": True})
    else:
        events = mock_replies_gemini.gemini_stream({"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]}, "m")
    sse = b"".join(events[:3]).decode()
    return {"type": "status", "status": 200, "body": sse, "headers": {"content-type": "text/event-stream"}}


# Bedrock's binary frames cannot be given as a status fault's text body; its other faults apply.
CASES = [(model, fault) for model in sorted(UPSTREAMS) for fault in sorted(FAULTS)
         if not (model == "ends-bedrock" and fault == "clean-eof-at-once")]


@pytest.fixture(scope="module")
def gateway(upstream) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    keys = {"anthropic_key": UPSTREAM_ANTHROPIC_KEY, "openai_key": UPSTREAM_OPENAI_KEY, "bedrock_key": BEDROCK_API_KEY}
    models = "".join(
        f"  - name: {name}\n    max_retries: 0\n" + textwrap.indent(deployment.format(url=upstream.url, **keys), "    ") + "\n"
        for name, (_, deployment) in UPSTREAMS.items()
    )
    with cloud_gateway("models:\n" + models + "router:\n  num_retries: 0\n") as gw:
        yield gw


# --- one reader per client format, each the official SDK; each says how the stream ended ----------


def _anthropic(gateway: GatewayProcess, key: str, model: str) -> str:
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0, timeout=30) as client:
        try:
            with client.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello there"}]) as stream:
                kinds = [event.type for event in stream]
        except anthropic.APIStatusError as exc:  # an `error` event raises with the stream's own 200
            return IN_BAND_ERROR if exc.status_code == 200 else HTTP_ERROR
    return FINISHED if kinds and kinds[-1] == "message_stop" else f"silent end after {kinds}"


def _chat(gateway: GatewayProcess, key: str, model: str) -> str:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30) as client:
        try:
            stream = client.chat.completions.create(
                model=model, stream=True, stream_options={"include_usage": True}, messages=[{"role": "user", "content": "Hello there"}]
            )
            finishes = [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason]
        except openai.APIStatusError:
            return HTTP_ERROR
        except openai.APIError:  # a chunk carrying {"error": …}
            return IN_BAND_ERROR
    return FINISHED if finishes else "silent end: no finish_reason"


def _responses(gateway: GatewayProcess, key: str, model: str) -> str:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30) as client:
        try:
            kinds = [event.type for event in client.responses.create(model=model, input="Hello there", stream=True)]
        except openai.APIStatusError:
            return HTTP_ERROR
        except openai.APIError:
            return IN_BAND_ERROR
    if kinds and kinds[-1] in ("response.completed", "response.incomplete"):
        return FINISHED
    if kinds and kinds[-1] == "response.failed" and "error" in kinds:
        return IN_BAND_ERROR
    return f"silent end after {kinds[-3:]}"


def _gemini(gateway: GatewayProcess, key: str, model: str) -> str:
    client = genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=gateway.url, timeout=30_000))
    try:
        chunks = list(client.models.generate_content_stream(model=model, contents="Hello there"))
    except genai_errors.APIError as exc:
        status = getattr(exc.response, "status_code", None)
        return IN_BAND_ERROR if status == 200 else HTTP_ERROR
    last = chunks[-1] if chunks else None
    if last is not None and last.candidates and last.candidates[0].finish_reason:
        return FINISHED
    return f"silent end after {len(chunks)} chunks"


CLIENTS = {"anthropic": _anthropic, "chat": _chat, "responses": _responses, "gemini": _gemini}


@pytest.mark.parametrize("model,fault", CASES)
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_stream_cut_short_ends_with_an_error_the_client_sees(gateway, upstream, key, client, model, fault):
    path = UPSTREAMS[model][0]
    upstream.set_faults([{"match": {"path": path}, "action": FAULTS[fault] or _cut_stream(path)}])
    outcome = CLIENTS[client](gateway, key, model)
    allowed = (IN_BAND_ERROR, HTTP_ERROR) if fault.endswith("at-once") else (IN_BAND_ERROR,)
    assert outcome in allowed, f"{client} client, {model}, {fault}: {outcome}"
    assert any(r["path"] == path for r in upstream.requests())  # the fault was met, not a refusal before it
    assert key not in gateway.log()


@pytest.mark.parametrize("model", sorted(UPSTREAMS))
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_an_unbroken_stream_ends_with_the_finish_signal(gateway, key, client, model):
    assert CLIENTS[client](gateway, key, model) == FINISHED
