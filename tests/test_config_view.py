"""The running configuration as /keystile/config shows it: every secret masked, the rest as is."""

from __future__ import annotations

import orjson

from keystile.config import load_settings
from keystile.config.view import settings_view, url_without_password


def test_secrets_are_masked(tmp_path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(
        "master_key: sk-ks-master-SECRET-0001\n"
        "database_url: postgresql://ks:db-SECRET-pass@db.internal:5432/keystile\n"
        "redis_url: redis://:redis-SECRET@cache:6379/0\n"
        "models:\n"
        "  - name: claude\n"
        "    provider: anthropic\n"
        "    model: claude-sonnet-4-5\n"
        "    api_key: sk-ant-api03-upstream-SECRET-abcd\n"
        "    headers: {x-auth: header-SECRET}\n"
    )
    settings = load_settings(str(path), env={})
    view = settings_view(settings)
    text = orjson.dumps(view).decode()
    assert "SECRET" not in text
    assert view["database_url"] == "postgresql://ks:***@db.internal:5432/keystile"
    assert view["redis_url"] == "redis://:***@cache:6379/0"
    assert view["models"][0]["api_key"] == "sk-ant…abcd" and view["models"][0]["headers"] == {"x-auth": "***"}
    assert view["models"][0]["model"] == "claude-sonnet-4-5" and view["master_key"] == "***"


def test_urls_without_a_password_are_unchanged() -> None:
    assert url_without_password("sqlite:///keystile.db") == "sqlite:///keystile.db"
    assert url_without_password("postgresql://ks@db/keystile") == "postgresql://ks@db/keystile"
    assert url_without_password(None) is None
