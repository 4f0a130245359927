"""Alignment: which method's weights match the fact spans (eval.json ranking, then the probe
examples at every snapshot)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from atwu_core import runs, viz
from dashboard import teaching
from dashboard.loading import load_run, stat_sig
from dashboard.views.common import highlighted, plot, run_multiselect, teach, with_token_weights

# The ranking's label choice: eval.json key prefix -> what it measures.
SPAN_LABELS = {
    "span": "fact spans, all answer tokens",
    "span/no_end": "fact spans, without the end-of-answer token",
    "span/retain_label": "second label: tokens the retain model finds surprising",
}


@st.cache_data(show_spinner=False, max_entries=16)
def _alignment(
    picked: tuple[tuple[str, str, str], ...], highlight: tuple[str, ...], sig: tuple
) -> tuple:
    """(table, ROC/PR figure, weight boxes, AUROC over steps) for (label, run path, method).

    Slow on first sight (sklearn's import, then one `span_alignment` per run and snapshot: ~0.7 s
    per sample run on 2 cores), so cached; `sig` (the token_weights files' mtimes and sizes)
    makes a rewritten run count as new.
    """
    frames = {}
    for label, path, _ in picked:
        run, error = load_run(path)
        if error:
            raise ValueError(error)
        frames[label] = run.token_weights
    method_of = {label: method for label, _, method in picked}
    table = viz.alignment_table(frames)
    final = {k: tw[tw["step"] == tw["step"].max()] for k, tw in frames.items()}
    return (
        table.rename(columns={"name": "run"}),
        viz.alignment_curves(final, highlight=highlight, method_of=method_of),
        viz.weight_distributions(final),
        viz.alignment_over_steps(table, highlight=highlight, method_of=method_of),
    )


def alignment_ranking(loaded: dict[str, runs.Run]) -> None:
    """Final-step span AUROC of every method (eval.json, all forget rows), seeds pooled, with
    the score-only references as hatched grey bars; then the per-field breakdown."""
    evaluated = {
        k: r
        for k, r in loaded.items()
        if r.eval and runs.eval_value(r.eval, "span/auroc") is not None
    }
    if not evaluated:
        st.info(
            "None of the selected runs has span metrics in its eval.json (`span/auroc`): "
            "evaluate a run to rank it. The details below use the probe examples."
        )
        return
    st.subheader("Who matches the fact spans best?")
    prefix = st.radio(
        "Label",
        list(SPAN_LABELS),
        format_func=SPAN_LABELS.get,
        key="al_label",
        horizontal=True,
        help="Which tokens count as the ones to forget. The end-of-answer token is easy to "
        "single out and not a fact; the second label asks whether a method finds what the "
        "retain model (never trained on the forget set) finds surprising.",
    )
    by_method: dict[str, list[float]] = {}
    for r in evaluated.values():
        value = runs.eval_value(r.eval, f"{prefix}/auroc")
        if value is not None:
            by_method.setdefault(r.method, []).append(value)
    entries = [{"name": m, "method": m, "values": v} for m, v in by_method.items()]
    # Score-only references (no unlearning method): from the ATWU runs' evaluation.
    source = [r for r in evaluated.values() if r.method == "atwu"] or list(evaluated.values())
    if prefix == "span":
        for key, name in viz.SCORE_REFERENCES.items():
            values = [runs.eval_value(r.eval, f"span/ref/{key}/auroc") for r in source]
            values = [v for v in values if v is not None]
            if values:
                entries.append({"name": name, "reference": True, "values": values})
    plot(viz.span_ranking(entries), "al_ranking")
    st.caption(teaching.VIEWS["ranking"])
    fields = sorted(
        {
            key.split("/")[2]
            for r in evaluated.values()
            for key in r.eval.get("metrics", {})
            if key.startswith("span/field/") and key.endswith("/auroc")
        }
    )
    if fields:
        table = pd.DataFrame(
            {
                f: {
                    m: _mean(
                        [
                            runs.eval_value(r.eval, f"span/field/{f}/auroc")
                            for r in evaluated.values()
                            if r.method == m
                        ]
                    )
                    for m in by_method
                }
                for f in fields
            }
        )
        plot(viz.field_breakdown(table), "al_fields")


def _mean(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def alignment_view(loaded: dict[str, runs.Run]) -> None:
    alignment_ranking(loaded)
    st.subheader("Details: the probe examples at every snapshot")
    teach("alignment")
    with_tw = with_token_weights(loaded)
    if not with_tw:
        st.info("None of the selected runs has token weights yet.")
        return
    chosen = run_multiselect("Runs", with_tw, "al_runs")
    if not chosen:
        st.info("Pick at least one run.")
        return
    picked = tuple((k, str(with_tw[k].path), with_tw[k].method) for k in chosen)
    sig = stat_sig([Path(p) / runs.TOKEN_WEIGHTS for _, p, _ in picked])
    with st.spinner(f"Scoring span alignment of {len(picked)} run(s) at every snapshot..."):
        try:
            table, curves, dist, steps = _alignment(
                picked, tuple(sorted(highlighted(with_tw))), sig
            )
        except ValueError as e:  # a malformed token_weights file: say which, keep the page
            st.error(f"Span alignment cannot be computed: {e}")
            return
    table.insert(1, "method", table["run"].map(lambda k: with_tw[k].method))
    st.caption("Curves and distributions use each run's last snapshot of the probe examples.")
    plot(curves, "al_curves")
    plot(steps, "al_steps")
    plot(dist, "al_dist")
    with st.expander("AUROC and average precision per run and snapshot step"):
        st.dataframe(table, key="al_table", hide_index=True)
