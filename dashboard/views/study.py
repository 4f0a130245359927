"""Seed study: every method and both controls over freshly generated benchmarks, from the
committed study CSVs (`docs/results/study_*.csv`, written by `atwu study`), mean ± 95 % CI over
seeds and ATWU minus its frozen control paired per seed. Statistics: `atwu_core.study`; figures:
`atwu_core.viz`. A new `study_*.csv` in the folder appears in the picker without code changes."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from atwu_core import viz
from atwu_core.evaluation import study_stats as study
from dashboard import teaching
from dashboard.views.common import plot, teach

STUDY_DIR_ENV = "ATWU_STUDY_DIR"


def study_dir() -> Path:
    """Where the study CSVs are: `ATWU_STUDY_DIR`, default docs/results next to the code."""
    default = Path(__file__).resolve().parents[2] / "docs" / "results"
    return Path(os.environ.get(STUDY_DIR_ENV) or default)


@st.cache_data(show_spinner=False)
def _board(path: str, mtime: float):
    return study.load_board(path)


def study_view() -> None:
    teach("study")
    folder = study_dir()
    files = study.study_files(folder)
    if not files:
        st.info(
            f"No study files (`study_*.csv`) in `{folder}`. `atwu study --out DIR` writes "
            f"`DIR/study.csv`; copy it there as `study_<name>.csv` (or set `{STUDY_DIR_ENV}`)."
        )
        return
    c1, c2, c3 = st.columns([2, 2, 1])
    label = c1.selectbox("Study", list(files), key="study_file")
    path = files[label]
    try:
        board = _board(str(path), path.stat().st_mtime)
    except study.StudyFileError as e:
        st.error(str(e))
        return
    metric = c2.selectbox(
        "Metric",
        list(study.VIEW_METRICS),
        format_func=study.VIEW_METRICS.get,
        key="study_metric",
        help="\n\n".join(
            f"**{v}**: {teaching.STUDY_METRICS[k]}" for k, v in study.VIEW_METRICS.items()
        ),
    )
    regimes = list(dict.fromkeys(board["regime"]))
    regime = c3.selectbox("Regime", regimes, key="study_regime") if len(regimes) > 1 else regimes[0]
    sub = board[board["regime"] == regime]
    seeds = sorted(int(s) for s in sub["seed"].unique())
    st.caption(
        f"`{path.name}`: {sub['method'].nunique()} methods × {len(seeds)} generator seeds "
        f"({', '.join(map(str, seeds))}), {len(sub)} runs, regime `{regime}`."
    )
    verdict(board, regime, metric)
    dots = viz.study_dots(board, metric, regime=regime)
    plot(dots, "study_dots")
    if dots.layout.meta["missing"] and metric == "selectivity":
        st.caption(teaching.STUDY_NO_SELECTIVITY)
    plot(viz.study_paired(board, regime=regime), "study_paired")
    goals(board, regime)
    with st.expander("Summary table (mean ± 95 % CI over seeds)", expanded=False):
        st.dataframe(study.summary_table(board, regime), key="study_table", hide_index=True)


def verdict(board, regime: str, metric: str) -> None:
    """The headline in words, from the numbers: each ATWU row minus the frozen control on the
    chosen metric (the paired chart below has every metric)."""
    table = study.paired_table(board, regime, metrics=[metric])
    if table.empty:
        st.info("This study has no ATWU row and frozen control (atwu_frozen) to compare.")
        return
    lines = ["- " + study.paired_sentence(row) for row in table.to_dict("records")]
    st.markdown("**Do ATWU's learned weights beat its frozen control?**\n\n" + "\n".join(lines))


def goals(board, regime: str) -> None:
    """docs/RESULTS.md's goals per ATWU row (`study.goal_checks`), as a goal × row table."""
    checks = study.goal_checks(board, regime)
    if checks.empty:
        return
    mark = {True: "**met**", False: "not met", None: "cannot tell"}
    methods = list(dict.fromkeys(checks["method"]))
    titles = [study.atwu_title(m, study.method_config(board, m)) for m in methods]
    lines = ["| goal | " + " | ".join(titles) + " |", "|---" * (len(methods) + 1) + "|"]
    for goal, group in checks.groupby("goal", sort=False):
        by_method = {g.method: g for g in group.itertuples(index=False)}
        cells = []
        for m in methods:
            g = by_method.get(m)
            met = None if g is None or g.met is None else bool(g.met)
            cells.append(f"{g.value if g else '–'}: {mark[met]}")
        lines.append(f"| {goal} | " + " | ".join(cells) + " |")
    st.markdown(
        '**Against the goals** (docs/RESULTS.md, "What the study shows, against the goals"; '
        "means over seeds)\n\n" + "\n".join(lines)
    )
