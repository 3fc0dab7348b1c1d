"""Typed accessors for client request bodies that fail as a 400, never as a KeyError.

Request translators read untrusted JSON; every shape check goes through these helpers so
a wrong type anywhere becomes ``GatewayError(INVALID_REQUEST)`` naming the field.
"""

from __future__ import annotations

from keystile.errors import ErrorKind, GatewayError


def invalid(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(ErrorKind.INVALID_REQUEST, message, param=param)


def expect_dict(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise invalid(f"{field}: expected an object, got {json_type_name(value)}", field)
    return value


def expect_list(value: object, field: str) -> list:
    if not isinstance(value, list):
        raise invalid(f"{field}: expected an array, got {json_type_name(value)}", field)
    return value


def expect_str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{field}: expected a string, got {json_type_name(value)}", field)
    return value


def optional_str(value: object, field: str) -> str | None:
    return None if value is None else expect_str(value, field)


def optional_number(value: object, field: str) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{field}: expected a number, got {json_type_name(value)}", field)
    return value


def optional_positive_int(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid(f"{field}: expected a positive integer, got {value!r}"[:200], field)
    return value


def optional_bool(value: object, field: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(f"{field}: expected true or false, got {json_type_name(value)}", field)
    return value


def json_type_name(value: object) -> str:
    """How an error message names a JSON value's type ("a string", "an array", …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
