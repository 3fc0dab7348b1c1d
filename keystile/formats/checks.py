"""Field checks shared by the formats' request readers, and the one cap on quoting client input.

Messages name the field and say what was expected; a client's own text is quoted at most
``QUOTE_LIMIT`` characters, so a 5 MB model name never comes back in an error body.
"""

from __future__ import annotations

from keystile.errors import ErrorKind, GatewayError
from keystile.translate.invalid_request import json_type_name

QUOTE_LIMIT = 200


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of client text, cut to ``limit`` characters with the total length said."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


def invalid(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(ErrorKind.INVALID_REQUEST, message, param=param)


def require_list(body: dict, name: str) -> list:
    value = body.get(name)
    if not isinstance(value, list):
        what = "field required" if value is None else f"expected a list, got {json_type_name(value)}"
        raise invalid(f"{name}: {what}.", name)
    return value


def require_positive_int(body: dict, name: str, *, allow_zero: bool = False) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        what = "field required" if value is None else f"expected an integer, got {json_type_name(value)}"
        raise invalid(f"{name}: {what}.", name)
    if value < (0 if allow_zero else 1):
        raise invalid(f"{name}: expected {'a non-negative' if allow_zero else 'a positive'} integer, got {value}.", name)
    return value


def optional_bool(body: dict, name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(f"{name}: expected a boolean, got {json_type_name(value)}.", name)
    return value


def model_name(value: object, where: str = "model") -> str:
    if value is None:
        raise invalid(f"{where}: field required.", "model")
    if not isinstance(value, str) or not value:
        raise invalid(f"{where}: expected a non-empty string, got {json_type_name(value)}.", "model")
    return value


def looks_like_json_object(data: bytes) -> bool:
    """A stream event's data is one JSON object (cheap: its first and last bytes)."""
    return data[:1] == b"{" and data.rstrip()[-1:] == b"}"
