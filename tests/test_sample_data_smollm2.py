"""The committed SmolLM2 dataset (sample_data/tofu_mini_smollm2): runs of SmolLM2-135M-Instruct
fine-tuned with LoRA on TOFU-mini, unlearned with the same methods as the tiny model's runs. Only
run folders and the fine-tuning report are committed (no model weights): file reads only."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE

SMOL = SAMPLE / "tofu_mini_smollm2"
METHODS = {
    "atwu",
    "atwu[scorer_position=prev,update_every=1,lambda_2=0.01]",
    "atwu_frozen",
    "oracle_saturated",
    "wga",
    "satimp",
    "npo",
}


def test_the_fine_tuned_model_knew_the_forget_authors_and_the_retain_model_did_not():
    report = json.loads((SMOL / "models" / "prepare_report.json").read_text())
    assert report["preset"] == "pretrained" and report["model"]["base"] == "smollm2"
    assert report["model"]["lora_r"] == 16 and report["trained_on_world_facts"] is False
    q = report["quality"]
    assert q["full/forget/acc"] >= 0.99 and q["full/forget/exact_match"] >= 0.95
    assert q["retain/forget/exact_match"] == 0.0 and q["retain/forget/acc"] < 0.7
    assert q["retain/retain/acc"] >= 0.99
    assert not list(SMOL.rglob("*.safetensors")) or all(
        p.stat().st_size < 1e6 for p in SMOL.rglob("*.safetensors")
    )  # scorers only: no model weights committed


def test_every_run_is_finished_evaluated_and_ran_on_tofu_minis_rows_with_lora():
    from atwu_core.compare import leaderboard_row
    from atwu_core.runs import load_run

    folders = [p for p in (SMOL / "runs").iterdir() if p.is_dir()]
    labels = set()
    for path in folders:
        run = load_run(path)
        assert run.status == "finished", path
        assert run.info["config"]["data"] == "sample_data/tofu_mini/benchmark", path
        assert "forget_quality" in run.eval["metrics"], path
        if run.info["config"].get("reference"):
            continue
        assert run.info["config"]["lora_r"] == 16, path
        assert "span/auroc" in run.eval["metrics"], path
        assert run.token_weights is not None and len(run.token_weights) > 0, path
        labels.add(leaderboard_row(path)["method"])
    assert labels == METHODS
    assert {"reference-full", "reference-retain"} <= {p.name for p in folders}
