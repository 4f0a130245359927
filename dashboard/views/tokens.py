"""The first screen: one example's tokens coloured by weight, a row per method, step by step."""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from atwu_core import runs, viz
from dashboard import teaching
from dashboard.loading import dataset_key, preferred_run
from dashboard.state import DEFAULT_SCALE, sync_url
from dashboard.views.common import plot, teach, with_token_weights

# Methods shown next to each other on the first screen, in this order (whichever runs exist):
# ATWU, its two controls (frozen weights g = 0.5; the true span mask), the token-weighting
# baselines. The ground-truth row follows them.
COMPARE_METHODS = (
    "atwu",
    "atwu_frozen",
    "oracle_saturated",
    "wga",
    "satimp",
    "seul",
    "etw",
    "token_unlearn",
)


PLAY_INTERVAL_S = 1.0


def token_view(loaded: dict[str, runs.Run], bench: dict[str, dict]) -> None:
    with_tw = with_token_weights(loaded)
    if not with_tw:
        st.info("None of the selected runs has token weights yet (token_weights.parquet).")
        return
    names = list(with_tw)
    saved = st.session_state.setdefault(dataset_key("_tv_state"), {})
    url_run = st.session_state.pop("_url_run", None)
    if url_run:
        match = next((k for k, r in with_tw.items() if url_run in (r.run_id, k)), None)
        if match:
            st.session_state["tv_run"] = match
        else:
            st.info(f"Run `{url_run}` from the link is not among the selected runs.")
    if st.session_state.get("tv_run") not in names:
        st.session_state["tv_run"] = (
            saved["run"] if saved.get("run") in names else preferred_run(with_tw)
        )
    c1, c2, c3 = st.columns([2, 4, 3])
    label = c1.selectbox("Run", names, key="tv_run")
    run = with_tw[label]
    tw = run.token_weights
    examples = sorted(tw["example_id"].unique())
    questions = _questions(tw, bench)
    if st.session_state.get("tv_example") not in examples:
        st.session_state["tv_example"] = (
            saved["example"] if saved.get("example") in examples else default_example(tw)
        )
    example = c2.selectbox(
        "Example",
        examples,
        key="tv_example",
        format_func=lambda e: f"{e}: {questions[e]}" if e in questions else e,
    )
    if st.session_state.get("tv_scale") not in viz.SCALES:
        # Per row by default: ATWU's weights sit in a narrow band (0.3-0.6), which one absolute
        # scale paints a single colour; the legend names the scale in use.
        st.session_state["tv_scale"] = DEFAULT_SCALE
    scale = c3.radio(
        "Colour scale",
        list(viz.SCALES),
        key="tv_scale",
        format_func=lambda s: {"absolute": "absolute 0–1", "row": "per row", "diverging": "±0.5"}[
            s
        ],
        horizontal=True,
        help="Absolute: weight 0 → pale, 1 → dark, the same for every row. Per row: each row's "
        "lowest weight pale, highest dark (shows a method's ranking even when its weights sit in "
        "a narrow band). ±0.5: orange below 0.5, white at 0.5 (ATWU's starting weight and the "
        "frozen control's), purple above.",
    )
    steps = sorted(int(s) for s in tw.loc[tw["example_id"] == example, "step"].unique())
    # Keep "last step" across a run or example switch; otherwise the nearest earlier snapshot.
    if saved.get("at_last") and (saved.get("run"), saved.get("example")) != (label, example):
        st.session_state["tv_step"] = steps[-1]
    elif st.session_state.get("tv_step") not in steps:
        wanted = st.session_state.get("tv_step", saved.get("step"))
        st.session_state["tv_step"] = (
            viz.nearest_snapshot(steps, int(wanted)) if isinstance(wanted, int) else steps[-1]
        )
    has_example = [k for k, r in with_tw.items() if example in set(r.token_weights["example_id"])]
    default = comparison_runs(label, has_example, with_tw)
    # A new run or example resets the rows to the default; otherwise keep the user's pick.
    if st.session_state.get("_tv_compare_for") != (label, example):
        st.session_state["_tv_compare_for"] = (label, example)
        st.session_state["tv_compare"] = default
    compare = [k for k in st.session_state["tv_compare"] if k in has_example]
    truth = viz.example_tokens(tw, example, steps[0])
    shared: set[int] = set()
    row = bench.get(example, {})
    if example in questions and row.get("shared_spans"):
        shared = viz.shared_positions(truth, row["shared_spans"])
    playing = bool(st.session_state.get("tv_playing"))
    fragment = st.fragment(_comparison, run_every=PLAY_INTERVAL_S if playing else None)
    fragment(
        playing,
        {k: with_tw[k] for k in compare},
        label,
        example,
        steps,
        scale,
        truth,
        shared,
        questions.get(example),
    )
    teach("token")
    about = teaching.METHODS.get(run.method)
    about = f"**{run.method}**: {about} " if about else ""
    st.caption(f"{about}Run id `{run.run_id}`.")
    with st.expander("Rows shown (methods to compare)"):
        st.multiselect("Runs to compare", has_example, key="tv_compare")
        st.caption(teaching.VIEWS["side_by_side"])

    st.subheader("All probe examples at this step")
    teach("heatmap")
    step = viz.nearest_snapshot(sorted(int(s) for s in tw["step"].unique()), _tv_step(steps))
    plot(viz.weights_heatmap(tw, step), "tv_heatmap")


def _tv_step(steps: list[int]) -> int:
    step = st.session_state.get("tv_step")
    return step if step in steps else steps[-1]


def _toggle_play(steps: list[int]) -> None:
    """Play / pause; play from the first snapshot when the slider is at the last."""
    playing = not st.session_state.get("tv_playing", False)
    st.session_state["tv_playing"] = playing
    if playing:
        st.session_state["_tv_play_fresh"] = True
        if st.session_state.get("tv_step") == steps[-1]:
            st.session_state["tv_step"] = steps[0]


def _comparison(
    declared_playing: bool,
    compared: dict[str, runs.Run],
    label: str,
    example: str,
    steps: list[int],
    scale: str,
    truth: pd.DataFrame,
    shared: set[int],
    question: str | None,
) -> None:
    """Play control, step slider and the comparison rows: a fragment, re-run every
    PLAY_INTERVAL_S while playing (one snapshot further each time) without the rest of the page."""
    playing = bool(st.session_state.get("tv_playing"))
    if playing != declared_playing:  # play/pause pressed: the timer is set by a full run
        st.rerun(scope="app")
    if playing and not st.session_state.pop("_tv_play_fresh", False):
        now = _tv_step(steps)
        later = [s for s in steps if s > now]
        if later:
            st.session_state["tv_step"] = later[0]
        if len(later) <= 1:
            st.session_state["tv_playing"] = False  # the last snapshot: stop at the next tick
    c1, c2 = st.columns([1, 7], vertical_alignment="bottom")
    c1.button(
        "Pause" if playing else "Play",
        icon=":material/pause:" if playing else ":material/play_arrow:",  # a bundled icon font
        key="tv_play",
        on_click=_toggle_play,
        args=(steps,),
        help="Replay training: one snapshot every second, all rows at the same step.",
        width="stretch",
    )
    if len(steps) > 1:
        step = c2.select_slider(
            "Snapshot (training step)",
            options=steps,
            key="tv_step",
            help="Every row shows this step (or its run's nearest earlier snapshot): "
            "0 = before unlearning.",
        )
    else:
        step = steps[0]
        c2.caption(f"One snapshot only, at step {step}.")
    if question:
        # (on narrow screens the example box above already shows it: hidden to save a row)
        st.html(
            f'<div class="atwu-question" style="font-size:1.1em"><b>Question:</b> '
            f"{html.escape(question)}</div>"
        )
    rows = []
    for k, r in compared.items():
        rtw = r.token_weights
        own = sorted(int(s) for s in rtw.loc[rtw["example_id"] == example, "step"].unique())
        shown = viz.nearest_snapshot(own, step)
        frame = viz.example_tokens(rtw, example, shown)
        note = f"step {shown}" if shown == step else f"step {shown}: its nearest snapshot"
        rows.append(
            {
                "label": k,
                "method": r.method,
                "tokens": frame,
                "note": note,
                "auroc": viz.example_auroc(frame),
            }
        )
    body = viz.comparison_html(rows, truth, scale=scale, shared=shared)
    st.html(body)
    saved = st.session_state.setdefault(dataset_key("_tv_state"), {})
    saved.update(run=label, example=example, step=step, at_last=step == steps[-1])
    sync_url()
    page = viz.standalone_html(body, f"ATWU token view: {label}, {example}, step {step}")
    st.download_button(
        "Download this comparison (HTML)",
        page,
        file_name=f"token-view-{label}-{example}-step{step}.html",
        mime="text/html",
        key="tv_download",
    )


def comparison_runs(label: str, candidates: list[str], loaded: dict[str, runs.Run]) -> list[str]:
    """The rows of the first screen: the chosen run, then one run of each COMPARE_METHODS
    method (the same seed as the chosen run when there is one, else the committed/oldest)."""
    picked = [label]
    seed = loaded[label].info.get("config", {}).get("seed")
    for method in COMPARE_METHODS:
        if method == loaded[label].method:
            continue
        same = [k for k in candidates if loaded[k].method == method]
        if not same:
            continue
        same.sort(key=lambda k: (loaded[k].info.get("config", {}).get("seed") != seed, k))
        picked.append(same[0])
    return picked


def default_example(tw: pd.DataFrame) -> str:
    """The probe example with the most kinds of fact (the richest row to look at)."""
    first = tw[tw["step"] == tw["step"].min()]
    if "span_field" in first.columns:
        counts = first[first["in_span"].astype(bool)].groupby("example_id")["span_field"].nunique()
        if len(counts):
            best = counts.max()
            return str(sorted(e for e, n in counts.items() if n == best)[0])
    return str(sorted(tw["example_id"].unique())[0])


def _questions(tw: pd.DataFrame, bench: dict[str, dict]) -> dict[str, str]:
    """Benchmark questions of the probe examples whose answer really is the tokens' text."""
    first = tw[tw["step"] == tw["step"].min()]
    return {
        str(e): str(bench[e].get("question", ""))
        for e, rows in first.groupby("example_id")
        if e in bench and viz.tokens_match_text(rows, str(bench[e].get("answer", "")))
    }
