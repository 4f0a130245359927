"""The committed TOFU-mini sample data (sample_data/tofu_mini): a bf16 checkpoint that really
memorised the real TOFU text, a retain model that never saw the forget authors, and runs the
dashboard opens. All checks are teacher-forced or read files: a few seconds."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE

TOFU_MINI = SAMPLE / "tofu_mini"
pytestmark = pytest.mark.skipif(
    not (TOFU_MINI / "models" / "full" / "model.safetensors").exists(),
    reason="sample_data/tofu_mini missing: run `atwu prepare --preset tofu-mini --tofu-dir DIR`",
)


@pytest.fixture(scope="module")
def bench():
    from atwu_core.data.schema import load_benchmark

    return load_benchmark(TOFU_MINI / "benchmark")


@pytest.fixture(scope="module")
def models():
    from atwu_core.model import load_model

    names = ("full", "retain")
    return {name: load_model(TOFU_MINI / "models" / name, device="cpu") for name in names}


def _acc(model_tok, items):
    from atwu_core.batches import answer_stats, encode_items

    model, tok = model_tok
    return answer_stats(model, encode_items(tok, items), tok.pad_token_id)["acc"]


def test_benchmark_is_the_tofu_slice(bench):
    assert bench.meta["source"] == "tofu-mini"
    sizes = [len(bench.split(s)) for s in ("forget", "retain", "world_facts", "holdout")]
    assert sizes == [40, 200, 117, 40]
    assert {item.author for item in bench.forget} == {"Basil Mahfouz Al-Kuwaiti", "Nikolai Abilov"}
    assert all(item.spans for item in bench.forget)


def test_weights_are_stored_in_bf16_and_load_as_fp32(models):
    import torch
    from safetensors import safe_open

    for name in ("full", "retain"):
        with safe_open(TOFU_MINI / "models" / name / "model.safetensors", "pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118
        assert dtypes == {"BF16"}, name
        model, _ = models[name]
        assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_full_model_memorised_the_tofu_text_after_bf16_rounding(models, bench):
    assert _acc(models["full"], bench.forget) >= 0.98  # measured 1.000
    assert _acc(models["full"], bench.retain[::5]) >= 0.98  # measured 1.000
    assert _acc(models["full"], bench.world_facts) >= 0.98


def test_retain_model_never_learned_the_forget_authors(models, bench):
    assert _acc(models["retain"], bench.retain[::5]) >= 0.98
    assert _acc(models["retain"], bench.forget) < 0.3  # measured 0.108: free text shares little


def test_prepare_report_matches_the_committed_models():
    report = json.loads((TOFU_MINI / "models" / "prepare_report.json").read_text())
    assert report["preset"] == "tofu-mini" and report["save_dtype"] == "bfloat16"
    assert report["model"]["vocab_size"] == 2048 and report["seed"] == 0
    assert report["quality"]["full/forget/exact_match"] >= 0.95
    assert report["quality"]["retain/forget/exact_match"] == 0.0


def test_every_sample_run_opens_and_was_evaluated():
    from atwu_core.runs import load_run

    folders = [p for p in (TOFU_MINI / "runs").iterdir() if p.is_dir()]
    methods = set()
    for path in folders:
        run = load_run(path)
        assert run.status == "finished", path
        assert run.info["config"]["data"] == "sample_data/tofu_mini/benchmark", path
        assert "forget_quality" in run.eval["metrics"], path
        if run.info["config"].get("reference"):
            continue
        assert run.token_weights is not None and len(run.token_weights) > 0, path
        assert "span/auroc" in run.eval["metrics"], path
        methods.add(run.method)
    assert methods >= {"atwu", "grad_diff", "npo", "wga", "satimp"}
    assert {"reference-full", "reference-retain"} <= {p.name for p in folders}


def test_sample_data_stays_under_45_mb():
    size = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    # Three datasets (built-in, TOFU-mini, TOFU-mini on SmolLM2); the models are 23 MB of it.
    assert size < 45e6, f"sample_data holds {size / 1e6:.1f} MB"


def test_committed_spans_are_what_their_recorded_rule_derives(bench):
    """The committed benchmark (and the runs trained on it) keeps the spans it was built with:
    tofu-spans-v1 against all 198 retain authors (meta has no `span_reference`, the state
    before TOFU-mini derived against its own retain authors). Rebuilding with the recorded rule
    must give the committed spans exactly; a newer rule is not silently assumed."""
    import os
    from pathlib import Path

    from atwu_core.data.tofu import SPAN_RULES, derive_forget_spans, load_tofu

    tofu_dir = Path(
        os.environ.get("ATWU_TOFU_DIR", Path(__file__).resolve().parents[2] / "shared/data/tofu")
    )
    if not (tofu_dir / "forget01_perturbed.json").is_file():
        pytest.skip(f"no local TOFU copy at {tofu_dir}")
    rule = {text: short for short, text in SPAN_RULES.items()}[bench.meta["span_rule"]]
    full = load_tofu(tofu_dir, "forget01", span_rule=rule)
    if "span_reference" in bench.meta:  # derived against the retain authors kept here
        expected = derive_forget_spans(full.forget, bench.retain, rule)
    else:  # derived against all of TOFU's retain authors
        expected = full.forget
    assert rule == "v1" and "span_reference" not in bench.meta  # what is committed today
    assert bench.forget == expected


def test_atwu_leaderboard_rebuilds_the_committed_board_from_the_run_folders(tmp_path):
    """`atwu leaderboard DIR` reads every evaluated run in DIR: on a copy of the committed runs it
    writes the board `atwu compare` wrote (plus rows for runs added by later calls)."""
    import shutil

    import pandas as pd

    from atwu_core.cli import main

    copy = tmp_path / "runs"
    shutil.copytree(TOFU_MINI / "runs", copy)
    committed = pd.read_csv(copy / "leaderboard.csv")
    (copy / "leaderboard.csv").unlink()
    assert main(["leaderboard", str(copy)]) == 0
    rebuilt = pd.read_csv(copy / "leaderboard.csv")
    pd.testing.assert_frame_equal(rebuilt.iloc[: len(committed)], committed)
    assert len(rebuilt) == len([p for p in copy.iterdir() if (p / "eval.json").is_file()])
    assert main(["leaderboard", str(tmp_path / "missing")]) == 2
