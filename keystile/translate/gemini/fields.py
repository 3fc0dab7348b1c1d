"""Reading request bodies the way Google's JSON parser does: camelCase or snake_case names.

Google's REST endpoints parse protobuf JSON, which accepts a field's lowerCamelCase name and
its original snake_case name alike; Google's own curl examples use both
(``system_instruction``, ``inline_data``). Request translators therefore read every field
through ``field``. Responses from Google always use camelCase and are read directly.
"""

from __future__ import annotations

import re

_UPPER = re.compile(r"[A-Z]")
_SNAKE: dict[str, str] = {}


def snake_case(name: str) -> str:
    snake = _SNAKE.get(name)
    if snake is None:
        snake = _SNAKE[name] = _UPPER.sub(lambda m: "_" + m.group(0).lower(), name)
    return snake


def field(obj: dict, name: str) -> object:
    """``obj[name]``, else ``obj[snake_case(name)]``, else None."""
    value = obj.get(name)
    if value is None and name != (snake := snake_case(name)):
        value = obj.get(snake)
    return value
