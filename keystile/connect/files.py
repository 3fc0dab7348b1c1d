"""Merge an agent's settings into the files it already has, and show them as the file would read.

Merging changes only the keys keystile sets: JSON objects are merged key by key, a ``.env``
file has its lines for those variables replaced (or added), and in Codex's TOML the top-level
keys are replaced in place and keystile's own table is replaced whole. A file that cannot be
read as its format is left alone (``MergeError`` says what to add by hand). Before a file is
changed it is copied to ``<name>.bak-<time>``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from keystile.connect.agents import ConfigFile, Setup


class MergeError(Exception):
    """An existing file is not what its agent reads (invalid JSON, TOML, …): it is left as it is."""


@dataclass(frozen=True)
class Written:
    path: Path
    backup: Path | None
    """Where the previous content was copied; None when the file is new or did not change."""
    changed: bool


# --- showing ------------------------------------------------------------------------------------


def snippet(file: ConfigFile) -> str:
    """keystile's part of the file, as it reads in that file."""
    if file.kind == "json":
        return json.dumps(file.settings, indent=2)
    if file.kind == "dotenv":
        return "\n".join(f"{name}={value}" for name, value in file.settings.items())
    return _toml_block(file.settings)


def _toml_block(settings: dict) -> str:
    lines = [f"{key} = {_toml_value(value)}" for key, value in settings["top"].items()]
    for table, values in settings["tables"].items():
        lines += ["", f"[{table}]", *(f"{key} = {_toml_value(value)}" for key, value in values.items())]
    return "\n".join(lines)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    raise TypeError(f"no TOML form for {value!r}")


# --- merging (pure: old text → new text) --------------------------------------------------------


def merge_json(old: str, settings: dict, name: str) -> str:
    if not old.strip():
        data: dict = {}
    else:
        try:
            data = json.loads(old)
        except json.JSONDecodeError as exc:
            raise MergeError(f"{name} is not plain JSON ({exc.msg} at line {exc.lineno}); add keystile's part by hand") from None
        if not isinstance(data, dict):
            raise MergeError(f"{name} does not hold a JSON object; add keystile's part by hand")
    return json.dumps(_deep_merge(data, settings), indent=2) + "\n"


def _deep_merge(old: dict, new: dict) -> dict:
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merge_dotenv(old: str, variables: dict[str, str]) -> str:
    lines = old.splitlines()
    left = dict(variables)
    for i, line in enumerate(lines):
        match = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if match and match.group(1) in variables:
            name = match.group(1)
            lines[i] = f"{name}={variables[name]}"
            left.pop(name, None)
    lines += [f"{name}={value}" for name, value in left.items()]
    return "\n".join(lines) + "\n"


_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def merge_toml(old: str, settings: dict, name: str) -> str:
    """Codex's ``config.toml``: top-level keys set (replaced where they were), keystile's tables
    replaced whole; everything else kept line for line, comments included."""
    try:
        tomllib.loads(old)
    except tomllib.TOMLDecodeError as exc:
        raise MergeError(f"{name} is not valid TOML ({exc}); add keystile's part by hand") from None
    lines = old.splitlines()
    first_table = next((i for i, line in enumerate(lines) if _TABLE_HEADER.match(line)), len(lines))
    top, rest = lines[:first_table], lines[first_table:]
    keys = settings["top"]
    top = [line for line in top if not _assigns(line, keys)]
    while top and not top[-1].strip():
        top.pop()
    top += [f"{key} = {_toml_value(value)}" for key, value in keys.items()]
    for table in settings["tables"]:
        rest = _without_table(rest, table)
    while rest and not rest[-1].strip():
        rest.pop()
    block = _toml_block({"top": {}, "tables": settings["tables"]}).lstrip("\n")
    text = "\n".join([*top, "", *rest, *([""] if rest else []), block]) + "\n"
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # e.g. the same keys also given as dotted keys elsewhere
        raise MergeError(f"{name}: keystile's settings clash with what is there ({exc}); add them by hand") from None
    return text


def _assigns(line: str, keys: dict) -> bool:
    match = re.match(r"\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=", line)
    return bool(match) and match.group(1).strip('"') in keys


def _without_table(lines: list[str], table: str) -> list[str]:
    """``lines`` without ``[table]`` and its keys (up to the next table header)."""
    out: list[str] = []
    skipping = False
    for line in lines:
        header = _TABLE_HEADER.match(line)
        if header:
            skipping = _same_table(header.group(1), table)
        if not skipping:
            out.append(line)
    return out


def _same_table(header: str, table: str) -> bool:
    return [part.strip().strip('"') for part in header.split(".")] == table.split(".")


# --- writing ------------------------------------------------------------------------------------


def merged_text(file: ConfigFile, old: str) -> str:
    name = str(file.path)
    if file.kind == "json":
        return merge_json(old, file.settings, name)
    if file.kind == "dotenv":
        return merge_dotenv(old, file.settings)
    return merge_toml(old, file.settings, name)


def write_setup(setup: Setup) -> list[Written]:
    """Merge every file of ``setup``; all are checked before any is written."""
    plans = []
    for file in setup.files:
        old = file.path.read_text(encoding="utf-8") if file.path.exists() else ""
        plans.append((file, old, merged_text(file, old)))
    return [_write(file, old, new) for file, old, new in plans]


def _write(file: ConfigFile, old: str, new: str) -> Written:
    path = file.path
    if path.exists() and old == new:
        return Written(path, None, changed=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if path.exists():
        backup = _backup_name(path)
        shutil.copy2(path, backup)
    temporary = path.with_name(path.name + ".keystile-tmp")
    mode = 0o600 if file.secret else (path.stat().st_mode & 0o777 if path.exists() else 0o644)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(new)
    os.chmod(temporary, mode)  # the umask may have narrowed it; a secret file stays 0600 either way
    os.replace(temporary, path)
    return Written(path, backup, changed=True)


def _backup_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{n}")
    return candidate


# --- the whole setup, as printed ----------------------------------------------------------------


def render(
    setup: Setup, target_url: str, key_given: bool, key_in_env: bool, home: Path, written: list[Written] | None = None
) -> str:
    """What ``keystile connect`` prints: shell lines, each file's part (or what was written), how to start."""
    from keystile.connect.agents import KEY_VARIABLE

    def shown(path: Path) -> str:
        return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)

    out = [f"# {setup.title} → keystile at {target_url}", ""]
    if not key_given:
        if key_in_env:
            out.append(f"# The key is read from ${KEY_VARIABLE} (set in this shell) when {setup.title} starts.")
        else:
            out.append(f"export {KEY_VARIABLE}='<your virtual key>'   # keystile keys create makes one")
    env = setup.env if written is None else setup.env_after_write
    out += [f"export {name}={value}" for name, value in env]
    if out[-1]:
        out.append("")
    for file in setup.files:
        if written is None:
            where = f"in {shown(file.path)} ({file.purpose}; `keystile connect {setup.agent} --write` merges it in):"
            if file.replaces:
                where = f"Or, instead of exporting {' and '.join(file.replaces)}, {where}"
            out += [f"# {where[0].upper()}{where[1:]}", snippet(file), ""]
            continue
        done = next(w for w in written if w.path == file.path)
        if not done.changed:
            out.append(f"# {shown(file.path)}: already set ({file.purpose})")
        elif done.backup is not None:
            out.append(f"# {shown(file.path)}: merged in ({file.purpose}); the previous file is {done.backup.name}")
        else:
            out.append(f"# {shown(file.path)}: written ({file.purpose})")
    if written is not None:
        out.append("")
    out += [setup.run, *(f"# {note}" for note in setup.notes)]
    return "\n".join(out) + "\n"
