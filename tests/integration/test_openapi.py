"""/openapi.json describes exactly the routes keystile answers, and generated requests find no 5xx.

The route check goes both ways: every path keystile's own tables serve is in the document
(pattern routes by their templated form), and every path in the document, filled with sample
values, is answered by something other than "No route". The schema-driven check reads the
document with schemathesis and sends its generated requests (valid and invalid ones) to every
admin route, on SQLite and on PostgreSQL; any 5xx fails it.
"""

from __future__ import annotations

import time
from typing import Iterator

import httpx
import pytest

from keystile.config import load_settings
from keystile.server import catalog, routes
from keystile.server.app import KeystileApp
from tests.integration.harness import MASTER_KEY, GatewayProcess, standard_config
from tests.services import create_database, drop_database

TEST_ONLY = {"/keystile/test/clock"}  # answers only with KEYSTILE_TEST_CLOCK=1; not part of the API
SAMPLE = {"deployment": "gpt-test", "model": "claude-test", "key": "0" * 64, "file": "app.js"}
INFERENCE_TAGS = {"inference", "models"}


@pytest.fixture(scope="module")
def gw(upstream) -> Iterator[GatewayProcess]:
    with GatewayProcess(standard_config(upstream.url)) as gateway:
        yield gateway


def document(gw: GatewayProcess) -> dict:
    response = httpx.get(f"{gw.url}/openapi.json", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    return response.json()


def served_paths() -> set[str]:
    """What keystile's own route tables answer, named as an OpenAPI document names paths."""
    app = KeystileApp(load_settings(None))
    paths = set(app.admin_routes) - TEST_ONLY
    paths = {"/ui/static/{file}" if p.startswith("/ui/static/") else p for p in paths}
    paths |= set(routes.FIXED) | set(routes.TEMPLATED) | {"/"}
    paths |= set(catalog.LIST_PATHS) | {p + "/{model}" for p in catalog.LIST_PATHS}
    return paths


def test_document_is_openapi_3_1_and_covers_every_route_both_ways(gw: GatewayProcess) -> None:
    doc = document(gw)
    assert doc["openapi"] == "3.1.0"
    documented = set(doc["paths"])
    assert served_paths() - documented == set(), "served but not documented"
    assert documented - served_paths() == set(), "documented but not served"
    for path in routes.TEMPLATED:  # the templated forms really are what the pattern routes match
        assert routes.match_endpoint(path.format(**SAMPLE)) is not None, path
    # …and the running server answers each documented operation (with no key: 401, never "No route")
    for path, item in doc["paths"].items():
        for method in item:
            url = gw.url + path.format(**SAMPLE)
            answer = httpx.request(method.upper(), url, timeout=10)
            body = answer.text
            assert not (answer.status_code == 404 and "No route" in body), f"{method.upper()} {path}: {answer.status_code} {body[:200]}"
            assert answer.status_code < 500, f"{method.upper()} {path}: {answer.status_code} {body[:200]}"
    assert httpx.get(f"{gw.url}/no/such/route", timeout=10).status_code == 404


def test_every_operation_documents_its_fields(gw: GatewayProcess) -> None:
    doc = document(gw)
    schemas = doc["components"]["schemas"]
    from keystile.server.admin import _KEY_READERS, _TEAM_READERS, _USER_READERS

    assert set(_KEY_READERS) <= set(schemas["KeyRequest"]["properties"])
    assert set(_USER_READERS) <= set(schemas["UserRequest"]["properties"])
    assert set(_TEAM_READERS) <= set(schemas["TeamRequest"]["properties"])
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["summary"] and op["responses"]["200"], (method, path)
            if method == "post" and not path.startswith("/ui/logout"):
                assert "requestBody" in op, (method, path)


def _gateway_on(database: str, upstream, services) -> Iterator[GatewayProcess]:
    env = {}
    created = None
    if database == "postgresql":
        created = create_database(services.postgres, "ks_openapi")
        env["KEYSTILE_DATABASE_URL"] = created
    gateway = GatewayProcess(standard_config(upstream.url), env=env).start()
    try:
        yield gateway
    finally:
        gateway.stop()
        if created is not None:
            drop_database(services.postgres, created)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def fresh_gw(request, upstream) -> Iterator[GatewayProcess]:
    services = request.getfixturevalue("services") if request.param == "postgresql" else None
    yield from _gateway_on(request.param, upstream, services)


@pytest.mark.timeout(180)
def test_generated_requests_to_every_admin_route_find_no_server_error(fresh_gw: GatewayProcess) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{fresh_gw.url}/openapi.json")
    fresh_gw.create_key(key_alias="seed-key")  # something to find, update and delete
    failures: list[str] = []
    operations = 0
    sent = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        tags = set(operation.definition.raw.get("tags", []))
        if tags & INFERENCE_TAGS:
            continue
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=6, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case) -> None:
                nonlocal sent
                sent += 1
                response = case.call(headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=15)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} {mode.value}: {response.status_code} {response.text[:300]}")

            try:
                send()
            except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
                assert mode is GenerationMode.NEGATIVE, operation.label
    elapsed = time.monotonic() - started
    print(f"schema-driven: {operations} admin operations, {sent} requests in {elapsed:.1f}s")
    assert operations >= 45, operations
    errors = [line for line in fresh_gw.log().splitlines() if "Error" in line and not line.startswith("{")]
    assert not failures, "\n".join([*dict.fromkeys(failures), "--- the gateway logged:", *dict.fromkeys(errors)][:60])
    assert elapsed < 120, f"the schema-driven run took {elapsed:.0f}s"
    assert "Traceback" not in fresh_gw.log()
