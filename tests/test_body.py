"""The upstream body: only the model renamed, byte for byte otherwise; usage asked for on OpenAI streams."""

from __future__ import annotations

import random

import orjson
import pytest

from keystile.apiformat import ApiFormat
from keystile.providers.body import rename_model, upstream_body, with_stream_usage

SPLICED = [
    (b'{"model":"a","x":1}', b'{"model":"new","x":1}'),
    (b'{ "x": "say \\"model\\": no", "model" : "a\\\\" }', b'{ "x": "say \\"model\\": no", "model" : "new" }'),
    (b'{"model"\n:\n"a", "messages": []}', b'{"model"\n:\n"new", "messages": []}'),
    (b'{"messages": [{"content": "caf\\u00e9"}], "model": "a", "temperature": 0.30000000000000004}',
     b'{"messages": [{"content": "caf\\u00e9"}], "model": "new", "temperature": 0.30000000000000004}'),
]


@pytest.mark.parametrize("raw,expected", SPLICED)
def test_the_single_model_key_is_spliced_in_place(raw, expected):
    assert rename_model(raw, orjson.loads(raw), "new") == expected


@pytest.mark.parametrize(
    "raw",
    [
        b'{"tools": [{"input_schema": {"properties": {"model": {}}}}], "model": "a"}',  # a nested "model" key
        b'{"model": "a", "messages": [{"role": "model"}], "x": "\\"model\\""}',  # "model" also as a value
    ],
)
def test_several_model_keys_fall_back_to_reencoding(raw):
    out = rename_model(raw, orjson.loads(raw), "new")
    assert orjson.loads(out) == {**orjson.loads(raw), "model": "new"}


def test_same_model_returns_the_same_bytes():
    raw = b'{"model": "same"}'
    assert rename_model(raw, orjson.loads(raw), "same") is raw


def test_renaming_never_changes_anything_but_the_model():
    rng = random.Random(7)
    words = ["model", '"model"', "\\", '"', "é", "\n", "x", "{", "}", ":"]
    for _ in range(500):
        body = {"messages": [{"role": "user", "content": "".join(rng.choice(words) for _ in range(rng.randint(0, 12)))}]}
        body["model"] = rng.choice(["a", 'we"ird\\', "m"])
        if rng.random() < 0.5:
            body["metadata"] = {"user_id": rng.choice(words)}
        raw = orjson.dumps(body)
        out = rename_model(raw, body, "claude-x")
        assert orjson.loads(out) == {**body, "model": "claude-x"}


def test_openai_streams_always_ask_for_usage():
    assert with_stream_usage(b'{"model": "m", "stream": true}', {"model": "m", "stream": True}) == (
        b'{"stream_options":{"include_usage":true},"model": "m", "stream": true}'
    )
    kept = b'{"stream_options": {"include_usage": true}}'
    assert with_stream_usage(kept, orjson.loads(kept)) is kept
    merged = with_stream_usage(b'{"stream_options": {"foo": 1}}', {"stream_options": {"foo": 1}})
    assert orjson.loads(merged) == {"stream_options": {"foo": 1, "include_usage": True}}


def test_upstream_body_renames_and_adds_usage_for_openai_streams():
    raw = b'{"model": "public", "stream": true, "messages": []}'
    out = upstream_body(raw, orjson.loads(raw), client=ApiFormat.OPENAI, wire=ApiFormat.OPENAI,
                        upstream_model="gpt-x", stream=True, default_max_tokens=10)
    assert orjson.loads(out) == {"model": "gpt-x", "stream": True, "messages": [], "stream_options": {"include_usage": True}}
