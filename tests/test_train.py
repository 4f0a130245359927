"""Fine-tuning and unlearning loops on a tiny model: every method, failures, cancels."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from atwu_core.batches import answer_stats, encode_items
from atwu_core.config import FinetuneConfig, TinyModelConfig, UnlearnConfig
from atwu_core.data.schema import load_benchmark
from atwu_core.finetune import finetune
from atwu_core.methods import REGISTRY, MethodOutput
from atwu_core.model import build_tiny_model, train_tokenizer
from atwu_core.prepare import corpus_texts
from atwu_core.run_setup import split_hparams
from atwu_core.runs import load_run
from atwu_core.train import unlearn


def config(lab, method: str, **kw) -> UnlearnConfig:
    base = {"model": str(lab.model_dir), "data": str(lab.bench_dir), "batch_size": 4}
    return UnlearnConfig(method=method, **(base | kw))


def test_finetune_lowers_answer_loss(tiny_lab):
    bench = load_benchmark(tiny_lab.bench_dir)
    items = bench.retain[:16]
    tok = train_tokenizer(corpus_texts(bench), vocab_size=400)
    torch.manual_seed(0)
    cfg = TinyModelConfig(vocab_size=400, hidden_size=32, intermediate_size=64)
    model = build_tiny_model(cfg, tok)
    enc = encode_items(tok, items)
    before = answer_stats(model, enc, tok.pad_token_id)["nll"]
    stats = finetune(model, tok, items, FinetuneConfig(epochs=10, lr=5e-3, warmup_steps=2))
    after = answer_stats(model, enc, tok.pad_token_id)["nll"]
    assert stats["steps"] == 10
    assert after < before - 1.0, (before, after)


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_method_updates_the_model_and_writes_a_complete_run(tiny_lab, tmp_path, method):
    cfg = config(tiny_lab, method, max_steps=2, snapshot_every=1, save_model=True, probe_examples=3)
    path = unlearn(cfg, runs_dir=tmp_path)
    run = load_run(path)
    assert run.info["status"] == "finished", run.info
    assert list(run.metrics["step"]) == [0, 1, 2]
    assert run.metrics["loss/total"].iloc[1:].notna().all()
    tw = run.token_weights
    assert set(tw["step"]) == {0, 1, 2}
    assert tw["example_id"].nunique() == 3
    assert tw["weight"].notna().all() and tw["in_span"].any()
    before = load_file(tiny_lab.model_dir / "model.safetensors")
    after = load_file(path / "model" / "model.safetensors")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, f"{method}: no parameter changed after 2 steps"
    if "scorer" in REGISTRY[method].needs:
        assert (path / "scorer.safetensors").exists()


def test_grad_diff_raises_forget_nll_and_keeps_retain(tiny_lab, tmp_path):
    path = unlearn(config(tiny_lab, "grad_diff", lr=2e-3, max_steps=12), runs_dir=tmp_path)
    m = load_run(path).metrics.set_index("step")
    first, last = m.index.min(), m.index.max()
    assert m.loc[last, "forget/nll"] > m.loc[first, "forget/nll"] + 0.5
    assert m.loc[last, "forget/nll"] - m.loc[first, "forget/nll"] > (
        m.loc[last, "retain/nll"] - m.loc[first, "retain/nll"]
    )


def test_runs_are_reproducible_for_a_seed(tiny_lab, tmp_path):
    cfg = config(tiny_lab, "atwu", max_steps=3)
    a = load_run(unlearn(cfg, runs_dir=tmp_path / "a")).metrics
    b = load_run(unlearn(cfg, runs_dir=tmp_path / "b")).metrics
    cols = ["loss/total", "forget/nll", "weights/mean"]
    assert a[cols].fillna(0).equals(b[cols].fillna(0))


def test_unknown_method_and_hparam_list_the_allowed_names(tiny_lab, tmp_path):
    with pytest.raises(ValueError, match=r"available: .*grad_diff"):
        unlearn(config(tiny_lab, "grad_dif"), runs_dir=tmp_path)
    with pytest.raises(ValueError, match=r"allowed: beta=5\.0"):
        unlearn(config(tiny_lab, "atwu", hparams={"betta": 1}), runs_dir=tmp_path)
    assert not list(tmp_path.iterdir()), "a rejected config must not leave a run folder"


def test_scorer_settings_share_the_set_namespace():
    hp, scorer = split_hparams(REGISTRY["atwu"], {"beta": "3", "lambda_p": "0", "update_every": 1})
    assert hp["beta"] == 3.0
    assert scorer.lambda_p == 0.0 and scorer.update_every == 1


def test_non_finite_loss_fails_the_run_and_keeps_files(tiny_lab, tmp_path, monkeypatch):
    spec = REGISTRY["grad_diff"]

    def nan_after_first(batch, **hp):
        out = spec.fn(batch, **hp)
        if batch.logp.requires_grad and nan_after_first.calls >= 1:
            out = MethodOutput(out.loss * float("nan"), out.token_weights)
        nan_after_first.calls += batch.logp.requires_grad
        return out

    nan_after_first.calls = 0
    monkeypatch.setitem(REGISTRY, "grad_diff", dataclasses.replace(spec, fn=nan_after_first))
    with pytest.raises(FloatingPointError, match="step 2"):
        unlearn(config(tiny_lab, "grad_diff", max_steps=5), runs_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    run = load_run(path)
    assert run.info["status"] == "failed"
    assert run.info["failed_step"] == 2 and "non-finite" in run.info["reason"]
    assert list(run.metrics["step"]) == [0, 1]
    assert run.token_weights is not None


def test_callback_can_cancel_and_metrics_are_kept(tiny_lab, tmp_path):
    seen = []

    def cb(event):
        seen.append(event["step"])
        return event["step"] < 2

    path = unlearn(config(tiny_lab, "wga", max_steps=10), runs_dir=tmp_path, callback=cb)
    run = load_run(path)
    assert run.info["status"] == "interrupted"
    assert seen == [1, 2]
    assert list(run.metrics["step"]) == [0, 1, 2]


def test_sigkill_leaves_a_readable_run_folder(tiny_lab, tmp_path):
    script = (
        "from atwu_core.config import UnlearnConfig\n"
        "from atwu_core.train import unlearn\n"
        f"cfg = UnlearnConfig(method='atwu', model={str(tiny_lab.model_dir)!r}, "
        f"data={str(tiny_lab.bench_dir)!r}, batch_size=4, epochs=200, snapshot_every=1)\n"
        f"unlearn(cfg, runs_dir={str(tmp_path)!r})\n"
    )
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.time() + 120
        metrics = None
        while time.time() < deadline:
            found = list(Path(tmp_path).glob("*/metrics.jsonl"))
            if found and found[0].read_text().count("\n") >= 4:
                metrics = found[0]
                break
            time.sleep(0.2)
        assert metrics is not None, "the run never logged 4 steps"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    run = load_run(metrics.parent)
    assert run.info["status"] == "running"
    assert len(run.metrics) >= 4
    assert run.token_weights is not None
    json.loads((metrics.parent / "run.json").read_text())


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_scorer_steps_first_and_the_loss_uses_its_new_weights(tiny_lab, tmp_path, grad_accum):
    """METHOD.md §1 order: on an update step the scorer moves, then g is recomputed for the loss.

    Steps 1-2 see the zero-initialised scorer (g = 0.5 exactly); step 3 is the first update, so
    its logged loss weights already differ from 0.5. With the old order (model first) they would
    still be 0.5 at step 3.
    """
    cfg = config(
        tiny_lab,
        "atwu",
        max_steps=3,
        hparams={"update_every": 3},
        grad_accum=grad_accum,
        conflict=False,
    )
    m = load_run(unlearn(cfg, runs_dir=tmp_path)).metrics.set_index("step")
    assert m.loc[1, "weights/mean"] == 0.5 and m.loc[2, "weights/mean"] == 0.5
    assert m.loc[3, "scorer/lr"] == pytest.approx(0.05)  # one update of one: full rate
    assert m.loc[3, "weights/mean"] != 0.5
    assert abs(m.loc[3, "scorer/g_mean"] - 0.5) < 1e-6  # the objective saw the old scorer


def test_every_forget_row_is_weighed_at_the_first_and_last_step(tiny_lab, tmp_path):
    cfg = config(tiny_lab, "atwu_frozen", max_steps=4, probe_examples=2, conflict=False)
    path = unlearn(cfg, runs_dir=tmp_path, evaluate=True)
    forget = load_benchmark(tiny_lab.bench_dir).forget
    from atwu_core.runs import FORGET_WEIGHTS, read_token_weights

    fw = read_token_weights(path, FORGET_WEIGHTS)
    assert set(fw["step"]) == {0, 4}
    assert fw.groupby("step")["example_id"].nunique().tolist() == [len(forget), len(forget)]
    assert load_run(path).token_weights["example_id"].nunique() == 2  # the replay stays small
    assert fw["retain_nll"].notna().all()  # the lab has a retain model beside the full one
    assert fw["is_end"].sum() == 2 * len(forget)  # one end token per answer, at both steps
    assert set(fw.loc[fw["in_span"], "span_field"]) - {""}
    metrics = load_run(path).eval["metrics"]
    assert len(metrics["span/auroc"]["value_by_index"]) > 2  # all forget rows, not the probes
    for key in ("span/ref/nll/auroc", "span/ref/retain_nll/auroc", "span/no_end/auroc"):
        assert 0.0 <= metrics[key]["agg_value"] <= 1.0, key


def test_flush_denormals_computes_subnormals_as_zero_on_cpu_only():
    """Subnormal floats cost x86 CPUs ~190x per operation; a run sets them to flush to zero, so
    a model whose forget probabilities underflow does not slow to a crawl."""
    import torch

    from atwu_core.batches import flush_denormals

    torch.set_flush_denormal(False)
    tiny = torch.tensor([1e-40])
    assert (tiny * 1.0).item() != 0.0  # representable as a subnormal while flushing is off
    flush_denormals(torch.device("meta"))  # no-op off the CPU
    assert (tiny * 1.0).item() != 0.0
    flush_denormals(torch.device("cpu"))
    assert (torch.tensor([1e-40]) * 1.0).item() == 0.0
