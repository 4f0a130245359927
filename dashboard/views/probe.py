"""Probe your text: a run's trained token scorer weighs an answer the user types.

`atwu_core.probe` needs torch, so it is imported only when the user asks to score a text.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import streamlit as st

from atwu_core import runs, viz
from dashboard.loading import preferred_run
from dashboard.views.common import teach

SCORER_FILE = "scorer.safetensors"  # a run's trained token scorer (ATWU and its plug-ins)


NO_SECOND_RUN = "(none)"


def has_scorer(run: runs.Run) -> bool:
    """The run saved a trained token scorer (ATWU and its plug-ins): only those can probe."""
    return (run.path / SCORER_FILE).is_file()


def probe_view(loaded: dict[str, runs.Run]) -> None:
    teach("probe")
    scorers = {k: r for k, r in loaded.items() if has_scorer(r)}
    if not scorers:
        st.info(
            "None of the selected runs has a trained token scorer "
            f"(`{SCORER_FILE}`: ATWU and its plug-ins save one). Select such a run in the sidebar."
        )
        return
    names = list(scorers)
    if st.session_state.get("probe_run") not in names:
        st.session_state["probe_run"] = preferred_run(scorers)
    run_label = st.selectbox(
        "Run whose scorer weighs the text",
        names,
        key="probe_run",
        help=f"Only runs with a trained scorer are listed ({len(loaded) - len(scorers)} "
        "selected run(s) without one are left out).",
    )
    st.caption(f"Run id `{loaded[run_label].run_id}`.")
    second = st.selectbox(
        "Compare with a second run (optional)",
        [NO_SECOND_RUN, *(n for n in names if n != run_label)],
        key="probe_run2",
        help="The same text weighed by another run's scorer, shown under the first.",
    )
    question = st.text_input("Question", key="probe_q", placeholder="Where was Elena Marquez born?")
    answer = st.text_area(
        "Answer", key="probe_a", placeholder="Elena Marquez was born in Lisbon in 1961."
    )
    chosen = [run_label] + ([second] if second != NO_SECOND_RUN else [])
    if st.button("Score the answer's tokens", key="probe_go"):
        st.session_state.pop("probe_result", None)
        if not answer.strip():
            st.info("Type an answer above first: its tokens are what the scorer weighs.")
        else:
            results = {}
            with st.spinner("Loading the model and scoring (imports torch the first time)..."):
                for label in chosen:
                    result, error = _score_text(loaded[label].path, question, answer)
                    if error:
                        st.error(error)
                        break
                    results[label] = result
                else:
                    st.session_state["probe_result"] = (chosen, question, answer, results)
    saved = st.session_state.get("probe_result")
    if saved and saved[:3] == (chosen, question, answer):
        for n, label in enumerate(chosen):
            df = _with_conflict(saved[3][label], loaded[label].token_weights, answer)
            if len(chosen) > 1:
                st.markdown(f"**{html.escape(label)}** (`{loaded[label].run_id}`)")
            # Free text has no ground truth: no span outlines, and the legend does not promise any.
            st.html(viz.token_html(df, spans=False))
            st.html(viz.extreme_tokens_html(df))
            model = saved[3][label].attrs.get("model")
            if model:
                # The scorer was trained on the model as it was being unlearned: say which one.
                st.caption(f"Scored with the hidden states of `{model}`.")
            shown = ("token", "char_start", "char_end", "weight", "nll", "conflict")
            cols = [c for c in shown if c in df]
            st.dataframe(df[cols], key=f"probe_table{'' if n == 0 else n}", hide_index=True)


def _score_text(path: Path, question: str, answer: str) -> tuple[pd.DataFrame | None, str | None]:
    """atwu_core.probe.score_text, imported only now (it needs torch); errors become messages."""
    try:
        from atwu_core import probe
    except Exception as e:
        return None, f"Probing is not available: atwu_core.probe cannot be imported ({e})."
    try:
        df = probe.score_text(path, question, answer)
    except Exception as e:
        return None, f"Scoring failed for {path.name}: {type(e).__name__}: {e}"
    missing = {"token", "weight"} - set(getattr(df, "columns", ()))
    if missing:
        return None, f"atwu_core.probe.score_text returned no {sorted(missing)} column(s)."
    return df, None


def _with_conflict(df: pd.DataFrame, tw: pd.DataFrame | None, answer: str) -> pd.DataFrame:
    """Add the run's recorded retain `conflict` when the answer is one of its probe examples."""
    if "conflict" in df.columns or tw is None or "conflict" not in tw.columns:
        return df
    if not {"char_start", "char_end"} <= set(df.columns):
        return df
    first = tw[tw["step"] == tw["step"].min()]
    for _, rows in first.groupby("example_id"):
        # The same answer: its tokens point at their text and reach its last character.
        if rows["char_end"].max() == len(answer) and viz.tokens_match_text(rows, answer):
            keys = rows[["char_start", "char_end", "conflict"]].drop_duplicates(
                ["char_start", "char_end"]
            )
            return df.merge(keys, on=["char_start", "char_end"], how="left")
    return df
