"""Generations: what each run answers to a benchmark question, facts highlighted."""

from __future__ import annotations

import streamlit as st

from atwu_core import runs, viz
from dashboard.views.common import teach

# Runs of the starting model evaluated without unlearning, whose generations are "the full model".
FULL_MODEL_METHODS = ("full", "finetune", "none")


def generations_view(loaded: dict[str, runs.Run], bench: dict[str, dict]) -> None:
    teach("generations")
    gens = {
        k: r.eval["generations"]
        for k, r in loaded.items()
        if r.eval and isinstance(r.eval.get("generations"), dict)
    }
    if not gens:
        st.info("None of the selected runs has generations in its eval.json.")
        return
    # The evaluation generates for every split; forget questions are the interesting ones.
    split_of = {i: str(item.get("split", "?")) for g in gens.values() for i, item in g.items()}
    splits = sorted(set(split_of.values()), key=lambda s: (s != "forget", s))
    if st.session_state.get("gen_split") not in splits:
        st.session_state["gen_split"] = splits[0]
    split = st.selectbox("Split", splits, key="gen_split") if len(splits) > 1 else splits[0]
    ids = sorted(i for i, s in split_of.items() if s == split)
    if st.session_state.get("gen_example") not in ids:
        st.session_state["gen_example"] = ids[0]
    example = st.selectbox("Example", ids, key="gen_example")
    item = next(g[example] for g in gens.values() if example in g)
    answer = str(item.get("answer", ""))
    bench_row = bench.get(example, {})
    # Spans index the benchmark's answer text: use them only when it is the same text.
    spans = bench_row.get("spans", []) if bench_row.get("answer") == answer else []
    full = [k for k, g in gens.items() if example in g and loaded[k].method in FULL_MODEL_METHODS]
    rows = [("Question", viz.spans_html(str(item.get("question", "")), []))]
    try:
        rows.append(("True answer", viz.spans_html(answer, spans)))
    except ValueError as e:
        st.warning(f"Spans of {example} do not fit its answer: {e}")
        rows.append(("True answer", viz.spans_html(answer, [])))
    if not full:
        rows.append(("Full model", "<i>no run of the starting model among the selected runs</i>"))
    facts = [answer[int(s["start"]) : int(s["end"])] for s in spans if _fits(s, answer)]
    for k in full + [k for k in gens if k not in full]:
        if example in gens[k]:
            # A reference run's label already says "full model (before)".
            label = f"full model ({k})" if k in full and not k.startswith("full model") else k
            prediction = str(gens[k][example].get("prediction", ""))
            rows.append((label, viz.generation_html(prediction, facts)))
    st.html(viz.labelled_rows_html(rows))


def _fits(span: dict, text: str) -> bool:
    try:
        return 0 <= int(span["start"]) < int(span["end"]) <= len(text)
    except (KeyError, TypeError, ValueError):
        return False
