"""The admin UI at /ui, driven in a real browser (Debian's chromium, through Playwright).

One gateway with the mock upstream; a person signs in with the master key, creates a key,
the test uses that key with the official Anthropic SDK, and the person sees its spend and its
spend-log row, blocks it (the next SDK request is refused), and signs out (the session is gone
on the server too). Beside it, the session's security over plain HTTP: cookie flags, CSRF,
a wrong master key, expiry. Screenshots of every page go to test-artefacts/ui/ for review.

Expected figures come from outside keystile: the cost from Anthropic's public prices
(claude-sonnet-4-5: $3 / $15 per million input / output tokens) times the usage the SDK
parsed from the answer.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import anthropic
import httpx
import pytest

from tests.integration.harness import MASTER_KEY, GatewayProcess, anthropic_body, standard_config

CHROMIUM = "/usr/bin/chromium"
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "ui"
BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SONNET_INPUT, SONNET_OUTPUT = 3.0 / 1e6, 15.0 / 1e6  # USD per token, Anthropic's price list


def _need_browser() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") or os.environ.get("KEYSTILE_SKIP_BROWSER") != "1":
            pytest.fail(f"{CHROMIUM} is missing: `bash tests/services.sh browser` installs it (make test does)")
        pytest.skip("KEYSTILE_SKIP_BROWSER=1: the browser tests are skipped")


@pytest.fixture(scope="module")
def gw(upstream) -> Iterator[GatewayProcess]:
    with GatewayProcess(standard_config(upstream.url), env={"KEYSTILE_TEST_CLOCK": "1"}) as gateway:
        yield gateway


@pytest.fixture()
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="keystile-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True, viewport={"width": 1366, "height": 860}
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def shot(page, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def sign_in(page, url: str, key: str = MASTER_KEY) -> None:
    page.goto(f"{url}/ui")
    page.get_by_label("Master key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def money(value: float) -> str:
    """How the UI writes a small amount: 4 to 6 decimals (toLocaleString's minimum/maximumFractionDigits)."""
    text = f"{value:.6f}".rstrip("0")
    whole, frac = text.split(".")
    return f"${whole}.{frac.ljust(4, '0')}"


@pytest.mark.timeout(300)
def test_a_person_manages_a_key_end_to_end_in_the_browser(gw: GatewayProcess, browser) -> None:
    page = browser.new_page()
    console_errors: list[str] = []
    # (401s are expected: the page asks for its session before signing in, and the wrong key above)
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" and "status of 401" not in m.text else None)

    # A wrong master key is refused, and the page says so.
    page.goto(f"{gw.url}/ui")
    shot(page, "00-sign-in")
    sign_in(page, gw.url, "sk-ks-not-the-master-key-000000")
    assert "not the master key" in page.get_by_role("alert").inner_text()

    sign_in(page, gw.url)
    page.get_by_role("heading", name="Overview").wait_for()
    cookie = next(c for c in browser.cookies() if c["name"] == "keystile_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["secure"] is False
    assert page.evaluate("document.cookie") == ""  # the page's scripts cannot read the session

    # Create a key; the raw key is shown once, with ready-made snippets.
    page.get_by_role("link", name="Keys").click()
    page.get_by_role("heading", name="Keys").wait_for()
    page.get_by_role("button", name="Create key").click()
    page.get_by_label("Alias").fill("ui-e2e-alice")
    page.get_by_label("Requests per minute").fill("100")
    page.get_by_label("Budget (USD)").fill("5")
    page.get_by_role("button", name="Create", exact=True).click()
    raw_key = page.locator("#new-key-value").inner_text()
    assert raw_key.startswith("sk-")
    snippet = page.locator("#snippet").inner_text()
    assert f"ANTHROPIC_BASE_URL={gw.url}" in snippet and raw_key in snippet
    page.get_by_role("tab", name="Codex").click()
    assert f'base_url = "{gw.url}/v1"' in page.locator("#snippet").inner_text()
    shot(page, "02-keys-created")
    page.get_by_role("button", name="Close").first.click()
    # Gone from the page once the dialog is closed, and never stored in the browser.
    row = page.locator("tr", has_text="ui-e2e-alice")
    row.wait_for()
    assert raw_key not in page.content()
    storage = page.evaluate("JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), location.href])")
    assert raw_key not in storage and MASTER_KEY not in storage

    # Use it, from the test, with the official SDK.
    with anthropic.Anthropic(base_url=gw.url, api_key=raw_key, max_retries=0) as client:
        raw = client.messages.with_raw_response.create(**anthropic_body(model="claude-test"), extra_headers={"x-keystile-tags": "ui-test"})
        message = raw.parse()
    request_id = raw.headers["x-keystile-request-id"]
    cost = message.usage.input_tokens * SONNET_INPUT + message.usage.output_tokens * SONNET_OUTPUT
    assert cost > 0

    # Its spend, in the Keys list…
    page.reload()
    row = page.locator("tr", has_text="ui-e2e-alice")
    row.wait_for()
    assert f"{money(cost)} / $5.00" in row.inner_text()
    shot(page, "02-keys")

    # …and its row in the spend log, with the request's detail.
    page.get_by_role("link", name="Spend logs").click()
    log_row = page.locator(f'tr[data-request-id="{request_id}"]')
    log_row.wait_for()
    text = log_row.inner_text()
    assert "ui-e2e-alice" in text and "claude-test" in text and "200" in text and money(cost) in text and "ui-test" in text
    shot(page, "05-spend-logs")
    log_row.click()
    detail = page.get_by_role("dialog")
    assert request_id in detail.inner_text() and "anthropic_messages" in detail.inner_text()
    shot(page, "05-spend-log-detail")
    page.keyboard.press("Escape")

    # More traffic, from a team's key, and a refusal: the overview shows it in its charts and top lists.
    gw.admin("POST", "/user/new", json={"user_id": "ui-user", "user_alias": "Alice", "max_budget": 20, "auto_create_key": False})
    gw.admin("POST", "/team/new", json={"team_id": "ui-team", "team_alias": "Platform", "members": ["ui-user"], "max_budget": 100})
    team_key = gw.create_key(key_alias="platform-ci", team_id="ui-team", user_id="ui-user")
    with anthropic.Anthropic(base_url=gw.url, api_key=team_key, max_retries=0) as client:
        for text in ("one", "two three", "four five six"):
            client.messages.create(**anthropic_body(model="claude-test", text=text * 40))
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(**anthropic_body(model="no-such-model"))
    page.get_by_role("link", name="Overview").click()
    page.get_by_role("heading", name="Top keys").wait_for()
    top_keys = page.locator("section", has=page.get_by_role("heading", name="Top keys")).inner_text()
    assert "ui-e2e-alice" in top_keys and "platform-ci" in top_keys
    assert "Platform" not in top_keys and "ui-team" in page.locator("section", has=page.get_by_role("heading", name="Top teams")).inner_text()
    errors_panel = page.locator(".stat", has_text="Errors").inner_text()
    assert "1\n" in errors_panel or errors_panel.split("\n")[1].strip() == "1", errors_panel
    shot(page, "01-overview")

    # Users, teams (with their keys and spend), deployments and config render.
    page.get_by_role("link", name="Users").click()
    page.get_by_text("ui-user").wait_for()
    shot(page, "03-users")
    page.get_by_role("link", name="Teams").click()
    page.get_by_role("link", name="Platform").click()
    page.get_by_role("heading", name="Keys and their spend").wait_for()
    assert "platform-ci" in page.content()
    shot(page, "04-team")
    page.get_by_role("link", name="Deployments").click()
    page.get_by_role("heading", name="Deployments").wait_for()
    assert "claude-test#0" in page.content()
    shot(page, "06-deployments")
    page.get_by_role("link", name="Config").click()
    page.get_by_role("heading", name="Configuration").wait_for()
    config_text = page.content()
    assert "sk-upstream-anthropic-SECRET" not in config_text and MASTER_KEY not in config_text
    shot(page, "07-config")

    # Block the key in the UI: the next SDK request is refused.
    page.get_by_role("link", name="Keys").click()
    row = page.locator("tr", has_text="ui-e2e-alice")
    row.get_by_role("button", name="Block").click()
    page.get_by_role("dialog").get_by_role("button", name="Block").click()
    page.locator("tr", has_text="ui-e2e-alice").get_by_text("blocked").wait_for()
    with anthropic.Anthropic(base_url=gw.url, api_key=raw_key, max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            client.messages.create(**anthropic_body(model="claude-test"))
    assert "blocked" in str(refused.value)

    # Sign out: back to the sign-in form, and the session is gone on the server as well.
    session_value = next(c for c in browser.cookies() if c["name"] == "keystile_session")["value"]
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Master key").wait_for()
    assert not [c for c in browser.cookies() if c["name"] == "keystile_session"]
    stale = httpx.get(f"{gw.url}/key/list", cookies={"keystile_session": session_value}, timeout=10)
    assert stale.status_code == 401

    assert not console_errors, console_errors
    log = gw.log()
    assert raw_key not in log and MASTER_KEY not in log


@pytest.mark.timeout(120)
def test_docs_page_renders_the_openapi_document(gw: GatewayProcess, browser) -> None:
    page = browser.new_page()
    page.goto(f"{gw.url}/docs")
    page.get_by_role("heading", name="keystile API reference").wait_for()
    page.locator("summary", has_text="/key/generate").first.click()
    assert "key_alias" in page.content()
    shot(page, "08-docs")


# --- the session's security, over plain HTTP ---------------------------------------------------------


def login(gw: GatewayProcess, **headers: str) -> httpx.Response:
    return httpx.post(f"{gw.url}/ui/login", json={"key": MASTER_KEY}, headers=headers, timeout=10)


def test_session_cookie_flags(gw: GatewayProcess) -> None:
    plain = login(gw).headers["set-cookie"]
    assert re.match(r"^keystile_session=[A-Za-z0-9_-]{40,};", plain)
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in plain.split(";")}
    assert "Secure" not in plain  # http: a Secure cookie would never come back
    behind_tls = login(gw, **{"x-forwarded-proto": "https"}).headers["set-cookie"]
    assert "Secure" in {p.strip() for p in behind_tls.split(";")}
    assert MASTER_KEY not in plain


def test_every_change_needs_the_csrf_token(gw: GatewayProcess) -> None:
    answer = login(gw)
    cookies = {"keystile_session": answer.cookies["keystile_session"]}
    csrf = answer.json()["csrf_token"]
    url = f"{gw.url}/key/generate"
    with httpx.Client(cookies=cookies, timeout=10) as client:
        assert client.get(f"{gw.url}/key/list").status_code == 200  # reading needs no token
        missing = client.post(url, json={"key_alias": "csrf-none"})
        assert missing.status_code == 403 and "CSRF" in missing.json()["error"]["message"]
        assert client.post(url, json={}, headers={"x-keystile-csrf": "wrong"}).status_code == 403
        other_site = client.post(url, json={}, headers={"x-keystile-csrf": csrf, "origin": "https://evil.example"})
        assert other_site.status_code == 403
        assert client.post(f"{gw.url}/ui/logout").status_code == 403  # signing out is a change too
        ok = client.post(url, json={"key_alias": "csrf-ok"}, headers={"x-keystile-csrf": csrf, "origin": gw.url})
        assert ok.status_code == 200
        assert gw.admin("GET", "/key/list", params={"key_alias": "csrf-none"}).json()["total_count"] == 0
        # A request with a gateway key is decided by that key: the cookie lends it nothing.
        virtual = ok.json()["key"]
        assert client.post(url, json={}, headers={"authorization": f"Bearer {virtual}", "x-keystile-csrf": csrf}).status_code == 403


def test_ui_page_is_served_with_a_strict_content_security_policy(gw: GatewayProcess) -> None:
    page = httpx.get(f"{gw.url}/ui", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "http" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert '<script src="/ui/static/app.js"' in page.text and "http" not in page.text  # nothing from elsewhere
    script = httpx.get(f"{gw.url}/ui/static/app.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "localStorage" not in script.text and "innerHTML" not in script.text


def test_sessions_expire_when_idle(gw: GatewayProcess) -> None:
    answer = login(gw)
    cookies = {"keystile_session": answer.cookies["keystile_session"]}
    assert httpx.get(f"{gw.url}/ui/session", cookies=cookies, timeout=10).status_code == 200
    gw.admin("POST", "/keystile/test/clock", json={"advance": 31 * 60})
    assert httpx.get(f"{gw.url}/ui/session", cookies=cookies, timeout=10).status_code == 401
    assert httpx.get(f"{gw.url}/key/list", cookies=cookies, timeout=10).status_code == 401


def test_sessions_end_12_hours_after_sign_in_however_busy(gw: GatewayProcess) -> None:
    answer = login(gw)
    cookies = {"keystile_session": answer.cookies["keystile_session"]}
    statuses = []
    for _ in range(25):  # used every 29 minutes: never idle for 30, but 25 × 29 min > 12 h
        gw.admin("POST", "/keystile/test/clock", json={"advance": 29 * 60})
        statuses.append(httpx.get(f"{gw.url}/key/list", cookies=cookies, timeout=10).status_code)
    assert statuses[:24] == [200] * 24 and statuses[24] == 401, statuses


def test_a_wrong_master_key_is_refused_and_guessing_is_throttled(gw: GatewayProcess) -> None:
    # last in this module: once throttled, this address cannot sign in for a minute
    with httpx.Client(timeout=10) as client:
        assert client.post(f"{gw.url}/ui/login", json={"nope": 1}).status_code == 400
        answers = [client.post(f"{gw.url}/ui/login", json={"key": "sk-ks-guess-0000000000000000"}) for _ in range(11)]
    # ten failures a minute per address (the browser test above may have used one), then 429
    statuses = [a.status_code for a in answers]
    assert statuses[0] == 401 and statuses[-1] == 429 and set(statuses) == {401, 429}, statuses
    assert statuses.index(429) >= 9 and all(s == 429 for s in statuses[statuses.index(429):])
    assert all("set-cookie" not in a.headers for a in answers)
    assert "That is not the master key" in answers[0].json()["error"]["message"]
    assert "sk-ks-guess" not in gw.log()
