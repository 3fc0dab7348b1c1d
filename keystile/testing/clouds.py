"""The mock upstream's clouds: AWS Bedrock and Google Vertex AI, emulated so tests need no account.

- Bedrock (``/model/{id}/invoke``, ``/invoke-with-response-stream``): a request must carry a
  Bedrock API key (``Authorization: Bearer``) or a SigV4 signature, which is checked with
  botocore's own signer against the test credentials in ``AWS_TEST_CREDENTIALS`` (an unknown
  key, a wrong signature or a stale date is a 403 as AWS answers it). The body must be Bedrock's
  envelope; betas Bedrock is known to refuse are a 400 ``invalid beta flag``. Streams are AWS
  event-stream frames (``mock_replies.bedrock_frames``).
- Vertex AI (``/v1/projects/{p}/locations/{l}/publishers/{anthropic|google}/models/{m}:…``): a
  request needs a Bearer token that ``TokenIssuer`` gave out and that has not expired (or an
  ``x-goog-api-key``); Claude answers in Messages, Gemini in Gemini's format.
- ``POST /token``: a fake OAuth 2.0 token endpoint for google-auth's service-account flow (point
  a service-account file's ``token_uri`` at it). It checks the JWT assertion's signature with
  the key of ``VERTEX_TEST_SERVICE_ACCOUNT`` when that key is known, and issues tokens that
  live ``lifetime`` seconds, so a short lifetime makes clients refresh.
"""

from __future__ import annotations

import base64
import itertools
import re
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs

import orjson

AWS_TEST_CREDENTIALS: dict[str, tuple[str, str | None]] = {
    "AKIAKEYSTILETEST0001": ("keystile-test-secret-0001", None),
    "ASIAKEYSTILETEMP0002": ("keystile-test-secret-0002", "keystile-test-session-token-0002"),
}
"""Access key id → (secret key, session token) the mock Bedrock accepts signatures from."""
BEDROCK_REFUSED_BETAS = frozenset(
    # refused by Bedrock when tried one by one (router-for-me/CLIProxyAPI#4750, 2026-08-03)
    {"oauth-2025-04-20", "prompt-caching-scope-2026-01-05", "fast-mode-2026-02-01", "redact-thinking-2026-02-12"}
)
BEDROCK_PATH = re.compile(rb"^/model/([^/]+)/(invoke|invoke-with-response-stream)$")
VERTEX_PATH = re.compile(
    rb"^/v1/projects/([^/]+)/locations/([^/]+)/publishers/(anthropic|google)/models/([^/:]+):"
    rb"(rawPredict|streamRawPredict|generateContent|streamGenerateContent|countTokens)$"
)
_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$")
_MAX_SKEW = 15 * 60


def bedrock_auth_error(method: bytes, path: bytes, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, str, str] | None:
    """None if the request is authenticated, else (status, AWS error name, message) as AWS answers."""
    values = dict(headers)
    authorization = values.get(b"authorization", b"").decode("latin-1")
    if authorization.startswith("Bearer "):
        return None if authorization[7:].strip() else (403, "AccessDeniedException", "Invalid API Key format")
    if not authorization:
        return 403, "MissingAuthenticationTokenException", "Missing Authentication Token"
    match = _AUTH.match(authorization)
    if match is None:
        return 403, "IncompleteSignatureException", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'."
    key_id, day, region, service, signed, signature = match.groups()
    known = AWS_TEST_CREDENTIALS.get(key_id)
    if known is None:
        return 403, "UnrecognizedClientException", "The security token included in the request is invalid."
    secret, token = known
    amz_date = values.get(b"x-amz-date", b"").decode("latin-1")
    try:
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return 403, "IncompleteSignatureException", "Missing or malformed X-Amz-Date."
    if abs(when.timestamp() - time.time()) > _MAX_SKEW or not amz_date.startswith(day):
        return 403, "InvalidSignatureException", "Signature expired or not yet current."
    if token is not None and values.get(b"x-amz-security-token", b"").decode("latin-1") != token:
        return 403, "UnrecognizedClientException", "The security token included in the request is invalid."
    names = signed.split(";")
    if "host" not in names or any(name.encode() not in values for name in names):
        return 403, "InvalidSignatureException", "A signed header is missing."
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = "http://" + values[b"host"].decode("latin-1") + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    request = AWSRequest(method=method.decode(), url=url, data=body, headers={n: values[n.encode()].decode("latin-1") for n in names})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(key_id, secret, token), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != signature or service != "bedrock":
        return 403, "InvalidSignatureException", (
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return None


def bedrock_body_error(body: object) -> str | None:
    """What real Bedrock says about a body that is not its Anthropic envelope, else None."""
    if not isinstance(body, dict):
        return "Malformed input request, please reformat your input and try again."
    if not _version_ok(body.get("anthropic_version"), "bedrock-2023-05-31"):
        return "Malformed input request: #: required key [anthropic_version] not found or invalid, please reformat your input and try again."
    for name in ("model", "stream"):
        if name in body:
            return f"Malformed input request: #: extraneous key [{name}] is not permitted, please reformat your input and try again."
    betas = body.get("anthropic_beta", [])
    if not isinstance(betas, list) or any(beta in BEDROCK_REFUSED_BETAS for beta in betas):
        return "invalid beta flag"
    return None


def vertex_body_error(body: dict) -> str | None:
    if not _version_ok(body.get("anthropic_version"), "vertex-2023-10-16"):
        return "anthropic_version: vertex-2023-10-16 is required"
    return None


def _version_ok(value: object, cloud_version: str) -> bool:
    """The cloud's own ``anthropic_version``, or an Anthropic API version date (newer SDKs send one)."""
    return value == cloud_version or (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None)


class TokenIssuer:
    """A fake OAuth 2.0 token endpoint, and the tokens it has handed out."""

    def __init__(self) -> None:
        self.lifetime = 3600.0
        self.public_keys: dict[str, object] = {}
        """Service-account client email → its public key (``cryptography``), to check assertions with."""
        self._tokens: dict[str, float] = {}
        self._ids = itertools.count(1)
        self.issued = 0

    def issue(self, body: bytes) -> tuple[int, dict]:
        form = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or "assertion" not in form:
            return 400, {"error": "unsupported_grant_type", "error_description": "Expected a JWT bearer assertion."}
        claims = self._check_assertion(form["assertion"])
        if claims is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if "cloud-platform" not in str(claims.get("scope", "")):
            return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope."}
        token = f"ya29.mock-{next(self._ids)}"
        self._tokens[token] = time.time() + self.lifetime
        self.issued += 1
        return 200, {"access_token": token, "expires_in": int(self.lifetime) if self.lifetime >= 1 else 1, "token_type": "Bearer"}

    def valid(self, authorization: bytes | None) -> bool:
        if not authorization or not authorization.startswith(b"Bearer "):
            return False
        expires = self._tokens.get(authorization[7:].decode("latin-1").strip())
        return expires is not None and time.time() < expires

    def reset(self) -> None:
        """Counters and the lifetime back to their defaults; tokens already given out stay valid
        (a gateway under test holds one across tests, as a client of Google would)."""
        self.issued = 0
        self.lifetime = 3600.0

    def _check_assertion(self, assertion: str) -> dict | None:
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            claims = orjson.loads(_b64url(claims_b64))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(claims, dict):
            return None
        key = self.public_keys.get(str(claims.get("iss")))
        if key is not None:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding

            try:
                key.verify(_b64url(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[attr-defined]
            except InvalidSignature:
                return None
        return claims


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
