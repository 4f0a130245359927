"""The committed SmolLM2 dataset (sample_data/tofu_mini_smollm2): runs of SmolLM2-135M-Instruct
fine-tuned with LoRA on TOFU-mini, unlearned with the same methods as the tiny model's runs. Only
run folders and the fine-tuning report are committed (no model weights): file reads only."""

from __future__ import annotations

import json

from conftest import SAMPLE

SMOL = SAMPLE / "tofu_mini_smollm2"
METHODS = {"atwu", "atwu_frozen", "oracle_saturated", "wga", "satimp", "npo"}


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


def test_every_run_finished_its_50_steps_on_tofu_minis_rows_with_lora():
    """Training runs without a TOFU evaluation (cut for time, docs/RESULTS.md "SmolLM2"): the
    last snapshot's accuracies and the forget set's weights before and after are there."""
    from atwu_core.runs import FORGET_WEIGHTS, load_run, read_token_weights

    folders = [p for p in (SMOL / "runs").iterdir() if p.is_dir()]
    methods = set()
    for path in folders:
        run = load_run(path)
        config = run.info["config"]
        assert run.status == "finished" and run.info["steps_done"] == 50, path
        assert config["data"] == "sample_data/tofu_mini/benchmark", path
        assert config["lora_r"] == 16 and config["lr"] == 5e-3 and config["seed"] == 0, path
        assert not (path / "adapter").exists(), path  # 20 MB each: not committed
        last = json.loads((path / "metrics.jsonl").read_text().splitlines()[-1])
        assert last["step"] == 50 and 0 <= last["forget/acc"] <= 1 and last["retain/acc"] > 0.9
        steps = set(read_token_weights(path, FORGET_WEIGHTS)["step"])
        assert steps == {0, 50}, path
        methods.add(run.method)
    assert methods == METHODS
