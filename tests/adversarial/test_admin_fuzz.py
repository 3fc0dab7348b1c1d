"""Issue 11.6: the admin API never answers 500, on SQLite and PostgreSQL.

First every case the issue reproduced, each a 400 naming its field with nothing stored; then a
property: hypothesis generates bodies and query strings for every admin route and the
gateway must answer each with less than 500 — and afterwards still list and show everything
it stored.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keystile.server.admin import routes
from tests.adversarial.stores import gateway_on
from tests.integration.harness import GatewayProcess
from tests.services import create_database, drop_database

ADMIN_ROUTES = sorted(routes(None))  # type: ignore[arg-type]  # the table only, no gateway needed
# Routes whose successful answer is not JSON: Prometheus text and the admin UI's pages and files
# (their errors are JSON like every other route's).
NOT_JSON = {"/metrics", "/ui", "/docs"} | {p for p in ADMIN_ROUTES if p.startswith("/ui/static/")}
HUNDRED_YEARS = 100 * 365 * 86400


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def admin_gateway(request: pytest.FixtureRequest, upstream, tmp_path_factory) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("admin-fuzz")
    if request.param == "sqlite":
        url, server = f"sqlite:///{workdir / 'keystile.db'}", None
    else:
        server = request.getfixturevalue("services").postgres
        url = create_database(server, "ks_fuzz")
    gw = gateway_on(upstream, url, workdir).start()
    try:
        # Records the generated requests can name (REFS), so updates and deletes run, not only "not found".
        assert gw.admin("POST", "/team/new", json={"team_id": "fuzz-team"}).status_code == 200
        assert gw.admin("POST", "/user/new", json={"user_id": "fuzz-user", "user_email": "a@example.com", "teams": ["fuzz-team"]}).status_code == 200
        assert gw.admin("POST", "/key/generate", json={"key": EXISTING_KEY, "key_alias": "fuzz-alias"}).status_code == 200
        yield gw
    finally:
        gw.stop()
        if server is not None:
            drop_database(server, url)
    assert "unhandled error" not in gw.log(), gw.log()[-5000:]


def total_keys(gw: GatewayProcess) -> int:
    return gw.admin("GET", "/key/list").json()["total_count"]


# --- the cases issue 11 reproduced -----------------------------------------------------------------

CASES = [
    ("POST", "/key/generate", {"duration": 1e16}, None, "duration"),
    ("POST", "/key/generate", {"rpm_limit": 2**63}, None, "rpm_limit"),
    ("POST", "/key/generate", {"tpm_limit": 2**63 - 1}, None, "tpm_limit"),
    ("GET", "/key/list", None, {"page": str(10**17)}, "page"),
    ("GET", "/user/list", None, {"page": str(10**17)}, "page"),
    ("POST", "/key/generate", {"duration": "9999999999999d"}, None, "duration"),
    ("POST", "/key/generate", {"budget_duration": "9" * 400}, None, "budget_duration"),
    ("POST", "/key/generate", {"budget_duration": HUNDRED_YEARS + 1}, None, "budget_duration"),
    ("POST", "/key/generate", {"key_alias": "laptop\u0000"}, None, "key_alias"),
    ("POST", "/key/generate", {"max_budget": 1e300}, None, "max_budget"),
    ("POST", "/key/generate", {"models": ["m\u0000"]}, None, "models"),
    ("POST", "/key/generate", {"model_rpm_limit": {"m": 2**63}}, None, "model_rpm_limit"),
    ("POST", "/key/generate", {"metadata": {"a": "x" * 70_000}}, None, "metadata"),
    ("POST", "/team/new", {"team_id": "team\u0000"}, None, "team_id"),
    ("POST", "/team/new", {"team_alias": "t" * 257}, None, "team_alias"),
    ("POST", "/user/new", {"user_id": "u\u0000"}, None, "user_id"),
    ("GET", "/spend/logs", None, {"user_id": "u\u0000"}, "user_id"),
    ("GET", "/spend/logs", None, {"team_id": "t\u0000"}, "team_id"),
    ("GET", "/spend/logs", None, {"model": "m\u0000"}, "model"),
    ("GET", "/spend/logs", None, {"start_date": "1e400"}, "start_date"),
    ("GET", "/spend/logs", None, {"end_date": "99999-01-01"}, "end_date"),
    ("GET", "/user/info", None, {"user_id": "u\u0000"}, "user_id"),
]


@pytest.mark.parametrize("method,path,body,query,field", CASES, ids=[f"{c[1]}:{c[4]}" for c in CASES])
def test_each_reproduced_case_is_a_400_naming_its_field_and_stores_nothing(admin_gateway, method, path, body, query, field):
    before = total_keys(admin_gateway)
    response = admin_gateway.admin(method, path, json=body, params=query)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and error["message"].startswith(f"{field}:"), error
    assert len(error["message"]) < 300
    assert total_keys(admin_gateway) == before


def test_a_huge_duration_on_update_is_a_400_and_the_key_still_shows(admin_gateway):
    key = admin_gateway.create_key()
    response = admin_gateway.admin("POST", "/key/update", json={"key": key, "duration": "9999999999999d"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "duration"
    assert admin_gateway.admin("GET", "/key/info", params={"key": key}).json()["info"]["expires"] is None
    listed = admin_gateway.admin("GET", "/key/list", params={"return_full_object": "true", "size": "1000"})
    assert listed.status_code == 200


def test_durations_in_range_are_stored_so_they_read_back(admin_gateway):
    longest = admin_gateway.admin("POST", "/key/generate", json={"duration": HUNDRED_YEARS, "budget_duration": 86400.5})
    assert longest.status_code == 200, longest.text
    created = longest.json()
    assert created["budget_duration"] == "86400.5s" and created["expires"].startswith(("2126-", "2127-"))
    info = admin_gateway.admin("GET", "/key/info", params={"key": created["key"]}).json()["info"]
    assert info["budget_duration"] == "86400.5s" and info["budget_reset_at"] is not None


def test_null_for_a_field_every_record_has_means_not_given(admin_gateway):
    """Found by the property below: ``{"models": null}`` on /user/new was a 500 (the new user's key copies its models)."""
    user = admin_gateway.admin("POST", "/user/new", json={"models": None, "metadata": None, "spend": None})
    assert user.status_code == 200, user.text
    assert user.json()["models"] == [] and user.json()["metadata"] == {} and user.json()["spend"] == 0
    key = admin_gateway.admin("POST", "/key/generate", json={"models": None, "blocked": None, "model_rpm_limit": None})
    assert key.status_code == 200, key.text
    assert (key.json()["models"], key.json()["blocked"], key.json()["model_rpm_limit"]) == ([], False, {})


# --- the property ------------------------------------------------------------------------------------

LIMIT_FIELDS = ["models", "max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests", "metadata", "spend", "blocked"]
KEY_FIELDS = ["key", "duration", "key_alias", "user_id", "team_id", "model_rpm_limit", "model_tpm_limit", *LIMIT_FIELDS]
USER_FIELDS = ["user_id", "user_alias", "user_email", "teams", "auto_create_key", *LIMIT_FIELDS]
TEAM_FIELDS = ["team_id", "team_alias", "members", "members_with_roles", *LIMIT_FIELDS]
# What each route reads (body fields, query parameters); the generator favours these, and mixes in all the others.
ROUTE_FIELDS: dict[str, tuple[list[str], list[str]]] = {
    "/key/generate": (KEY_FIELDS, []),
    "/key/info": (["key"], ["key"]),
    "/key/update": (KEY_FIELDS, []),
    "/key/delete": (["keys", "key_aliases"], []),
    "/key/list": ([], ["page", "size", "user_id", "team_id", "return_full_object"]),
    "/key/regenerate": (["new_key", *KEY_FIELDS], []),
    "/key/block": (["key"], []),
    "/key/unblock": (["key"], []),
    "/user/new": (USER_FIELDS, []),
    "/user/info": (["user_id"], ["user_id"]),
    "/user/update": (USER_FIELDS, []),
    "/user/delete": (["user_ids"], []),
    "/user/list": ([], ["page", "page_size"]),
    "/team/new": (TEAM_FIELDS, []),
    "/team/info": (["team_id"], ["team_id"]),
    "/team/update": (TEAM_FIELDS, []),
    "/team/delete": (["team_ids"], []),
    "/team/member_add": (["team_id", "member"], []),
    "/team/member_delete": (["team_id", "user_id", "user_email"], []),
    "/team/block": (["team_id"], []),
    "/team/unblock": (["team_id"], []),
    "/spend/logs": ([], ["api_key", "key", "user_id", "team_id", "model", "request_id", "start_date", "end_date", "limit"]),
    "/keystile/test/clock": (["advance"], []),
}
ALL_FIELDS = sorted({f for body, _ in ROUTE_FIELDS.values() for f in body} | {"role", "user_email", "user_id"})
ALL_QUERY = sorted({q for _, query in ROUTE_FIELDS.values() for q in query})
EXISTING_KEY = "sk-fuzz-existing-key-0001"
REFS = [EXISTING_KEY, "fuzz-alias", "fuzz-user", "fuzz-team", "a@example.com", "admin", "user", "30d", "1h", "0s", "-1d", "1e+16", "9" * 40]
EDGE_NUMBERS = [0, 1, -1, 2**53, 10**15, 10**15 + 1, 10**16, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), HUNDRED_YEARS, HUNDRED_YEARS + 1]

texts = st.one_of(
    st.sampled_from(REFS),
    st.text(max_size=40),
    st.text(max_size=10).map(lambda s: s + "\u0000" + s),
    st.sampled_from(["x" * 257, "y" * 5000, "\u00e9" * 300, "sk-ant-api03-" + "a" * 20, " " * 20, "sk-ks-test-master-0123456789abcdef"]),
    st.from_regex(r"\A[0-9]{1,30}(\.[0-9]{1,5})?(ms|s|m|h|d|w|mo)?\Z"),
    st.from_regex(r"\A[0-9]{10,20}(d|w|mo)\Z"),
)
numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from(EDGE_NUMBERS),
    st.sampled_from(EDGE_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e16, 1e300, 5e-324, -0.0, 0.0005, 3.2e9]),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(ALL_FIELDS) | st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
numeric_text = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from([str(n) for n in EDGE_NUMBERS] + ["1e17", "1e400", "nan", "inf", "-inf", "4.5", "0x10"]),
    st.sampled_from(["100000000000000000", "9223372036854775807", "9223372036854775808", "18446744073709551616", "9" * 40]),
    st.integers(min_value=2**56, max_value=10**30).map(str),  # past every page, size and offset bound
)
date_text = st.one_of(
    numeric_text,
    st.sampled_from(["2026-11-01", "2026-13-45", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-11-01T10:00:00Z"]),
)
durations = st.one_of(
    st.from_regex(r"\A[0-9]{1,20}(\.[0-9]{1,5})?(ms|s|m|h|d|w|mo)?\Z"),
    st.sampled_from(["30d", "1h", "0s", "-1d", "9999999999999d", "1e+16", "9" * 400, "forever"]),
    numbers,
)
members = st.fixed_dictionaries(
    {},
    optional={"user_id": texts, "user_email": texts, "role": st.sampled_from(["admin", "user", "owner", ""]) | texts},
)
# Field → a value of the type it expects (usually within range, often at or past an edge).
TYPED: dict[str, st.SearchStrategy[Any]] = {
    **{name: numbers for name in ("max_budget", "soft_budget", "spend", "rpm_limit", "tpm_limit", "max_parallel_requests", "advance")},
    **{name: durations for name in ("duration", "budget_duration")},
    **{name: st.lists(texts, max_size=5) for name in ("models", "keys", "key_aliases", "user_ids", "team_ids", "teams", "members")},
    **{name: st.dictionaries(texts, numbers, max_size=4) for name in ("model_rpm_limit", "model_tpm_limit")},
    "metadata": st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    "members_with_roles": st.lists(members, max_size=4),
    "member": members | st.lists(members, max_size=4),
    "blocked": st.booleans(),
    "auto_create_key": st.booleans(),
}
QUERY_TYPED = {"page": numeric_text, "size": numeric_text, "page_size": numeric_text, "limit": numeric_text,
               "start_date": date_text, "end_date": date_text}


def typed_value(name: str) -> st.SearchStrategy[Any]:
    typed = TYPED.get(name, texts)
    return st.one_of(typed, typed, typed, json_values)  # mostly the right type, sometimes anything


def query_value(name: str) -> st.SearchStrategy[str]:
    typed = QUERY_TYPED.get(name, texts)
    return st.one_of(typed, typed, typed, texts)


def _one_or_two(names: list[str], value: Callable[[str], st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with one or two of ``names`` (so one bad value is not hidden behind another's 400)."""
    return st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({name: value(name) for name in chosen})
    )


def requests_for(path: str, method: str) -> st.SearchStrategy[tuple[str, bytes, dict[str, str]]]:
    """(method, body, query) for one route: mostly its own method and one or two of its own fields, with
    typed values near and past their bounds; sometimes another method, other fields, or junk."""
    body_fields, query_fields = ROUTE_FIELDS.get(path, ([], []))
    objects = _one_or_two(body_fields or ALL_FIELDS, typed_value)
    bodies = st.one_of(
        objects, objects, objects, objects, objects,  # mostly well-formed objects, so the fields are read
        _one_or_two(ALL_FIELDS, typed_value),
        st.just({}),
        json_values,  # not an object, most of the time
    ).map(orjson.dumps) | st.sampled_from([b"", b"{", b"\xff\xfe", b"[" * 2000])
    queries = st.one_of(
        _one_or_two(query_fields, query_value) if query_fields else st.just({}),
        _one_or_two(query_fields, query_value) if query_fields else st.just({}),
        _one_or_two(ALL_QUERY, query_value),
        st.just({}),
    )
    other_method = "GET" if method == "POST" else "POST"
    methods = st.integers(0, 9).map(lambda n: other_method if n == 9 else method)
    return st.tuples(methods, bodies, queries)


def route_method(gw: GatewayProcess, path: str) -> str:
    """The method a route takes, as its own 405 answer says it."""
    answer = httpx.request("PUT", f"{gw.url}{path}", headers={"authorization": f"Bearer {gw.master_key}"})
    assert answer.status_code == 405, (path, answer.text)
    return "POST" if "accepts POST" in answer.json()["error"]["message"] else "GET"


@pytest.mark.parametrize("path", ADMIN_ROUTES)
def test_no_generated_admin_request_gets_a_5xx(admin_gateway, path):
    """A few hundred generated requests per store, spread over every route."""

    client = httpx.Client(
        base_url=admin_gateway.url,
        headers={"authorization": f"Bearer {admin_gateway.master_key}", "content-type": "application/json"},
        timeout=30,
    )

    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True)
    @given(request=requests_for(path, route_method(admin_gateway, path)))
    def property(request: tuple[str, bytes, dict[str, str]]) -> None:
        method, body, query = request
        response = client.request(method, path, content=body if method == "POST" else None, params=query)
        assert response.status_code < 500, (path, method, body[:300], query, response.text[:500])
        if path not in NOT_JSON or response.status_code >= 400:
            response.json()  # always JSON, errors included

    with client:
        property()


def test_after_the_fuzzing_everything_stored_can_be_shown(admin_gateway):
    """Runs after the property (same module, same gateway): nothing stored is beyond what the API can show."""
    gw = admin_gateway
    checks: list[tuple[str, dict[str, Any]]] = [
        ("/key/list", {"return_full_object": "true", "size": "1000"}),
        ("/user/list", {"page_size": "1000"}),
        ("/team/list", {}),
        ("/spend/logs", {}),
    ]
    for path, params in checks:
        response = gw.admin("GET", path, params=params)
        assert response.status_code == 200, (path, response.text[:500])
    for key in gw.admin("GET", "/key/list", params={"size": "1000"}).json()["keys"]:
        assert gw.admin("GET", "/key/info", params={"key": key}).status_code == 200
    for user in gw.admin("GET", "/user/list", params={"page_size": "1000"}).json()["users"]:
        assert gw.admin("GET", "/user/info", params={"user_id": user["user_id"]}).status_code == 200
    for team in gw.admin("GET", "/team/list").json():
        assert gw.admin("GET", "/team/info", params={"team_id": team["team_id"]}).status_code == 200
