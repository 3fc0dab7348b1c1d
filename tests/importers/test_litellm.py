"""Mapping LiteLLM rows onto keystile records: the pure part of ``keystile import litellm``.

Rows are written as ``row_to_json`` renders LiteLLM's tables (timestamps without a zone,
``text[]`` as lists, ``jsonb`` as objects); the end-to-end run on LiteLLM's real schema is in
tests/integration/test_litellm_import.py.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from keystile.importers.litellm import ImportFailed, Snapshot, connect_arguments, plan_import

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()
TOKEN = hashlib.sha256(b"sk-litellm-example-0001").hexdigest()


def key_row(**columns) -> dict:
    return {"token": TOKEN, "key_name": "sk-...0001", "key_alias": "k", "spend": 0.0, "models": [], "metadata": {}, **columns}


def one_key(**columns):
    plan = plan_import(Snapshot(keys=[key_row(**columns)]), NOW)
    [key] = plan.keys
    return key, plan.unmapped


def test_a_key_keeps_its_hash_and_shows_only_its_last_four():
    key, unmapped = one_key()
    assert (key.token_hash, key.key_name, key.key_alias, unmapped) == (TOKEN, "sk-…0001", "k", [])


def test_a_raw_key_from_a_very_old_litellm_is_imported_by_its_hash():
    key, _ = one_key(token="sk-stored-raw-by-an-old-litellm-9999")
    assert key.token_hash == hashlib.sha256(b"sk-stored-raw-by-an-old-litellm-9999").hexdigest()
    assert key.key_name == "sk-…9999"


def test_a_token_that_is_neither_hash_nor_key_is_reported_not_imported():
    plan = plan_import(Snapshot(keys=[key_row(token="not-a-hash")]), NOW)
    assert plan.keys == [] and "neither a SHA-256 hash nor a raw key" in plan.unmapped[0]


@pytest.mark.parametrize(
    "models,team,expected",
    [
        ([], None, []),
        (["gpt-4o", "claude-sonnet"], None, ["gpt-4o", "claude-sonnet"]),
        (["all-proxy-models"], None, []),
        (["all-team-models"], "team-1", []),  # the team's list applies to its keys anyway
        (["all-team-models", "gpt-4o"], "team-1", ["gpt-4o"]),
        (["all-team-models"], None, ["all-team-models"]),  # no team: keep the word, which matches no model
        (["no-default-models"], None, ["no-default-models"]),
    ],
)
def test_litellm_model_words(models, team, expected):
    key, _ = one_key(models=models, team_id=team)
    assert key.models == expected


def test_times_are_utc_and_a_period_without_reset_time_starts_now():
    key, _ = one_key(expires="2027-01-02T03:04:05.678", budget_duration="7d", max_budget=5.0)
    assert key.expires_at == datetime(2027, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc).timestamp()
    assert (key.budget_duration, key.budget_reset_at) == ("7d", NOW + 7 * 86400)


def test_model_limits_come_out_of_metadata_and_the_rest_of_it_stays():
    key, unmapped = one_key(metadata={"model_rpm_limit": {"gpt-4o": 10}, "model_tpm_limit": {"gpt-4o": 900}, "team": "x",
                                      "guardrails": ["pii-mask"]})
    assert (key.model_rpm_limit, key.model_tpm_limit) == ({"gpt-4o": 10}, {"gpt-4o": 900})
    assert key.metadata == {"team": "x", "guardrails": ["pii-mask"]}
    assert unmapped == ['key sk-…0001 (k): metadata.guardrails ["pii-mask"] — keystile runs no guardrails']


def test_a_limit_of_zero_lets_nothing_through_so_the_key_is_imported_blocked():
    key, unmapped = one_key(rpm_limit=0, tpm_limit=1000)
    assert (key.blocked, key.rpm_limit, key.tpm_limit) == (True, None, 1000)
    assert "rpm_limit is 0" in unmapped[0]


def test_a_linked_budget_row_fills_what_the_key_leaves_open():
    budget = {"budget_id": "b1", "soft_budget": 8.0, "max_budget": 10.0, "rpm_limit": 5, "budget_duration": "1d",
              "budget_reset_at": "2026-12-02T00:00:00", "tpd_limit": None, "model_max_budget": {}}
    plan = plan_import(Snapshot(keys=[key_row(budget_id="b1", max_budget=20.0)], budgets={"b1": budget}), NOW)
    [key] = plan.keys
    assert (key.soft_budget, key.max_budget, key.rpm_limit, key.budget_duration) == (8.0, 20.0, 5, "1d")
    assert key.budget_reset_at == datetime(2026, 12, 2, tzinfo=timezone.utc).timestamp()
    assert plan.unmapped == []


def test_each_unmappable_setting_is_one_line():
    _, unmapped = one_key(tpd_limit=1000, model_max_budget={"gpt-4o": {"budget_limit": 1}}, aliases={"gpt": "gpt-4o"},
                          allowed_routes=["/key/generate"], auto_rotate=True, budget_duration="fortnightly",
                          key_type="management", team_id="gone")
    assert len(unmapped) == 8, unmapped
    assert any("budget_duration 'fortnightly'" in line for line in unmapped)
    assert any("team 'gone' is not in LiteLLM's team table" in line for line in unmapped)


def test_team_members_keep_their_roles_and_members_given_by_email_are_found():
    team = {"team_id": "t1", "team_alias": "eng", "models": ["gpt-4o"], "spend": 4.0, "blocked": False, "metadata": {},
            "members_with_roles": [{"role": "admin", "user_id": "ann"}, {"role": "user", "user_email": "ben@x.io"},
                                   {"role": "user", "user_email": "nobody@x.io"}],
            "admins": [], "members": ["ann", "cid"]}
    users = [{"user_id": "ben", "user_email": "ben@x.io", "teams": ["t1"], "metadata": {}},
             {"user_id": "dee", "user_email": "dee@x.io", "teams": ["t1"], "metadata": {}}]
    plan = plan_import(Snapshot(teams=[team], users=users), NOW)
    [imported] = plan.teams
    assert imported.members == [("ann", "admin"), ("ben", "user"), ("cid", "user"), ("dee", "user")]
    assert (imported.record.team_alias, imported.record.spend, imported.record.models) == ("eng", 4.0, ["gpt-4o"])
    assert len(plan.unmapped) == 1 and "nobody@x.io" in plan.unmapped[0]


def test_prisma_url_parameters_are_not_sent_to_postgresql():
    dsn, settings = connect_arguments("postgresql://u:p@db:5432/litellm?schema=proxy&connection_limit=10&pool_timeout=20&sslmode=require")
    assert (dsn, settings) == ("postgresql://u:p@db:5432/litellm?sslmode=require", {"search_path": "proxy"})
    with pytest.raises(ImportFailed):
        connect_arguments("mysql://u:p@db/litellm")
