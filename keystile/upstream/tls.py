"""The TLS context upstream connections verify certificates with: the system's trusted CAs
plus any CA bundle the operator names (a corporate root, a TLS-inspecting proxy's CA).

Bundles come from the ``upstream.ca_bundle`` setting and the ``SSL_CERT_FILE`` and
``REQUESTS_CA_BUNDLE`` environment variables; each one named is loaded *in addition to* the
system's CAs, so pointing keystile at a bundle holding only the corporate root never breaks
upstreams signed by public CAs. The list is settled when the configuration is read (so
``keystile config check`` reports a bad one); the context is built once per process and
shared by every pool.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Mapping

__all__ = ["CA_BUNDLE_VARIABLES", "ca_bundles", "tls_context"]

CA_BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def ca_bundles(configured: str | None, env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(where it was named, path) of every CA bundle to trust, the configured one first."""
    env = os.environ if env is None else env
    found = [("upstream.ca_bundle", configured)] if configured else []
    for variable in CA_BUNDLE_VARIABLES:
        path = env.get(variable, "").strip()
        if path and all(path != p for _, p in found):
            found.append((variable, path))
    return found


def tls_context(bundles: Iterable[tuple[str, str]] = ()) -> ssl.SSLContext:
    """A client context (hostname checking on) trusting the system's CAs and `bundles`, as
    made by `ca_bundles`; ValueError names a bundle that cannot be loaded."""
    context = ssl.create_default_context()
    for origin, path in bundles:
        try:
            if os.path.isdir(path):
                context.load_verify_locations(capath=path)
            else:
                context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(f"{origin}: cannot load the CA bundle {path}: {reason}") from None
    return context
