"""Where a SQLite database named by a relative path lives, so every command finds the same one.

A relative path in a config file is read beside that file; in ``KEYSTILE_DATABASE_URL``,
against the current directory (where the variable was written); for the built-in default
config, in keystile's data folder (``$XDG_DATA_HOME/keystile``, else ``~/.local/share/keystile``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from keystile.store.database import sqlite_path


def data_dir(env: Mapping[str, str]) -> Path:
    """keystile's data folder under the XDG base-directory convention."""
    base = env.get("XDG_DATA_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "share")
    return Path(base) / "keystile"


def absolute_database_url(url: str, base: Path) -> str:
    """``url`` with a relative (or ``~``) SQLite path made absolute against ``base``; other URLs as they are."""
    if not url.startswith("sqlite:"):
        return url
    path = sqlite_path(url)
    if path == ":memory:" or path.startswith("file:"):
        return url
    path = os.path.expanduser(path)
    if not os.path.isabs(path):
        path = os.path.normpath(base / path)
    return f"sqlite:///{path}"


def database_file(url: str) -> str | None:
    """The file of a SQLite ``url`` (None for PostgreSQL or an in-memory database)."""
    if not url.startswith("sqlite:"):
        return None
    path = sqlite_path(url)
    return None if path == ":memory:" or path.startswith("file:") else path
