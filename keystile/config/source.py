"""Reading a YAML config so that every mistake can be reported as ``file:line: path: what``.

The YAML is composed into nodes (which know their line), turned into plain values, and
each value's line is remembered by its path. ``Fields`` then reads typed values out of a
mapping and collects every problem instead of stopping at the first.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from keystile.durations import parse_duration

Path = tuple[str | int, ...]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_LITELLM_ENV = "os.environ/"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every ``file:line: path: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


@dataclass
class Source:
    """A parsed file: its data, the line of every path, and the problems found so far."""

    filename: str
    data: Any
    lines: dict[Path, int]
    env: Mapping[str, str]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def where(self, path: Path) -> str:
        line = self.line(path)
        location = f"{self.filename}:{line}" if line else self.filename
        return f"{location}: {format_path(path)}"

    def line(self, path: Path) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(f"{self.where(path)}: {message}")

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(f"{self.where(path)}: {message}")

    def expand(self, value: str, path: Path) -> str | None:
        """Resolve ``${VAR}``, ``${VAR:-default}`` and LiteLLM's whole-value ``os.environ/VAR``."""
        if value.startswith(_LITELLM_ENV):
            name = value[len(_LITELLM_ENV):]
            if name not in self.env:
                self.problem(path, f"environment variable {name} is not set (referenced as {value})")
                return None
            return self.env[name]

        missing: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        result = _ENV_REF.sub(substitute, value) if "${" in value else value
        for name in missing:
            self.problem(path, f"environment variable {name} is not set (use ${{{name}:-default}} to make it optional)")
        return None if missing else result


def parse_yaml(text: str, filename: str, env: Mapping[str, str] | None = None) -> Source:
    """Parse ``text``; YAML syntax errors become a ``ConfigError`` with the line they were found on."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    lines: dict[Path, int] = {}
    data = _to_python(root, (), lines) if root is not None else {}
    return Source(filename, data, lines, os.environ if env is None else env)


def _to_python(node: yaml.Node, path: Path, lines: dict[Path, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            out[str(key)] = _to_python(value_node, path + (str(key),), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, path + (i,), lines) for i, item in enumerate(node.value)]
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


class Fields:
    """Typed reads from one mapping of a ``Source``; a wrong type is recorded, not raised."""

    def __init__(self, source: Source, value: Any, path: Path) -> None:
        self.source = source
        self.path = path
        if value is None:
            value = {}
        if not isinstance(value, dict):
            source.problem(path, f"expected a mapping, got {type_name(value)}")
            value = {}
        self.data: dict[str, Any] = value
        self.used: set[str] = set()

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def sub(self, key: str) -> "Fields":
        return Fields(self.source, self.raw(key), self.path + (key,))

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                self.source.problem(self.path + (key,), "is required")
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.source.problem(self.path + (key,), f"expected a string, got {type_name(value)}")
            return default
        return self.source.expand(value, self.path + (key,))

    def integer(self, key: str, default: int | None = None, *, minimum: int | None = 0) -> int | None:
        value = self.raw(key)
        if isinstance(value, str):
            expanded = self.source.expand(value, self.path + (key,))
            value = _number(expanded, int) if expanded is not None else None
            if value is None and expanded is not None:
                value = expanded
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.source.problem(self.path + (key,), f"expected an integer, got {type_name(value)}")
            return default
        if minimum is not None and value < minimum:
            self.source.problem(self.path + (key,), f"must be at least {minimum}, got {value}")
            return default
        return value

    def number(self, key: str, default: float | None = None, *, minimum: float | None = 0.0) -> float | None:
        value = self.raw(key)
        if isinstance(value, str):
            expanded = self.source.expand(value, self.path + (key,))
            converted = _number(expanded, float) if expanded is not None else None
            value = converted if converted is not None else value
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.source.problem(self.path + (key,), f"expected a number, got {type_name(value)}")
            return default
        if minimum is not None and value < minimum:
            self.source.problem(self.path + (key,), f"must be at least {minimum}, got {value}")
            return default
        return float(value)

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.raw(key)
        if isinstance(value, str):
            lowered = (self.source.expand(value, self.path + (key,)) or "").strip().lower()
            if lowered in ("true", "yes", "on", "1"):
                return True
            if lowered in ("false", "no", "off", "0", ""):
                return False
        if value is None:
            return default
        if not isinstance(value, bool):
            self.source.problem(self.path + (key,), f"expected true or false, got {type_name(value)}")
            return default
        return value

    def duration(self, key: str, default: float | None = None) -> float | None:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str):
            value = self.source.expand(value, self.path + (key,))
            if value is None:
                return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.source.problem(self.path + (key,), str(exc))
            return default

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.source.problem(self.path + (key,), f"expected a list of strings, got {type_name(value)}")
            return ()
        return tuple(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(key, default)
        if value not in choices:
            self.source.problem(self.path + (key,), f"must be one of {', '.join(choices)}; got {value!r}")
            return default
        return value

    def warn_unknown(self, known: tuple[str, ...] | frozenset[str]) -> None:
        for key in self.data:
            if key not in known and key not in self.used:
                self.source.warn(self.path + (key,), "unknown setting, ignored")


def _number(value: str, kind: type) -> Any:
    try:
        return kind(value.strip())
    except (TypeError, ValueError):
        return None


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value}".lower()
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
