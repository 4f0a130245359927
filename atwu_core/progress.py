"""Progress for waits longer than a second: phase lines and bars, shown only when the CLI asks.

Library code calls `phase("loading model ...")` and wraps loops in `bar(iterable, ...)`; both are
silent unless `enable()` was called (the `atwu` CLI does), so tests, the dashboard and Python users
see nothing they did not ask for. Lines go through `tqdm.write` to stderr, so they never glue onto
a progress bar. No torch here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_enabled = False
_start = time.perf_counter()


def enable(on: bool = True) -> None:
    global _enabled, _start
    _enabled, _start = on, time.perf_counter()


def enabled() -> bool:
    return _enabled


def write(message: str) -> None:
    """A line on stderr that does not break an open progress bar (always shown)."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def phase(message: str) -> None:
    """`[  3.2s] loading model sample_data/models/full` when progress is on."""
    if _enabled:
        write(f"[{time.perf_counter() - _start:6.1f}s] {message}")


def bar(
    items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it"
) -> Iterator[T]:
    """`items`, with a tqdm bar on stderr when progress is on."""
    if not _enabled:
        yield from items
        return
    from tqdm import tqdm

    with tqdm(items, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr) as b:
        yield from b
