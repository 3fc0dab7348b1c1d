"""Logging that stays off the request path and never prints a secret.

Records go through a queue to a writer thread, so a log call on the hot path costs a
queue put, not a write to stderr. As a last line of defence the formatter masks anything
shaped like a key (``sk-…``, bearer tokens) that a message might carry by mistake.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import sys

_SECRET = re.compile(r"(sk-[A-Za-z0-9]{0,8}[-_]?)[A-Za-z0-9_\-]{8,}([A-Za-z0-9_\-]{4})")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]{8,}")

_listener: logging.handlers.QueueListener | None = None
ACCESS_LOGGER = "keystile.access"


def redact(text: str) -> str:
    text = _SECRET.sub(lambda m: f"{m.group(1)[:6]}…{m.group(2)}", text)
    return _BEARER.sub(lambda m: m.group(1) + "…", text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "info", stream=None) -> None:  # type: ignore[no-untyped-def]
    """Route keystile's (and the server's) logs through one background writer thread."""
    global _listener
    root = logging.getLogger()
    root.setLevel(level.upper())
    if _listener is not None:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(lambda record: record.name != ACCESS_LOGGER)
    # Access lines are JSON lines already (keystile.accesslog), written as they are: no prefix,
    # and no masking regexes over a whole batch on the writer thread, where they would hold
    # the GIL the request path needs (the few client-chosen fields are masked as lines are made).
    access = logging.StreamHandler(stream or sys.stderr)
    access.setFormatter(logging.Formatter("%(message)s"))
    access.addFilter(lambda record: record.name == ACCESS_LOGGER)
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)  # on even when log_level is warning
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(logging.handlers.QueueHandler(records))
    _listener = logging.handlers.QueueListener(records, handler, access, respect_handler_level=False)
    _listener.start()
    atexit.register(stop_logging)


def stop_logging() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
