"""The dashboard's dataset choice: TOFU-mini's runs, data and launcher folders replace the
built-in benchmark's."""

from __future__ import annotations

import types

import pytest
import streamlit as st
from apptest import html_with, open_app, point_app_at
from conftest import SAMPLE
from fake_runs import write_fake_run, write_fake_runs

from atwu_core.data.schema import Benchmark, QAItem, Span, save_benchmark

TOFU_MINI = "TOFU-mini (real TOFU text)"
ANSWER = "Basil Mahfouz Al-Kuwaiti was born in Kuwait City."


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """Built-in: two fake runs and a fake benchmark; TOFU-mini: one run and a one-row benchmark."""
    write_fake_runs(tmp_path / "runs", methods=("atwu", "wga"))
    point_app_at(monkeypatch, tmp_path, tmp_path / "runs")
    tofu = tmp_path / "tofu"
    write_fake_run(tofu / "runs", "npo", run_id="tofu-npo")
    row = QAItem(
        id="forget01-0000",
        author_id=198,
        author="Basil Mahfouz Al-Kuwaiti",
        question="Where was Basil Mahfouz Al-Kuwaiti born?",
        answer=ANSWER,
        spans=[Span(0, 24, "name")],
    )
    save_benchmark(tofu / "benchmark", Benchmark([row], [], [], [], {"source": "tofu-mini"}))
    monkeypatch.setenv("ATWU_TOFU_MINI_DIR", str(tofu))
    yield types.SimpleNamespace(root=tmp_path, tofu=tofu, new=tmp_path / "new")
    st.cache_data.clear()


def switch(at, dataset: str):
    at.sidebar.radio(key="dataset").set_value(dataset).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_switching_to_tofu_mini_moves_runs_data_and_launcher(lab):
    at = open_app("Data")
    assert at.sidebar.radio(key="dataset").value == "Built-in benchmark"
    builtin_runs = at.multiselect(key="selected_runs").value
    assert len(builtin_runs) == 2
    at.multiselect(key="selected_runs").set_value(builtin_runs[:1]).run()
    at = switch(at, TOFU_MINI)
    # Widgets holding a dataset's folders are keyed per dataset (the browser keeps a widget's
    # value across reruns: one widget for both would send the built-in folders back).
    assert at.text_area(key="runs_dirs_tofu_mini").value == str(lab.tofu / "runs")
    tofu_run = str(lab.tofu / "runs" / "tofu-npo")
    assert at.multiselect(key="selected_runs_tofu_mini").value == [tofu_run]
    files = ["forget.jsonl", "holdout.jsonl", "retain.jsonl", "world_facts.jsonl"]
    assert at.selectbox(key="data_file_tofu_mini").options == files
    html = html_with(at, "Kuwait City")
    assert 'title="name">Basil Mahfouz Al-Kuwaiti</mark>' in html
    at.session_state["view"] = "New run"
    at.run()
    assert at.text_input(key="exp_model_tofu_mini").value == str(lab.tofu / "models" / "full")
    assert at.text_input(key="exp_data_tofu_mini").value == str(lab.tofu / "benchmark")
    assert any(str(lab.new / "tofu_mini") in c.value for c in at.caption)
    at.session_state["view"] = "Token view"
    at.run()
    assert at.selectbox(key="tv_run").value == "npo"  # the TOFU-mini run, not a built-in one
    # Back: the built-in folders and runs return.
    at = switch(at, "Built-in benchmark")
    assert at.multiselect(key="selected_runs").value == builtin_runs
    assert at.selectbox(key="tv_run").value == "atwu"


@pytest.mark.skipif(
    not (SAMPLE / "tofu_mini" / "runs").is_dir(),
    reason="sample_data/tofu_mini/runs missing: see docs/RESULTS.md, TOFU-mini",
)
def test_committed_tofu_mini_runs_and_text(lab, monkeypatch):
    monkeypatch.delenv("ATWU_TOFU_MINI_DIR")  # the defaults of a fresh clone
    monkeypatch.chdir(lab.root)
    at = switch(open_app("Generations"), TOFU_MINI)
    sidebar = at.multiselect(key="selected_runs_tofu_mini")
    labels = {sidebar.format_func(p) for p in sidebar.value}
    assert {"atwu", "grad_diff", "npo", "full model (before)", "retain model (target)"} <= labels
    # Real TOFU text, forget spans outlined, generations of the full model beside the answer.
    html = html_with(at, "True answer")
    assert "full model (before)</" in html and "<mark" in html
    at.session_state["view"] = "Data"
    at.run()
    assert "Basil Mahfouz Al-Kuwaiti" in set(at.dataframe[0].value["author"])


SMOLLM2 = "TOFU-mini on SmolLM2-135M"


def test_the_smollm2_dataset_lists_its_runs_on_tofu_minis_rows(lab, monkeypatch):
    """Third dataset: its own runs folder, TOFU-mini's benchmark (same rows and spans), and a
    launcher that names the command building its (uncommitted) models and uses LoRA."""
    smol = lab.root / "smol"
    write_fake_run(smol / "runs", "satimp", run_id="smol-satimp")
    monkeypatch.setenv("ATWU_SMOLLM2_DIR", str(smol))
    monkeypatch.setenv("ATWU_SMOLLM2_MODEL_DIR", str(lab.root / "no-such-model"))
    at = switch(open_app("Data"), SMOLLM2)
    assert at.query_params["dataset"] == "smollm2"
    assert at.text_area(key="runs_dirs_smollm2").value == str(smol / "runs")
    assert any("no TOFU evaluation" in c.value for c in at.sidebar.caption)
    assert at.multiselect(key="selected_runs_smollm2").value == [str(smol / "runs" / "smol-satimp")]
    assert 'title="name">Basil Mahfouz Al-Kuwaiti</mark>' in html_with(at, "Kuwait City")
    at.session_state["view"] = "New run"
    at.run()
    assert at.text_input(key="exp_data_smollm2").value == str(lab.tofu / "benchmark")
    assert any(str(lab.new / "smollm2") in c.value for c in at.caption)
    at.button(key="exp_start").click().run()
    error = " ".join(e.value for e in at.error)
    assert "no-such-model" in error and "atwu prepare --base smollm2" in error
    # The other datasets keep their own runs.
    at = switch(at, TOFU_MINI)
    assert at.multiselect(key="selected_runs_tofu_mini").value == [
        str(lab.tofu / "runs" / "tofu-npo")
    ]


@pytest.mark.skipif(
    not (SAMPLE / "tofu_mini_smollm2" / "runs").is_dir(),
    reason="sample_data/tofu_mini_smollm2/runs missing: see its README.md",
)
def test_committed_smollm2_runs_open_in_the_token_view(lab, monkeypatch):
    monkeypatch.delenv("ATWU_TOFU_MINI_DIR")  # the defaults of a fresh clone
    monkeypatch.chdir(lab.root)
    at = switch(open_app("Token view"), SMOLLM2)
    sidebar = at.multiselect(key="selected_runs_smollm2")
    labels = {sidebar.format_func(p) for p in sidebar.value}
    assert labels == {"atwu", "atwu_frozen", "oracle_saturated", "wga", "satimp", "npo"}
    # A TOFU-mini forget question, and SmolLM2's tokens of its answer, coloured by weight.
    assert "Question:" in html_with(at, "atwu-question")
    assert html_with(at, 'class="atwu-tok')
