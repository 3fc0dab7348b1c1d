"""The ``upstream:`` config section (native, and under a LiteLLM config's ``keystile:`` key)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from keystile.config import ConfigError, load_settings
from keystile.config.model import UpstreamSettings
from keystile.upstream.proxy import Proxy, ProxyRules


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "keystile.yaml"
    path.write_text(textwrap.dedent(text))
    return load_settings(str(path), env=env or {})


def test_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, "models:\n  - name: m\n    provider: mock\n")
    assert settings.upstream == UpstreamSettings(max_header_bytes=65536, max_body_bytes=67108864, ca_bundle=None)
    assert (settings.upstream.ca_bundles, settings.upstream.proxies) == ((), ProxyRules())


def test_native_and_litellm(tmp_path: Path) -> None:
    bundle = tmp_path / "corp.pem"
    bundle.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    native = load(
        tmp_path,
        f"""\
        models:
          - name: m
            provider: mock
        upstream:
          max_header_bytes: 16384
          max_body_bytes: 8388608
          ca_bundle: {bundle}
        """,
    )
    assert native.upstream == UpstreamSettings(16384, 8388608, str(bundle), (("upstream.ca_bundle", str(bundle)),))
    litellm = load(
        tmp_path,
        f"""\
        model_list:
          - model_name: m
            litellm_params: {{model: openai/gpt-4o, api_key: sk-x}}
        keystile:
          upstream: {{max_body_bytes: 1048576, ca_bundle: {bundle}}}
        """,
        env={"HTTPS_PROXY": "http://proxy.corp:3128", "no_proxy": "localhost", "SSL_CERT_FILE": str(bundle)},
    )
    assert litellm.upstream == UpstreamSettings(
        65536,
        1048576,
        str(bundle),
        (("upstream.ca_bundle", str(bundle)),),  # SSL_CERT_FILE names the same file: loaded once
        ProxyRules(https=Proxy("proxy.corp", 3128), no_proxy=("localhost",)),
    )


def test_problems_are_reported_with_their_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            f"""\
            models:
              - name: m
                provider: mock
            upstream:
              max_header_bytes: 10
              ca_bundle: {junk}
            """,
        )
    text = str(caught.value)
    assert "keystile.yaml:5: upstream.max_header_bytes: must be at least 1024, got 10" in text
    assert f"keystile.yaml:6: upstream.ca_bundle: cannot load the CA bundle {junk}" in text


def test_the_environment_is_checked_when_the_config_is_read(tmp_path: Path) -> None:
    """`keystile config check` and `serve` report an unusable proxy URL or CA bundle of the
    environment before anything starts, without showing the URL (it may hold a password)."""
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            "models:\n  - name: m\n    provider: mock\n",
            env={"https_proxy": "socks5://bob:hunter2@proxy:1080", "REQUESTS_CA_BUNDLE": str(tmp_path / "gone.pem")},
        )
    problems = caught.value.problems
    assert f"environment: REQUESTS_CA_BUNDLE: cannot load the CA bundle {tmp_path / 'gone.pem'}: No such file or directory" in problems
    assert any(p.startswith("environment: https_proxy names a socks5:// proxy") for p in problems)
    assert "hunter2" not in str(caught.value)


def test_a_litellm_configs_environment_variables_may_name_the_proxy(tmp_path: Path) -> None:
    """LiteLLM puts ``environment_variables`` into its environment unless already set there."""
    text = """\
        model_list:
          - model_name: m
            litellm_params: {model: openai/gpt-4o, api_key: sk-x}
        environment_variables:
          HTTPS_PROXY: http://proxy.corp:3128
          NO_PROXY: internal.corp
        """
    assert load(tmp_path, text).upstream.proxies == ProxyRules(https=Proxy("proxy.corp", 3128), no_proxy=("internal.corp",))
    real = load(tmp_path, text, env={"HTTPS_PROXY": "http://other:8080"}).upstream.proxies
    assert real.https == Proxy("other", 8080)
