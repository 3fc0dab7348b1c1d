"""The LiteLLM-shaped key API: master key only, raw keys shown once, changes effective at once."""

from __future__ import annotations

import hashlib
import uuid

import httpx

from tests.integration.harness import anthropic_body


def call(gateway, key: str) -> int:
    return httpx.post(
        f"{gateway.url}/v1/messages", json=anthropic_body(), headers={"x-api-key": key, "anthropic-version": "2023-06-01"}
    ).status_code


def test_generate_returns_the_raw_key_once(gateway):
    created = gateway.admin(
        "POST",
        "/key/generate",
        json={
            "key_alias": "alice-laptop",
            "models": ["claude-test"],
            "max_budget": 10,
            "budget_duration": "30d",
            "rpm_limit": 100,
            "tpm_limit": 100000,
            "max_parallel_requests": 4,
            "duration": "30d",
            "metadata": {"owner": "alice"},
        },
    ).json()
    raw = created["key"]
    assert raw.startswith("sk-") and len(raw) >= 32
    assert created["token"] == hashlib.sha256(raw.encode()).hexdigest()
    assert created["expires"] is not None and created["budget_reset_at"] is not None

    info = gateway.admin("GET", "/key/info", params={"key": raw}).json()
    assert raw not in str(info)
    assert info["info"]["key_alias"] == "alice-laptop"
    assert info["info"]["metadata"] == {"owner": "alice"}
    by_hash = gateway.admin("GET", "/key/info", params={"key": created["token"]}).json()
    assert by_hash["info"]["key_name"] == info["info"]["key_name"]

    listed = gateway.admin("GET", "/key/list").json()
    assert created["token"] in listed["keys"] and raw not in str(listed)
    full = gateway.admin("GET", "/key/list", params={"return_full_object": "true"}).json()
    assert raw not in str(full)


def test_virtual_key_cannot_use_the_admin_api(gateway, key):
    response = gateway.admin("POST", "/key/generate", json={}, key=key)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert gateway.admin("GET", "/key/list", key="sk-nope-000000000000").status_code == 401


def test_block_unblock_delete_take_effect_on_the_next_request(gateway):
    raw = gateway.create_key()
    assert call(gateway, raw) == 200  # now cached
    assert gateway.admin("POST", "/key/block", json={"key": raw}).json()["blocked"] is True
    assert call(gateway, raw) == 401
    gateway.admin("POST", "/key/unblock", json={"key": raw})
    assert call(gateway, raw) == 200
    deleted = gateway.admin("POST", "/key/delete", json={"keys": [raw]}).json()
    assert deleted["deleted_keys"] == [hashlib.sha256(raw.encode()).hexdigest()]
    assert call(gateway, raw) == 401
    assert gateway.admin("POST", "/key/delete", json={"keys": [raw]}).status_code == 404


def test_regenerate_replaces_the_secret(gateway):
    old = gateway.create_key(key_alias="rotating")
    assert call(gateway, old) == 200
    regenerated = gateway.admin("POST", "/key/regenerate", json={"key": old}).json()
    new = regenerated["key"]
    assert new != old and regenerated["key_alias"] == "rotating"
    assert call(gateway, old) == 401
    assert call(gateway, new) == 200


def test_update_changes_limits_and_models(gateway):
    raw = gateway.create_key()
    assert call(gateway, raw) == 200
    updated = gateway.admin("POST", "/key/update", json={"key": raw, "models": ["gpt-test"]}).json()
    assert updated["models"] == ["gpt-test"]
    assert call(gateway, raw) == 403


def test_admin_input_errors_are_clear(gateway):
    wrong_type = gateway.admin("POST", "/key/generate", json={"rpm_limit": "many"})
    assert wrong_type.status_code == 400 and "rpm_limit" in wrong_type.json()["error"]["message"]
    bad_duration = gateway.admin("POST", "/key/generate", json={"duration": "forever"})
    assert bad_duration.status_code == 400 and "duration" in bad_duration.json()["error"]["message"]
    missing = gateway.admin("GET", "/key/info", params={"key": "sk-ks-doesnotexist000000000"})
    assert missing.status_code == 404
    not_json = httpx.post(f"{gateway.url}/key/generate", content=b"{nope", headers={"authorization": f"Bearer {gateway.master_key}"})
    assert not_json.status_code == 400
    anthropic_looking = gateway.admin("POST", "/key/generate", json={"key": "sk-ant-api03-xxxxxxxxxxxxxxxx"})
    assert anthropic_looking.status_code == 400
    gateway.create_key(key_alias="taken")
    duplicate = gateway.admin("POST", "/key/generate", json={"key_alias": "taken"})
    assert duplicate.status_code == 400 and "key_alias" in duplicate.json()["error"]["message"]
    unknown_team = gateway.admin("POST", "/key/generate", json={"team_id": "no-such-team"})
    assert unknown_team.status_code == 400


def test_custom_key_value(gateway):
    created = gateway.admin("POST", "/key/generate", json={"key": "sk-my-own-key-123456"}).json()
    assert created["key"] == "sk-my-own-key-123456"
    assert call(gateway, "sk-my-own-key-123456") == 200


def test_health_endpoints(gateway):
    assert httpx.get(f"{gateway.url}/health/liveliness").status_code == 200
    assert httpx.get(f"{gateway.url}/health/liveness").status_code == 200
    ready = httpx.get(f"{gateway.url}/health/readiness")
    assert ready.status_code == 200 and ready.json()["db"] == "connected"
    metrics = httpx.get(f"{gateway.url}/metrics")
    assert metrics.status_code == 200 and "keystile_overhead_seconds" in metrics.text


def test_team_members_keep_their_roles_and_may_be_given_by_email(gateway):
    """LiteLLM's Member: {"user_id" | "user_email", "role": "admin" | "user"}, in /team/new and /team/member_add."""
    tag = uuid.uuid4().hex[:8]
    alice, newcomer = f"alice-{tag}@example.com", f"new-{tag}@example.com"
    assert gateway.admin("POST", "/user/new", json={"user_id": f"alice-{tag}", "user_email": alice, "auto_create_key": False}).status_code == 200
    created = gateway.admin(
        "POST",
        "/team/new",
        json={
            "team_alias": "research",
            "members_with_roles": [
                {"user_id": f"owner-{tag}", "role": "admin"},
                {"user_email": alice, "role": "user"},
                {"user_email": newcomer, "role": "admin"},
            ],
        },
    )
    assert created.status_code == 200, created.text
    team_id = created.json()["team_id"]

    def roles() -> dict[str, tuple[str | None, str]]:
        info = gateway.admin("GET", "/team/info", params={"team_id": team_id}).json()["team_info"]
        return {m["user_id"]: (m["user_email"], m["role"]) for m in info["members_with_roles"]}

    stored = roles()
    new_id = next(user_id for user_id, (email, _) in stored.items() if email == newcomer)  # created, as LiteLLM does
    assert stored == {f"owner-{tag}": (None, "admin"), f"alice-{tag}": (alice, "user"), new_id: (newcomer, "admin")}
    assert {m["user_id"]: m["role"] for m in created.json()["members_with_roles"]} == {k: v[1] for k, v in stored.items()}
    assert gateway.admin("GET", "/user/info", params={"user_id": new_id}).json()["user_info"]["user_email"] == newcomer

    promoted = gateway.admin("POST", "/team/member_add", json={"team_id": team_id, "member": {"user_email": alice, "role": "admin"}})
    assert promoted.status_code == 200, promoted.text
    added = gateway.admin("POST", "/team/member_add", json={"team_id": team_id, "member": [{"user_id": f"bob-{tag}", "role": "user"}]})
    assert added.status_code == 200, added.text
    stored = roles()
    assert stored[f"alice-{tag}"] == (alice, "admin") and stored[f"bob-{tag}"] == (None, "user")

    bad_role = gateway.admin("POST", "/team/member_add", json={"team_id": team_id, "member": {"user_id": "x", "role": "owner"}})
    assert bad_role.status_code == 400 and bad_role.json()["error"]["param"] == "member"
    nobody = gateway.admin("POST", "/team/member_add", json={"team_id": team_id, "member": {"role": "user"}})
    assert nobody.status_code == 400 and nobody.json()["error"]["param"] == "member"
    bad_new = gateway.admin("POST", "/team/new", json={"members_with_roles": [{"user_id": "y", "role": "boss"}]})
    assert bad_new.status_code == 400 and bad_new.json()["error"]["param"] == "members_with_roles"

    shared = f"shared-{tag}@example.com"
    for n in (1, 2):
        gateway.admin("POST", "/user/new", json={"user_id": f"twin{n}-{tag}", "user_email": shared, "auto_create_key": False})
    ambiguous = gateway.admin("POST", "/team/member_add", json={"team_id": team_id, "member": {"user_email": shared, "role": "user"}})
    assert ambiguous.status_code == 400 and "user_id" in ambiguous.json()["error"]["message"]

    removed = gateway.admin("POST", "/team/member_delete", json={"team_id": team_id, "user_email": alice})
    assert removed.status_code == 200, removed.text
    assert f"alice-{tag}" not in roles()
