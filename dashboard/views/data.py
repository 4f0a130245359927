"""Data: the benchmark's rows, spans outlined, and the lines that cannot be read."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from atwu_core import viz
from dashboard.loading import benchmark_dir, dataset_key, read_rows
from dashboard.views.common import teach


def data_view() -> None:
    teach("data")
    bench = benchmark_dir()
    files = sorted(bench.glob("*.jsonl"))
    if not files:
        st.info(f"No benchmark files (*.jsonl) in `{bench}` (set `ATWU_BENCHMARK_DIR`).")
        return
    name = st.selectbox("File", [f.name for f in files], key=dataset_key("data_file"))
    rows, errors = read_rows(bench / name)
    for message in errors[:5]:
        st.warning(f"Unreadable line skipped: {message}")
    if not rows:
        st.info(f"`{name}` holds no rows.")
        return
    table = pd.DataFrame(rows)
    cols = [c for c in ("id", "author", "question", "answer") if c in table.columns]
    st.dataframe(table[cols], key="data_table", hide_index=True)
    ids = [str(r.get("id", i)) for i, r in enumerate(rows)]
    chosen = st.selectbox("Row", ids, key=dataset_key("data_row"))
    row = rows[ids.index(chosen)]
    shown = [("Question", viz.spans_html(str(row.get("question", "")), []))]
    for label, text_key, spans_key in (
        ("Answer", "answer", "spans"),
        ("Paraphrased answer", "paraphrased_answer", "paraphrased_spans"),
    ):
        text = str(row.get(text_key) or "")
        if not text:
            continue
        try:
            shown.append((label, viz.spans_html(text, row.get(spans_key) or [])))
        except (ValueError, KeyError, TypeError) as e:
            st.warning(f"{name}, row {chosen}: field {spans_key!r} is malformed ({e})")
            shown.append((label, viz.spans_html(text, [])))
    for i, wrong in enumerate(row.get("perturbed_answer") or [], start=1):
        shown.append((f"Wrong answer {i}", viz.spans_html(str(wrong), [])))
    st.html(viz.labelled_rows_html(shown))
