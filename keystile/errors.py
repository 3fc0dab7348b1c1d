"""Gateway errors as values, and the one table that maps them to HTTP and both API formats.

Every refusal keystile makes is a ``GatewayError`` carrying an ``ErrorKind``. The kind
decides the HTTP status and how the body looks to each client:

    ErrorKind              status  Anthropic error.type     OpenAI error.type       OpenAI code
    ---------------------  ------  -----------------------  ----------------------  ---------------------
    INVALID_REQUEST           400  invalid_request_error    invalid_request_error   (none)
    BUDGET_EXCEEDED           400  invalid_request_error    budget_exceeded         budget_exceeded
    AUTHENTICATION            401  authentication_error     invalid_request_error   invalid_api_key
    PERMISSION                403  permission_error         permission_error        permission_denied
    NOT_FOUND                 404  not_found_error          invalid_request_error   not_found
    MODEL_NOT_FOUND           404  not_found_error          invalid_request_error   model_not_found
    METHOD_NOT_ALLOWED        405  invalid_request_error    invalid_request_error   method_not_allowed
    REQUEST_TIMEOUT           408  timeout_error            invalid_request_error   request_timeout
    REQUEST_TOO_LARGE         413  request_too_large        invalid_request_error   request_too_large
    UNSUPPORTED_MEDIA         415  invalid_request_error    invalid_request_error   unsupported_media_type
    UPGRADE_REQUIRED          426  invalid_request_error    invalid_request_error   upgrade_required
    HEADERS_TOO_LARGE         431  invalid_request_error    invalid_request_error   headers_too_large
    RATE_LIMITED              429  rate_limit_error         rate_limit_error        rate_limit_exceeded
    INTERNAL                  500  api_error                server_error            internal_error
    UPSTREAM_ERROR            502  api_error                server_error            upstream_error
    UNAVAILABLE               503  api_error                server_error            service_unavailable
    UPSTREAM_TIMEOUT          504  timeout_error            timeout_error           upstream_timeout
    OVERLOADED                529  overloaded_error         server_error            overloaded

OpenAI Responses clients get OpenAI's shape. Gemini clients get Google's
``{"error":{"code":<status>,"message","status":<canonical name>}}``, the name picked by status
(``GOOGLE_STATUS``). Vertex rawPredict clients get Anthropic's shape (what Vertex relays from
Claude). Bedrock clients get AWS's ``{"message": …}`` with the error's name in the
``x-amzn-ErrorType`` header (``BEDROCK_ERROR_TYPE``, by status).

Budget refusals are 400 on purpose: retrying cannot help, so no SDK should retry them (they
retry 429 and 5xx), Anthropic itself answers an exhausted credit balance with 400
``invalid_request_error``, and LiteLLM scripts already match ``budget_exceeded``.
"""

from __future__ import annotations

import enum
from typing import Iterable

import orjson

from keystile.apiformat import ApiFormat


class ErrorKind(enum.Enum):
    """One row of the table above: (status, anthropic type, openai type, openai code)."""

    INVALID_REQUEST = (400, "invalid_request_error", "invalid_request_error", None)
    BUDGET_EXCEEDED = (400, "invalid_request_error", "budget_exceeded", "budget_exceeded")
    AUTHENTICATION = (401, "authentication_error", "invalid_request_error", "invalid_api_key")
    PERMISSION = (403, "permission_error", "permission_error", "permission_denied")
    NOT_FOUND = (404, "not_found_error", "invalid_request_error", "not_found")
    MODEL_NOT_FOUND = (404, "not_found_error", "invalid_request_error", "model_not_found")
    METHOD_NOT_ALLOWED = (405, "invalid_request_error", "invalid_request_error", "method_not_allowed")
    REQUEST_TIMEOUT = (408, "timeout_error", "invalid_request_error", "request_timeout")
    REQUEST_TOO_LARGE = (413, "request_too_large", "invalid_request_error", "request_too_large")
    UNSUPPORTED_MEDIA = (415, "invalid_request_error", "invalid_request_error", "unsupported_media_type")
    UPGRADE_REQUIRED = (426, "invalid_request_error", "invalid_request_error", "upgrade_required")
    HEADERS_TOO_LARGE = (431, "invalid_request_error", "invalid_request_error", "headers_too_large")
    RATE_LIMITED = (429, "rate_limit_error", "rate_limit_error", "rate_limit_exceeded")
    INTERNAL = (500, "api_error", "server_error", "internal_error")
    UPSTREAM_ERROR = (502, "api_error", "server_error", "upstream_error")
    UNAVAILABLE = (503, "api_error", "server_error", "service_unavailable")
    UPSTREAM_TIMEOUT = (504, "timeout_error", "timeout_error", "upstream_timeout")
    OVERLOADED = (529, "overloaded_error", "server_error", "overloaded")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def anthropic_type(self) -> str:
        return self.value[1]

    @property
    def openai_type(self) -> str:
        return self.value[2]

    @property
    def openai_code(self) -> str | None:
        return self.value[3]


_KIND_FOR_STATUS = {
    400: ErrorKind.INVALID_REQUEST,
    401: ErrorKind.AUTHENTICATION,
    403: ErrorKind.PERMISSION,
    404: ErrorKind.NOT_FOUND,
    413: ErrorKind.REQUEST_TOO_LARGE,
    429: ErrorKind.RATE_LIMITED,
    500: ErrorKind.INTERNAL,
    502: ErrorKind.UPSTREAM_ERROR,
    503: ErrorKind.UNAVAILABLE,
    504: ErrorKind.UPSTREAM_TIMEOUT,
    529: ErrorKind.OVERLOADED,
}


def kind_for_status(status: int) -> ErrorKind:
    """The closest kind for an arbitrary HTTP status (used when translating upstream errors)."""
    kind = _KIND_FOR_STATUS.get(status)
    if kind is not None:
        return kind
    return ErrorKind.INVALID_REQUEST if 400 <= status < 500 else ErrorKind.UPSTREAM_ERROR


class GatewayError(Exception):
    """A refusal or failure that becomes an error response in the client's API format.

    ``status`` defaults to the kind's status but may be overridden, so a translated upstream
    error keeps the upstream's status code. ``headers`` are extra response headers
    (``retry-after``, rate-limit headers).
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        param: str | None = None,
        status: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param
        self.status = status or kind.status
        self.headers = list(headers)
        self.code = code

    def body(self, fmt: ApiFormat) -> dict:
        """The error object in ``fmt``'s wire shape."""
        return error_body(fmt, self.kind, self.message, param=self.param, code=self.code, status=self.status)

    def render(self, fmt: ApiFormat) -> bytes:
        return orjson.dumps(self.body(fmt))

    def __repr__(self) -> str:
        return f"GatewayError({self.kind.name}, {self.status}, {self.message!r})"


# Google's canonical error status for each HTTP status (google.rpc.Code), as Gemini answers.
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    431: "INVALID_ARGUMENT",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    529: "UNAVAILABLE",
}


def google_status(status: int) -> str:
    """The canonical status name Google's APIs pair with an HTTP status."""
    name = GOOGLE_STATUS.get(status)
    if name is not None:
        return name
    if 400 <= status < 500:
        return "FAILED_PRECONDITION"
    return "INTERNAL" if status >= 500 else "UNKNOWN"


# The AWS error name Bedrock pairs with each HTTP status (InvokeModel's documented errors).
BEDROCK_ERROR_TYPE = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    413: "ValidationException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
    504: "ModelTimeoutException",
    529: "ServiceUnavailableException",
}


def bedrock_error_type(status: int) -> str:
    name = BEDROCK_ERROR_TYPE.get(status)
    if name is not None:
        return name
    return "ValidationException" if 400 <= status < 500 else "InternalServerException"


def error_headers(fmt: ApiFormat, status: int, upstream: list[tuple[bytes, bytes]] | None = None) -> list[tuple[bytes, bytes]]:
    """Headers an error response carries in ``fmt`` besides its body: Bedrock's ``x-amzn-ErrorType``
    (the upstream's own when it is a Bedrock answer relayed as is, ``upstream``)."""
    if fmt is not ApiFormat.BEDROCK:
        return []
    for name, value in upstream or ():
        if name == b"x-amzn-errortype":
            return [(name, value)]
    return [(b"x-amzn-errortype", bedrock_error_type(status).encode())]


def error_body(
    fmt: ApiFormat,
    kind: ErrorKind,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    status: int | None = None,
) -> dict:
    """Anthropic (and Vertex): ``{"type":"error","error":{type,message}}``; OpenAI (Chat and
    Responses): ``{"error":{message,type,param,code}}``; Gemini: ``{"error":{code,message,status}}``;
    Bedrock: ``{"message"}``."""
    if fmt is ApiFormat.ANTHROPIC or fmt is ApiFormat.VERTEX:
        return {"type": "error", "error": {"type": kind.anthropic_type, "message": message}}
    if fmt is ApiFormat.BEDROCK:
        return {"message": message}
    if fmt is ApiFormat.GEMINI:
        http = status or kind.status
        return {"error": {"code": http, "message": message, "status": google_status(http)}}
    return {
        "error": {
            "message": message,
            "type": kind.openai_type,
            "param": param,
            "code": code or kind.openai_code,
        }
    }
