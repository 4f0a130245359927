"""Curves & trade-offs: training curves, the trade-off scatter and the leaderboard."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from atwu_core import runs, viz
from dashboard import teaching
from dashboard.loading import label_runs, load_run
from dashboard.views.common import highlighted, plot, run_multiselect, teach

# Trade-off plot axes, in order of preference: TOFU's, then RWKU's (docs/DATA.md "RWKU").
TRADEOFF_DEFAULTS = {
    "tr_x": ("model_utility", "rwku/neighbor_avg_rougeL"),
    "tr_y": ("forget_quality", "rwku/forget_avg_rougeL"),
}


# The leaderboard's default columns (all fit at 1024 px), with short headers; "All columns"
# shows every metric.
LEADERBOARD_COLUMNS = (
    "forget_quality",
    "model_utility",
    "span/auroc",
    "selectivity",
    "forget/span_token_acc",
    "forget/other_token_acc",
)


LEADERBOARD_SHORT = {
    "forget_quality": "forget quality",
    "model_utility": "utility",
    "span/auroc": "span AUROC",
    "selectivity": "selectivity",
    "forget/span_token_acc": "fact acc ↓",
    "forget/other_token_acc": "shared acc ↑",
}


def curves_view(loaded: dict[str, runs.Run], table: pd.DataFrame) -> None:
    teach("curves")
    with_metrics = {k: r.metrics for k, r in loaded.items() if not r.metrics.empty}
    if with_metrics:
        chosen = run_multiselect("Runs", {k: loaded[k] for k in with_metrics}, "cv_runs")
        picked = {k: with_metrics[k] for k in chosen}
        keys = viz.metric_keys(picked)
        if keys:
            if st.session_state.get("cv_metric") not in keys:
                st.session_state["cv_metric"] = next(
                    (k for k in ("forget/nll", "loss/total") if k in keys), keys[0]
                )
            metric = st.selectbox("Metric", keys, key="cv_metric")
            st.caption(teaching.describe_metric(metric))
            method_of = {k: loaded[k].method for k in picked}
            fig = viz.training_curves(
                picked, metric, highlight=highlighted(loaded), method_of=method_of
            )
            plot(fig, "cv_curves")
        else:
            st.info("The chosen runs logged no numeric metrics.")
    else:
        st.info("None of the selected runs has logged metrics (metrics.jsonl) yet.")

    st.subheader("Trade-off and leaderboard")
    teach("tradeoff")
    finished = table[(table["error"].isna()) & (table["status"] == "finished")]
    labels = label_runs(finished)
    done = {labels[p]: run for p in finished["path"] if (run := load_run(p)[0]) is not None}
    board = runs.leaderboard(done.values())
    numeric = [c for c in board.columns if pd.api.types.is_numeric_dtype(board[c])]
    if board.empty or not numeric:
        st.info("No finished run has eval.json metrics yet.")
        return
    evaluated = [label for label, run in done.items() if run.eval]
    board.insert(0, "run", evaluated)  # unique
    refs = dict(zip(finished["path"], finished["reference"], strict=True))
    board.insert(3, "reference", [bool(refs[str(done[k].path)]) for k in evaluated])
    # TOFU's axes first; an RWKU-only board has neither, so its own pair comes next.
    for key, defaults in TRADEOFF_DEFAULTS.items():
        if st.session_state.get(key) not in numeric:
            st.session_state[key] = next((d for d in defaults if d in numeric), numeric[0])
    c1, c2 = st.columns(2)
    x_help, y_help = (teaching.describe_metric(st.session_state[k]) for k in TRADEOFF_DEFAULTS)
    x = c1.selectbox("x axis", numeric, key="tr_x", help=x_help)
    y = c2.selectbox("y axis", numeric, key="tr_y", help=y_help)
    plot(viz.tradeoff_scatter(board, x=x, y=y, label="run"), "tr_scatter")
    teach("leaderboard")
    everything = st.toggle("All columns", key="lb_all", help="Every metric of eval.json.")
    columns = numeric if everything else [c for c in LEADERBOARD_COLUMNS if c in numeric]
    columns = columns or numeric
    summary, best = viz.leaderboard_summary(board, columns)
    st.dataframe(
        _styled_leaderboard(summary, best),
        key="leaderboard",
        hide_index=True,
        column_config={
            c: st.column_config.TextColumn(
                LEADERBOARD_SHORT.get(c, c), help=teaching.describe_metric(c)
            )
            for c in columns
        },
    )
    st.caption(
        "One row per method: mean ± sd over its runs (seeds); ★ = the best method in that "
        "column (reference models excluded). Seed-by-seed numbers: 'Every run' below; the "
        "study's figures: docs/RESULTS.md."
    )
    with st.expander("Every run"):
        st.dataframe(
            board.style.format(lambda v: viz.format_mean_sd([v]), subset=numeric),
            key="leaderboard_runs",
            hide_index=True,
        )
    with st.expander("What do the columns mean?"):
        st.markdown("\n".join(f"- **{c}**: {teaching.describe_metric(c)}" for c in numeric))
    d1, d2 = st.columns(2)
    d1.download_button(
        "Download CSV", board.to_csv(index=False), "leaderboard.csv", "text/csv", key="lb_csv"
    )
    d2.download_button(
        "Download JSON",
        board.to_json(orient="records", indent=2),
        "leaderboard.json",
        "application/json",
        key="lb_json",
    )


def _styled_leaderboard(summary: pd.DataFrame, best: dict[str, str]) -> Any:
    """ATWU's row tinted in its colour, the best cell per column starred and bold."""
    shown = summary.copy()
    for col, method in best.items():
        i = shown.index[shown["method"] == method][0]
        shown.loc[i, col] = "★ " + shown.loc[i, col]
    tint = viz.method_style("atwu")["color"] + "22"  # 13 % opacity

    def row_style(row: pd.Series) -> list[str]:
        base = f"background-color:{tint};font-weight:600" if row["method"] == "atwu" else ""
        return [base for _ in row]

    def cell_style(value: Any) -> str:
        return "font-weight:700" if isinstance(value, str) and value.startswith("★") else ""

    return shown.style.apply(row_style, axis=1).map(cell_style)
