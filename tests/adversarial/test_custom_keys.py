"""Issue 11.11: a key an admin chooses is one a client can send and keystile will accept.

``/key/generate`` ``key`` and ``/key/regenerate`` ``new_key``: printable ASCII without
whitespace, 16 to 256 characters, never the master key or an Anthropic credential — else a
400 naming the field, with nothing stored and the regenerated key unchanged.
"""

from __future__ import annotations

import httpx
import pytest

from tests.integration.harness import MASTER_KEY, anthropic_body

BAD_KEYS = {
    "one character": "x",
    "15 characters": "a" * 15,
    "a space": "sk-has a-space-1234",
    "a tab": "sk-tab\there-123456789",
    "a newline": "sk-line\nbreak-123456",
    "a NUL": "sk-nul\u0000-1234567890",
    "non-ASCII": "sk-ключ-1234567890",
    "257 characters": "k" * 257,
    "the master key": MASTER_KEY,
    "an Anthropic API key": "sk-ant-api03-" + "a" * 20,
    "an Anthropic OAuth token": "sk-ant-oat01-" + "a" * 20,
    "empty": "",
}


def authenticates(gateway, key: str) -> bool:  # type: ignore[no-untyped-def]
    response = httpx.post(
        f"{gateway.url}/v1/messages", json=anthropic_body(), headers={"x-api-key": key, "anthropic-version": "2023-06-01"}, timeout=30
    )
    return response.status_code == 200


def total_keys(gateway) -> int:  # type: ignore[no-untyped-def]
    return gateway.admin("GET", "/key/list").json()["total_count"]


@pytest.mark.parametrize("bad", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_generate_refuses_a_custom_key_that_could_never_work(gateway, bad):
    before = total_keys(gateway)
    response = gateway.admin("POST", "/key/generate", json={"key": bad})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "key" and error["message"].startswith("key: ")
    assert bad not in error["message"] or len(bad) < 2  # the candidate secret is not echoed
    assert total_keys(gateway) == before


@pytest.mark.parametrize("bad", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_regenerate_refuses_such_a_new_key_and_leaves_the_key_as_it_was(gateway, bad):
    old = gateway.create_key()
    response = gateway.admin("POST", "/key/regenerate", json={"key": old, "new_key": bad})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "new_key" and error["message"].startswith("new_key: ")
    assert authenticates(gateway, old)


@pytest.mark.parametrize("good", ["abcdefghijklmnop", "!#$%&'*+-.^_`|~0", "sk-" + "Z" * 253])
def test_printable_ascii_keys_of_16_to_256_characters_work(gateway, good):
    created = gateway.admin("POST", "/key/generate", json={"key": good})
    assert created.status_code == 200, created.text
    assert created.json()["key"] == good and authenticates(gateway, good)
    new = good[::-1][:240] + "-rotated"
    rotated = gateway.admin("POST", "/key/regenerate", json={"key": good, "new_key": new})
    assert rotated.status_code == 200, rotated.text
    assert authenticates(gateway, new) and not authenticates(gateway, good)


def test_regenerate_refuses_a_new_key_another_key_already_has(gateway):
    mine, theirs = gateway.create_key(), gateway.create_key()
    response = gateway.admin("POST", "/key/regenerate", json={"key": mine, "new_key": theirs})
    assert response.status_code == 400 and response.json()["error"]["param"] == "new_key"
    assert authenticates(gateway, mine) and authenticates(gateway, theirs)
