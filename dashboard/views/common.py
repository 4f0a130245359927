"""Helpers every view shares: captions, plots, run pickers."""

from __future__ import annotations

from typing import Any

import streamlit as st

from atwu_core import runs
from dashboard import teaching

# Runs plotted by default where one line per run gets crowded (curves, alignment): ATWU and the
# baselines it is usually compared with; the user adds the rest.
DEFAULT_PLOT_METHODS = (
    "atwu",
    "atwu_frozen",
    "oracle_saturated",
    "grad_diff",
    "wga",
    "satimp",
    "seul",
    "npo",
    "oracle_mask",
)


DEFAULT_PLOT_FALLBACK = 6  # runs plotted by default when none of those methods is there


HIGHLIGHT_METHOD = "atwu"  # drawn with a thicker line


def default_plot_runs(loaded: dict[str, runs.Run]) -> list[str]:
    """The runs a crowded plot starts with: those of `DEFAULT_PLOT_METHODS`, else the first few."""
    picked = [k for k, r in loaded.items() if r.method in DEFAULT_PLOT_METHODS]
    # In the order of DEFAULT_PLOT_METHODS: ATWU first in legends and tables.
    picked.sort(key=lambda k: DEFAULT_PLOT_METHODS.index(loaded[k].method))
    return picked or list(loaded)[:DEFAULT_PLOT_FALLBACK]


def highlighted(loaded: dict[str, runs.Run]) -> set[str]:
    return {k for k, r in loaded.items() if r.method == HIGHLIGHT_METHOD}


def run_multiselect(label: str, options: dict[str, runs.Run], key: str) -> list[str]:
    """A run picker that starts on `default_plot_runs` and keeps the user's choice afterwards."""
    names = list(options)
    previous = st.session_state.get(key)
    known = st.session_state.setdefault(f"_{key}_known", set())
    # Runs no longer selected in the sidebar leave the pick (a widget value must be among its
    # options); when none is left (e.g. another runs folder), start over on the default. Runs
    # never offered before (one just launched) join it, as in the sidebar.
    kept = [k for k in previous or () if k in options]
    if kept or previous == []:
        st.session_state[key] = kept + [k for k in names if k not in known and k not in kept]
    else:
        st.session_state[key] = default_plot_runs(options)
    known.update(names)
    hidden = len(names) - len(st.session_state[key])
    return st.multiselect(
        label,
        names,
        key=key,
        help=f"{hidden} more run(s) available: add them here." if hidden else None,
    )


def with_token_weights(loaded: dict[str, runs.Run]) -> dict[str, runs.Run]:
    return {k: r for k, r in loaded.items() if r.token_weights is not None and len(r.token_weights)}


def teach(key: str) -> None:
    st.caption(teaching.VIEWS[key])


def plot(fig: Any, key: str) -> None:
    st.plotly_chart(fig, key=key, width="stretch")
