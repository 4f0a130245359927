"""Seed study: every method and both controls over freshly generated benchmarks, from the
committed study CSVs (`docs/results/study_*.csv`, written by `atwu study`), mean ± 95 % CI over
seeds and ATWU minus its frozen control paired per seed. Statistics: `atwu_core.study`; figures:
`atwu_core.viz`. A new `study_*.csv` in the folder appears in the picker without code changes."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from atwu_core import study, viz
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
    verdict(board, regime)
    dots = viz.study_dots(board, metric, regime=regime)
    plot(dots, "study_dots")
    if dots.layout.meta["missing"] and metric == "selectivity":
        st.caption(teaching.STUDY_NO_SELECTIVITY)
    plot(viz.study_paired(board, regime=regime), "study_paired")
    goals(board, regime)
    with st.expander("Summary table (mean ± 95 % CI over seeds)", expanded=False):
        st.dataframe(study.summary_table(board, regime), key="study_table", hide_index=True)


def verdict(board, regime: str) -> None:
    """The headline in words, from the numbers: each ATWU row minus the frozen control."""
    table = study.paired_table(board, regime)
    if table.empty:
        st.info("This study has no ATWU row and frozen control (atwu_frozen) to compare.")
        return
    lines = []
    for metric in ("selectivity", "span/auroc", "log10_fq"):
        for row in table[table["metric"] == metric].to_dict("records"):
            lines.append("- " + study.paired_sentence(row))
    st.markdown("**Do ATWU's learned weights beat its frozen control?**\n\n" + "\n".join(lines))


def goals(board, regime: str) -> None:
    checks = study.goal_checks(board, regime)
    if checks.empty:
        return
    mark = {True: "met", False: "not met", None: "cannot tell"}
    lines = []
    for method, group in checks.groupby("method", sort=False):
        cells = "; ".join(
            f"{g.goal}: {g.value} (**{mark[g.met if g.met is None else bool(g.met)]}**)"
            for g in group.itertuples(index=False)
        )
        lines.append(
            f"- **{study.atwu_title(method, study.method_config(board, method))}**: {cells}"
        )
    st.markdown("**Against the goals** (docs/RESULTS.md, means over seeds)\n\n" + "\n".join(lines))
