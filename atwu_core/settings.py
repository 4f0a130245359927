"""Casting a setting typed on the command line or in the dashboard to the type of its default.

One caster for method hyperparameters (`methods.base.resolve_hparams`) and scorer settings
(`scorer.ScorerConfig.from_overrides`), so `--set` behaves the same for both.
"""

from __future__ import annotations

import math
from typing import Any

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def cast_setting(value: Any, kind: type, label: str) -> Any:
    """`value` as a `kind` (bool, int, float or str). Strings are parsed ("true"/"no" for bools);
    a float must be finite. Raises ValueError "`label`=value is not a valid kind" otherwise."""
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in TRUE + FALSE:
                return value.lower() in TRUE
            raise ValueError(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            out = float(value)
            if not math.isfinite(out):
                raise ValueError(f"{label}={value!r} must be a finite number")
            return out
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        return kind(value)
    except (TypeError, ValueError) as err:
        if "must be a finite number" in str(err):
            raise
        raise ValueError(f"{label}={value!r} is not a valid {kind.__name__}") from None
