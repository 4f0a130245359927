"""ATWU's scorer settings, torch-free: run folders record them, and the run list and the
dashboard name a run's variant by the settings that differ from these defaults."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .settings import cast_setting

POSITIONS = ("own", "prev")


@dataclass
class ScorerConfig:
    """Scorer hyperparameters (METHOD.md §1 defaults from the authors' runs).

    The loop merges these names into the `--set` namespace of methods that need a scorer, so no
    field may share a name with a method hyperparameter (a test checks it).
    """

    update_every: int = 5  # n: one scorer step every n model steps
    lambda_h: float = 1.0  # λ_H, binary-entropy term (pushes g to 0 or 1)
    lambda_p: float = 10.0  # λ_P, budget term
    budget: float = 0.2  # target fraction of a sequence's answer tokens with g > 0.5
    lambda_2: float = 1.0  # λ_2, L2 on all scorer parameters (w and b)
    scorer_lr: float = 0.05
    scorer_momentum: float = 0.9
    scorer_weight_decay: float = 1e-4  # SGD weight decay, on top of the λ_2 term (authors' code)
    scorer_clip: float = 1.0  # max global grad norm of (w, b)
    lr_decay: bool = True  # linear decay over the scorer updates: 1, (N-1)/N, ..., 1/N
    freeze_after: int = -1  # -1: never freeze; k: no scorer update after model step k
    # Which last-layer hidden state scores token y_t: "own" = the position holding y_t (the
    # authors' default), "prev" = the position that predicts y_t (where ℓ_t is computed).
    scorer_position: str = "own"

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, rule: str) -> None:
            if not ok:
                raise ValueError(f"ScorerConfig.{name}={getattr(self, name)!r} must be {rule}")

        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), type(f.default)
            # bool is an Integral: an int or float field must not silently take True.
            if kind is bool:
                ok = isinstance(value, bool)
            elif kind is str:
                ok = isinstance(value, str)
            elif kind is int:
                ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            else:
                ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not ok:
                raise ValueError(f"ScorerConfig.{f.name}={value!r} must be of type {kind.__name__}")
            if value != value:
                raise ValueError(f"ScorerConfig.{f.name} is NaN")
            if kind is float and value in (float("inf"), float("-inf")):
                raise ValueError(f"ScorerConfig.{f.name}={value!r} must be finite")
            setattr(self, f.name, kind(value))
        check("update_every", self.update_every >= 1, ">= 1")
        for name in ("lambda_h", "lambda_p", "lambda_2"):
            check(name, getattr(self, name) >= 0, ">= 0")
        check("budget", 0.0 <= self.budget <= 1.0, "in [0, 1]")
        check("scorer_lr", self.scorer_lr > 0, "> 0")
        check("scorer_momentum", 0.0 <= self.scorer_momentum < 1.0, "in [0, 1)")
        check("scorer_weight_decay", self.scorer_weight_decay >= 0, ">= 0")
        check("scorer_clip", self.scorer_clip > 0, "> 0")
        check("freeze_after", self.freeze_after >= -1, "-1 (never) or a model step >= 0")
        check("scorer_position", self.scorer_position in POSITIONS, f"one of {POSITIONS}")

    def updates_in(self, total_steps: int) -> list[int]:
        """The model steps (1-based) on which the scorer updates in a run of `total_steps`."""
        last = total_steps if self.freeze_after < 0 else min(total_steps, self.freeze_after)
        return list(range(self.update_every, last + 1, self.update_every))

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any]) -> ScorerConfig:
        """Defaults updated with `overrides` (CLI/dashboard values, often strings), cast."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(overrides) - set(fields)
        if unknown:
            allowed = ", ".join(f"{n}={f.default!r}" for n, f in fields.items())
            raise ValueError(
                f"ScorerConfig has no field {', '.join(sorted(unknown))}; allowed: {allowed}"
            )
        return cls(
            **{
                k: cast_setting(v, type(fields[k].default), f"ScorerConfig.{k}")
                if isinstance(v, str)
                else v  # typed values go to __post_init__, which names a wrong type
                for k, v in overrides.items()
            }
        )


def scorer_overrides(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded scorer settings (run.json `config.scorer`) that differ from the defaults, in
    field order; unknown names are ignored (a run folder from another version)."""
    defaults = {f.name: f.default for f in dataclasses.fields(ScorerConfig)}
    return {k: recorded[k] for k in defaults if k in recorded and recorded[k] != defaults[k]}
