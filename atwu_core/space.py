"""Search-space dimensions for hyperparameter tuning (`atwu tune`, docs/TUNING.md).

A method declares where each tunable hyperparameter may go next to its defaults,
`@register("wga", search={"beta": LogFloat(0.2, 10)})`; the scorer's space is `SCORER_SEARCH` at
the end of `atwu_core/scorer.py`, the run-level knobs (lr, alpha) are `RUN_SEARCH` in
`atwu_core/tune.py`. Each dimension is a small frozen dataclass that checks its own range and
knows how to ask an Optuna trial for a value, so this module imports nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Float:
    """Uniform on [low, high]."""

    low: float
    high: float

    def problem(self) -> str | None:
        if not (_finite(self.low) and _finite(self.high)):
            return f"bounds must be finite numbers, got low={self.low!r} high={self.high!r}"
        if not self.low < self.high:
            return f"needs low < high, got low={self.low!r} high={self.high!r}"
        return None

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, float(self.low), float(self.high))


@dataclass(frozen=True)
class LogFloat(Float):
    """Log-uniform on [low, high], 0 < low < high."""

    def problem(self) -> str | None:
        msg = super().problem()
        if msg is None and self.low <= 0:
            return f"a log scale needs low > 0, got low={self.low!r}"
        return msg

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, float(self.low), float(self.high), log=True)


@dataclass(frozen=True)
class Int:
    """Integers low..high inclusive (log-uniform with `log=True`, then low >= 1)."""

    low: int
    high: int
    log: bool = False

    def problem(self) -> str | None:
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))
        if not ints:
            return f"bounds must be integers, got low={self.low!r} high={self.high!r}"
        if not self.low < self.high:
            return f"needs low < high, got low={self.low!r} high={self.high!r}"
        if self.log and self.low < 1:
            return f"a log scale needs low >= 1, got low={self.low!r}"
        return None

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Choice:
    """One of `values` (at least two distinct bools, ints, floats or strings)."""

    values: tuple[Any, ...]

    def problem(self) -> str | None:
        values = tuple(self.values) if isinstance(self.values, (tuple, list)) else None
        if values is None:
            return f"values must be a tuple, got {self.values!r}"
        if len(values) < 2 or len(set(values)) != len(values):
            return f"needs at least two distinct values, got {values!r}"
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
            return f"values must be bools, numbers or strings, got {values!r}"
        return None

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))


Dimension = Float | Int | Choice


def _fits(dim: Dimension, default: Any) -> bool:
    """Whether the dimension's values have the hyperparameter's type (given by its default)."""
    if isinstance(dim, Choice):
        kind = type(default)
        return all(type(v) is kind or (kind is float and type(v) is int) for v in dim.values)
    if isinstance(default, bool):
        return False
    if isinstance(dim, Int):
        return isinstance(default, int)
    return isinstance(default, (int, float))


def validate_space(owner: str, space: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Raise ValueError naming `owner` and the key if `space` searches a name that is not in
    `defaults` (the hyperparameters), holds something that is not a dimension, has an insane
    range, or gives values of another type than the hyperparameter's default."""
    if not isinstance(space, Mapping):
        raise ValueError(f"{owner}: search must be a dict name -> dimension, got {space!r}")
    unknown = sorted(set(space) - set(defaults))
    if unknown:
        allowed = ", ".join(defaults) or "(none: the method has no hyperparameters)"
        raise ValueError(
            f"{owner}: search names {', '.join(unknown)}, which are not its hyperparameters; "
            f"allowed: {allowed}"
        )
    for name, dim in space.items():
        if not isinstance(dim, (Float, Int, Choice)):
            raise ValueError(
                f"{owner}: search[{name!r}] must be Float, LogFloat, Int or Choice, got {dim!r}"
            )
        msg = dim.problem()
        if msg:
            raise ValueError(f"{owner}: search[{name!r}] = {dim!r} {msg}")
        default = defaults[name]
        if not _fits(dim, default):
            raise ValueError(
                f"{owner}: search[{name!r}] = {dim!r} does not fit the hyperparameter's type "
                f"({type(default).__name__}, default {default!r})"
            )


def describe(dim: Dimension) -> str:
    """`log[0.5, 20]`, `[0, 2]`, `int[1, 10]`, `{False, True}`: one short cell of a table."""
    if isinstance(dim, Choice):
        return "{" + ", ".join(repr(v) for v in dim.values) + "}"
    if isinstance(dim, Int):
        return f"int{' log' if dim.log else ''}[{dim.low}, {dim.high}]"
    prefix = "log" if isinstance(dim, LogFloat) else ""
    return f"{prefix}[{dim.low:g}, {dim.high:g}]"
