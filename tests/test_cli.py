"""The `atwu` command line, end to end on the tiny lab (subprocess-free: `main(argv)`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from atwu_core.cli import main, parse_sets
from atwu_core.compare import parse_sweep, plan
from atwu_core.methods import REGISTRY
from atwu_core.runs import list_runs, load_run


def lab_args(lab, runs_dir) -> list[str]:
    return [
        "--model",
        str(lab.model_dir),
        "--data",
        str(lab.bench_dir),
        "--runs-dir",
        str(runs_dir),
        "--batch-size",
        "4",
    ]


def test_methods_json_lists_every_method_with_defaults(capsys):
    assert main(["methods", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    table = out["methods"]
    assert len(out["source_hash"]) == 16
    assert {row["name"] for row in table} == set(REGISTRY)
    atwu = next(row for row in table if row["name"] == "atwu")
    assert atwu["hparams"]["beta"] == 5.0
    assert atwu["scorer"]["lambda_p"] == 10.0 and atwu["scorer"]["update_every"] == 5


def test_unlearn_writes_a_run_and_prints_its_folder(tiny_lab, tmp_path, capsys):
    argv = ["unlearn", "--method", "atwu", "--set", "beta=3", "--max-steps", "2"]
    assert main(argv + lab_args(tiny_lab, tmp_path)) == 0
    out = capsys.readouterr().out
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"finished: {run_dir}" in out
    run = load_run(run_dir)
    assert run.info["config"]["hparams"]["beta"] == 3.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["unlearn", "--method", "atwoo"], "unknown method 'atwoo'; available:"),
        (["unlearn", "--set", "betta=2"], "no hyperparameter betta; allowed: beta=5.0"),
        (["unlearn", "--set", "beta=high"], "beta='high' is not a valid float"),
        (["unlearn", "--set", "beta"], "--set expects name=value"),
        (["unlearn", "--model", "no/such/model"], "does not exist"),
        (["compare", "--sweep", "beta"], "--sweep expects name=v1,v2"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(tiny_lab, tmp_path, capsys, argv, message):
    extra = [] if "--model" in argv else ["--model", str(tiny_lab.model_dir)]
    assert main([*argv, *extra, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tofu-dir", "x"], "--tofu-dir is only read by --preset tofu-mini"),
        (["--preset", "tofu-mini", "--authors", "5"], "--authors, --forget-fraction and"),
        (["--preset", "tofu-mini", "--bench-seed", "3"], "--bench-seed shape the built-in"),
        (["--preset", "tofu-mini", "--tofu-dir", "/no/such/tofu"], "/no/such/tofu does not exist"),
    ],
)
def test_prepare_preset_mistakes_fail_before_writing(tmp_path, capsys, argv, message):
    assert main(["prepare", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_prepare_bench_seed_draws_the_benchmark_and_seed_the_models(tmp_path, monkeypatch):
    """`--bench-seed` reaches generate_benchmark, `--seed` the training config; both reported."""
    from atwu_core import prepare as prep

    seen = {}

    def fake_build_models(out_dir, bench, *, seed, ft_cfg, report, **_):
        seen.update(meta=bench.meta, seed=seed, ft_seed=ft_cfg.seed, report=report)
        quality = {f"{m}/{s}/{k}": 1.0 for m in ("full", "retain") for s in ("forget", "retain")
                   for k in ("acc", "exact_match")}  # fmt: skip
        return {"parameters": 1, "quality": quality, "timings": {"t": 0.0}}

    monkeypatch.setattr(prep, "build_models", fake_build_models)
    argv = ["prepare", "--out", str(tmp_path), "--authors", "6", "--forget-fraction", "0.34"]
    assert main([*argv, "--bench-seed", "3", "--seed", "5"]) == 0
    assert seen["meta"]["seed"] == 3 and seen["report"]["bench_seed"] == 3
    assert seen["seed"] == seen["ft_seed"] == 5
    assert seen["report"]["generator_version"] == 2
    from atwu_core.data.benchmark import generate_benchmark

    assert generate_benchmark(n_authors=6, forget_fraction=0.34, seed=3).meta == seen["meta"]
    assert main([*argv, "--seed", "5"]) == 0
    assert seen["meta"]["seed"] == 0 and seen["seed"] == 5  # the bench seed defaults to 0


def test_parse_helpers():
    assert parse_sets(["beta=5", "saturation = plain"]) == {"beta": "5", "saturation": "plain"}
    assert parse_sweep("beta=1, 2,5") == ("beta", ["1", "2", "5"])
    assert parse_sweep(None) is None
    assert plan(["a", "b"], [0, 1], ("beta", ["1", "2"])) == [
        ("a", 0, {"beta": "1"}),
        ("a", 1, {"beta": "1"}),
        ("a", 0, {"beta": "2"}),
        ("a", 1, {"beta": "2"}),
        ("b", 0, {"beta": "1"}),
        ("b", 1, {"beta": "1"}),
        ("b", 0, {"beta": "2"}),
        ("b", 1, {"beta": "2"}),
    ]


def test_compare_evaluates_and_writes_the_leaderboard(tiny_lab, tmp_path, capsys):
    argv = ["compare", "--methods", "atwu,wga", "--seeds", "0", "--max-steps", "2"]
    assert main(argv + lab_args(tiny_lab, tmp_path)) == 0
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert list(board["method"]) == [
        "full model (before)",
        "retain model (target)",
        "atwu",
        "wga",
    ]
    ref = board.set_index("method")
    # The retain model is the target: identical truth-ratio distribution, forget quality 1.
    assert ref.loc["retain model (target)", "forget_quality"] == pytest.approx(1.0)
    assert ref.loc["full model (before)", "forget_quality"] < 0.05
    assert board.loc[2:, "model_utility"].between(0, 1).all()
    assert board.loc[2:, "span/auroc"].notna().all()
    md = (tmp_path / "leaderboard.md").read_text()
    assert "| atwu" in md and "forget_quality" in md
    listed = list_runs(tmp_path)
    assert sorted(listed["method"]) == ["atwu", "full", "retain", "wga"]
    full = load_run(tmp_path / "reference-full")
    assert full.eval["generations"], "the reference run carries the full model's answers"


def test_eval_on_a_run_without_a_model_says_how_to_fix_it(tiny_lab, tmp_path, capsys):
    argv = ["unlearn", "--method", "grad_diff", "--max-steps", "1"]
    assert main(argv + lab_args(tiny_lab, tmp_path)) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--data", str(tiny_lab.bench_dir)]) == 2
    assert "has no saved model" in capsys.readouterr().err


def test_eval_on_a_saved_run_attaches_eval_json(tiny_lab, tmp_path, capsys):
    argv = ["unlearn", "--method", "grad_diff", "--max-steps", "1", "--save-model"]
    assert main(argv + lab_args(tiny_lab, tmp_path)) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    capsys.readouterr()
    argv = ["eval", str(run_dir), "--data", str(tiny_lab.bench_dir)]
    argv += ["--retain-model", str(tiny_lab.retain_model_dir)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model_utility"] > 0
    run = load_run(run_dir)
    assert run.eval is not None
    assert 0 <= run.eval["metrics"]["forget_quality"]["agg_value"] <= 1


def test_no_conflict_skips_the_retain_conflicts(tiny_lab, tmp_path):
    """`--no-conflict` (for real models: a backward pass per probe token is slow there)."""
    argv = ["unlearn", "--method", "atwu", "--max-steps", "1", "--no-conflict"]
    assert main(argv + lab_args(tiny_lab, tmp_path)) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = load_run(run_dir)
    assert run.info["config"]["conflict"] is False
    assert run.token_weights["conflict"].isna().all()


def test_data_dir_is_the_source_of_tofu_and_rwku_data():
    from atwu_core.data.spec import with_folder

    assert with_folder("tofu:forget10", None) == "tofu:forget10"
    assert with_folder("tofu:forget10", "/d/tofu") == "tofu:forget10@/d/tofu"
    assert with_folder("rwku:first10", "/d/rwku") == "rwku:first10@/d/rwku"
    assert (
        with_folder("rwku:first10#train_positive_phi3", "/d/rwku")
        == "rwku:first10@/d/rwku#train_positive_phi3"
    )
    with pytest.raises(ValueError, match="already names its source"):
        with_folder("tofu:forget10@/x", "/d/tofu")
    with pytest.raises(ValueError, match="--data-dir goes with tofu:<split> or rwku:<subjects>"):
        with_folder("sample_data/benchmark", "/d/tofu")


def test_unlearn_reads_tofu_from_data_dir(tmp_path, capsys):
    missing = tmp_path / "no_tofu_here"
    argv = ["unlearn", "--data", "tofu:forget01", "--data-dir", str(missing)]
    assert main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    assert f"TOFU folder {missing} does not exist" in capsys.readouterr().err


def test_a_closed_pipe_is_not_an_error():
    """`atwu methods | head -1`: the reader leaves early; the command exits 0 and says nothing."""
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-m", "atwu_core.cli", "methods"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()  # before the child writes a byte (it imports torch first)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert b"Broken pipe" not in err and b"error" not in err, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--base", "m", "--benchmark", "b", "--vocab-size", "64"], "--vocab-size shape a tiny"),
        (["--base", "m", "--preset", "tofu-mini", "--benchmark", "b"], "--preset shape a tiny"),
        (["--base", "m"], "--base needs --benchmark DIR"),
        (["--benchmark", "b"], "--benchmark is read with --base"),
    ],
)
def test_prepare_base_mistakes_fail_before_writing(tmp_path, capsys, argv, message):
    assert main(["prepare", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_prepare_base_fine_tunes_a_model_with_lora_and_merges_it(tiny_lab, tmp_path):
    """`--base` starts from an existing model: LoRA adapters train, are merged into an ordinary
    saved model (no adapter keys), the world facts stay out of the training rows, and the
    retain model never sees a forget row."""
    from safetensors.torch import load_file

    from atwu_core import prepare as prep

    out = tmp_path / "pt"
    argv = ["prepare", "--base", str(tiny_lab.model_dir), "--benchmark", str(tiny_lab.bench_dir)]
    assert main([*argv, "--out", str(out), "--epochs", "1", "--lr", "0.01"]) == 0
    report = json.loads((out / "models" / "prepare_report.json").read_text())
    assert report["preset"] == "pretrained" and report["model"]["lora_r"] == 16
    assert report["finetune"]["lr"] == 0.01 and report["trained_on_world_facts"] is False
    bench = prep.load_benchmark(out / "benchmark")
    assert report["train_steps"] == {
        "full": -(-(len(bench.forget) + len(bench.retain)) // 8),
        "retain": -(-len(bench.retain) // 8),
    }
    base = load_file(tiny_lab.model_dir / "model.safetensors")
    tuned = load_file(out / "models" / "full" / "model.safetensors")
    assert tuned.keys() == base.keys()  # merged: no lora_A/lora_B, no peft prefix
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert changed and all("proj" in k for k in changed)  # only LoRA-targeted linears move
    assert 0 <= report["quality"]["full/forget/exact_match"] <= 1
