"""The catalogue of bad inputs and faults: each is one line naming what and where, the exit
code says usage error (2), failure (1) or interruption (130), no traceback, and run folders never
stay at "running"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from atwu_core import compare as compare_mod
from atwu_core import train
from atwu_core.cli import main
from atwu_core.runs import load_run, read_info

REPO = Path(__file__).resolve().parents[1]


def lab(tiny_lab, runs_dir) -> list[str]:
    return ["--model", str(tiny_lab.model_dir), "--data", str(tiny_lab.bench_dir),
            "--runs-dir", str(runs_dir), "--batch-size", "4"]  # fmt: skip


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    return errors[0]


def run_dirs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir()] if folder.exists() else []


# ----------------------------------------------------------------------------- usage errors


def usage_cases(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "a_file").write_text("x")
    (tmp / "empty_model").mkdir()
    bench = tmp / "empty_bench"
    bench.mkdir()
    (bench / "forget.jsonl").write_text("")
    (bench / "retain.jsonl").write_text("{}\n")
    return [
        (["unlearn", "--set", "beta=inf"], "--set beta=inf: must be a finite number"),
        (["unlearn", "--lr", "inf"], "--lr must be a finite number > 0, got inf"),
        (["unlearn", "--device", "cuda"], "--device cuda: this torch"),
        (["unlearn", "--runs-dir", str(tmp / "a_file")], f"--runs-dir {tmp / 'a_file'} is a file"),
        (["unlearn", "--runs-dir", "/proc/no/runs"], "--runs-dir /proc/no/runs is not writable"),
        (["unlearn", "--model", str(tmp / "empty_model")], "the folder has no config.json"),
        (["unlearn", "--data", str(bench)], f"{bench / 'forget.jsonl'} is empty"),
        (["compare", "--seeds", "a"], "--seeds expects comma-separated integers, got 'a'"),
        (
            ["compare", "--methods", "wga", "--sweep", "beta=1,inf"],
            "hyperparameter beta='inf' must be a finite number",
        ),
        (["prepare", "--out", str(REPO / "sample_data")], "already holds benchmark/ and models/"),
    ]


@pytest.mark.parametrize("case", range(10))
def test_usage_errors_are_one_line_exit_2_and_write_nothing(tiny_lab, tmp_path, capsys, case):
    argv, message = usage_cases(tmp_path)[case]
    if "--device" in argv:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    runs = tmp_path / "runs"
    defaults = lab(tiny_lab, runs) if argv[0] != "prepare" else []
    # The case's own option comes last and wins over the lab default.
    assert main([argv[0], *defaults, *argv[1:]]) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"atwu {argv[0]}: error: ") and message in line, line
    assert run_dirs(runs) == []


def test_checks_run_before_torch_is_imported(tmp_path):
    """Model path, data and runs folder are checked in a second, before torch loads."""
    (tmp_path / "empty_model").mkdir()
    code = (
        "import sys; from atwu_core.cli import main; "
        f"rc = main(['unlearn', '--model', {str(tmp_path / 'empty_model')!r}]); "
        "print(rc, 'torch' in sys.modules)"
    )
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert "no config.json" in done.stderr and "Traceback" not in done.stderr
    assert time.perf_counter() - t < 10


def test_broken_run_json_fails_eval_at_once(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{not json")
    import atwu_core.model

    monkeypatch.setattr(atwu_core.model, "load_model", lambda *a, **k: pytest.fail("loaded"))
    t = time.perf_counter()
    assert main(["eval", str(run)]) == 2
    assert time.perf_counter() - t < 1.0
    line = one_line_error(capsys)
    assert f"{run / 'run.json'}: corrupted JSON" in line


# ----------------------------------------------------------------------------- failures


def test_non_finite_loss_is_one_line_exit_1_and_the_run_failed(tiny_lab, tmp_path, capsys):
    argv = ["unlearn", "--method", "grad_diff", "--max-steps", "6", "--lr", "1e6", "--no-conflict"]
    assert main(argv + lab(tiny_lab, tmp_path)) == 1
    line = one_line_error(capsys)
    assert "non-finite loss at step" in line and "--debug shows the traceback" in line
    (run,) = run_dirs(tmp_path)
    info = read_info(run)
    assert info["status"] == "failed" and "non-finite loss" in info["reason"]


def test_debug_shows_the_traceback(tiny_lab, tmp_path):
    argv = ["unlearn", "--method", "grad_diff", "--max-steps", "6", "--lr", "1e6", "--no-conflict"]
    with pytest.raises(FloatingPointError):
        main([*argv, *lab(tiny_lab, tmp_path), "--debug"])
    with pytest.raises(ValueError, match="--lr must be"):
        main(["--debug", "unlearn", "--lr", "inf", *lab(tiny_lab, tmp_path)])


def test_data_model_mismatch_warns_once(tiny_lab, tmp_path, capsys, monkeypatch):
    """At step 0 the model knows few forget tokens (e.g. the sample model on TOFU): a warning."""
    monkeypatch.setattr(train, "MISMATCH_ACC", 1.01)  # the tiny model is below 100 %
    argv = ["unlearn", "--method", "grad_diff", "--max-steps", "1", "--no-conflict"]
    assert main(argv + lab(tiny_lab, tmp_path)) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "was --model" in warnings[0] and "trained on --data" in err
    (run,) = run_dirs(tmp_path)
    assert read_info(run)["warning"] == warnings[0]


def test_progress_names_the_start_up_phases_and_evaluation(tiny_lab, tmp_path, capsys):
    argv = ["unlearn", "--method", "grad_diff", "--max-steps", "1", "--eval"]
    assert main(argv + lab(tiny_lab, tmp_path)) == 0
    err = capsys.readouterr().err
    phases = ["loading data", "loading model", "retain conflicts", "first snapshot",
              "evaluating the unlearned model", "evaluate: forget"]  # fmt: skip
    where = [err.find(p) for p in phases]
    assert all(w >= 0 for w in where) and where == sorted(where), err


# ----------------------------------------------------------------------------- interruptions


def test_cancel_file_stops_training_as_interrupted(tiny_lab, tmp_path, capsys, monkeypatch):
    cancel = tmp_path / "job.cancel"
    cancel.write_text("")
    monkeypatch.setenv("ATWU_CANCEL_FILE", str(cancel))
    argv = ["unlearn", "--method", "grad_diff", "--max-steps", "20", "--no-conflict"]
    assert main(argv + lab(tiny_lab, tmp_path / "runs")) == 130
    (run,) = run_dirs(tmp_path / "runs")
    info = read_info(run)
    assert info["status"] == "interrupted" and info["steps_done"] == 1
    assert f"cancel file {cancel}" in info["reason"]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("where", ["evaluation", "saving"])
def test_interrupt_during_evaluation_or_saving_ends_interrupted(
    tiny_lab, tmp_path, capsys, monkeypatch, where
):
    import atwu_core.evaluation.protocol
    import atwu_core.model

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt("interrupted (SIGINT)")

    target = (atwu_core.evaluation.protocol, "evaluate_run") if where == "evaluation" else (
        atwu_core.model, "save_model")  # fmt: skip
    monkeypatch.setattr(*target, interrupt)
    argv = ["unlearn", "--method", "grad_diff", "--max-steps", "1", "--eval", "--save-model"]
    assert main(argv + lab(tiny_lab, tmp_path)) == 130
    assert "Traceback" not in capsys.readouterr().err
    (run,) = run_dirs(tmp_path)
    info = read_info(run)
    assert info["status"] == "interrupted" and info["reason"] == "interrupted (SIGINT)"


def test_sigint_reaches_a_run_started_with_sigint_ignored(tiny_lab, tmp_path):
    """A background job inherits SIGINT as ignored; the CLI installs its handler anyway."""
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "atwu_core.cli", "unlearn", "--method", "grad_diff",
           "--max-steps", "100000", "--no-conflict", *lab(tiny_lab, runs)]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        found = run_dirs(runs)
        if found and read_info(found[0]).get("steps_done", 0) > 0:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the run did not start: " + proc.communicate()[1][-2000:])
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    info = read_info(found[0])
    assert info["status"] == "interrupted" and "SIGINT" in info["reason"]
    assert "interrupted: " in out


def interrupt_second_run(monkeypatch, tmp_path):
    """The second `unlearn` of a compare sees the dashboard's cancel file after its first step."""
    real, calls = train.unlearn, []
    cancel = tmp_path / "cancel"
    monkeypatch.setenv("ATWU_CANCEL_FILE", str(cancel))

    def unlearn(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            cancel.write_text("")
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "unlearn", unlearn)


def test_compare_stops_as_a_whole_and_keeps_what_finished(tiny_lab, tmp_path, capsys, monkeypatch):
    interrupt_second_run(monkeypatch, tmp_path)
    runs = tmp_path / "runs"
    argv = ["compare", "--methods", "grad_diff", "--seeds", "0,1,2", "--max-steps", "2"]
    assert main(argv + lab(tiny_lab, runs)) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "interrupted during run 2/3 (grad_diff seed=1" in err and "not counted" in err
    assert "1 finished run(s)" in err
    board = pd.read_csv(runs / "leaderboard.csv")
    assert list(board["seed"]) == [0] and list(board["status"]) == ["finished"]
    statuses = sorted(read_info(p)["status"] for p in run_dirs(runs))
    assert statuses == ["finished", "interrupted"]  # the third run never started


def test_compare_interrupted_in_the_reference_phase_writes_the_leaderboard(
    tiny_lab, tmp_path, capsys, monkeypatch
):
    def interrupt(base):
        raise KeyboardInterrupt("interrupted (SIGTERM)")

    monkeypatch.setattr(compare_mod, "reference_evals", interrupt)
    runs = tmp_path / "runs"
    argv = ["compare", "--methods", "grad_diff", "--seeds", "0", "--max-steps", "1"]
    assert main(argv + lab(tiny_lab, runs)) == 130
    err = capsys.readouterr().err
    assert "interrupted during the reference phase" in err and "Traceback" not in err
    board = pd.read_csv(runs / "leaderboard.csv")
    assert list(board["method"]) == ["grad_diff"]
    assert not (runs / "reference-full").exists()


def test_compare_counts_runs_and_reference_models_apart(tiny_lab, tmp_path, capsys):
    argv = ["compare", "--methods", "grad_diff", "--seeds", "0,1", "--max-steps", "1"]
    argv += ["--retain-model", str(tiny_lab.retain_model_dir)]
    assert main(argv + lab(tiny_lab, tmp_path)) == 0
    out = capsys.readouterr().out
    assert "2 finished run(s) + 2 reference models (full, retain)" in out


# ----------------------------------------------------------------------------- atwu eval


def test_eval_merges_into_eval_json_and_uses_the_recorded_reference(tiny_lab, tmp_path, capsys):
    argv = ["unlearn", "--method", "atwu", "--max-steps", "2", "--eval", "--save-model"]
    argv += ["--retain-model", str(tiny_lab.retain_model_dir)]
    assert main(argv + lab(tiny_lab, tmp_path)) == 0
    (run_dir,) = run_dirs(tmp_path)
    before = load_run(run_dir).eval
    kept = [k for k in before["metrics"] if k.startswith("span/")]
    kept += ["forget_quality", "run/seconds", "forget/span_token_acc"]
    capsys.readouterr()
    assert main(["eval", str(run_dir)]) == 0  # no --data, no --retain-model: the run's own
    after = load_run(run_dir).eval
    assert after["reference_model"] == str(tiny_lab.retain_model_dir)
    for key in kept:
        assert key in after["metrics"], key
    assert after["metrics"]["run/seconds"] == before["metrics"]["run/seconds"]
    fq = after["metrics"]["forget_quality"]["agg_value"]
    assert fq == pytest.approx(before["metrics"]["forget_quality"]["agg_value"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["forget_quality"] == pytest.approx(fq, abs=1e-4)


# ----------------------------------------------------------------------------- atwu prepare


def test_prepare_writes_a_new_folder_and_refuses_to_overwrite(tmp_path, capsys, monkeypatch):
    from atwu_core import prepare as prep

    outs = []
    monkeypatch.setattr(prep, "prepare", lambda out, **kw: outs.append(out) or pytest.skip())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old" / "benchmark").mkdir(parents=True)
    (tmp_path / "old" / "benchmark" / "meta.json").write_text("{}")
    assert main(["prepare", "--out", "old"]) == 2
    assert "--out old already holds benchmark/; pass --force" in one_line_error(capsys)
    assert (tmp_path / "old" / "benchmark" / "meta.json").read_text() == "{}"
    with pytest.raises(pytest.skip.Exception):
        main(["prepare"])
    assert outs == ["prepared"]


@pytest.mark.slow
def test_prepare_twice_gives_identical_models(tmp_path):
    """Same machine, same torch: byte-identical model files (toy size, ~30 s each)."""
    toy = ["--hidden-size", "32", "--intermediate", "64", "--epochs", "2", "--authors", "4",
           "--forget-fraction", "0.25", "--vocab-size", "400"]  # fmt: skip
    for name in ("a", "b"):
        assert main(["prepare", "--out", str(tmp_path / name), *toy]) == 0
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    files = [f for f in files if f.name != "prepare_report.json"]  # timings differ
    assert any(f.name == "model.safetensors" for f in files)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
