"""One cancellation path for every long command: SIGINT, SIGTERM and a cancel file.

`install()` (called by the CLI, in the main thread) sets handlers for SIGINT and SIGTERM
explicitly: a process started from a background job inherits SIGINT as *ignored*, and Python then
never raises KeyboardInterrupt, so Ctrl-C or the dashboard's Cancel would do nothing. A signal
raises `KeyboardInterrupt("interrupted (SIGTERM)")` wherever the program is (training, evaluation,
saving); inside `shielded()` (the final run.json write) it is deferred until the block ends.

The dashboard also writes a cancel file (path in `$ATWU_CANCEL_FILE`, set by the launcher) that the
training loop polls once per step (`file_requested`), so Cancel works even when signals are lost.

No torch here: the dashboard imports this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

CANCEL_ENV = "ATWU_CANCEL_FILE"
SIGNALS = ("SIGINT", "SIGTERM")

_shield_depth = 0
_pending: str | None = None


def _handler(signum: int, frame) -> None:
    global _pending
    name = signal.Signals(signum).name
    if _shield_depth:
        _pending = name  # raised when the shielded block ends
        return
    raise KeyboardInterrupt(f"interrupted ({name})")


def install() -> None:
    """Handle SIGINT and SIGTERM as KeyboardInterrupt, whatever the inherited disposition."""
    for name in SIGNALS:
        signal.signal(getattr(signal, name), _handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Defer signals while the block runs (e.g. marking a run interrupted), then raise."""
    global _shield_depth, _pending
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1
        if _shield_depth == 0 and _pending is not None:
            name, _pending = _pending, None
            raise KeyboardInterrupt(f"interrupted ({name})")


def cancel_file() -> Path | None:
    """The cancel file this process watches (`$ATWU_CANCEL_FILE`), or None."""
    value = os.environ.get(CANCEL_ENV, "").strip()
    return Path(value) if value else None


def file_requested() -> str | None:
    """A reason when the cancel file exists (the dashboard's Cancel), else None."""
    path = cancel_file()
    if path is not None and path.exists():
        return f"cancelled (cancel file {path})"
    return None
