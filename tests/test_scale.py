"""Scale: LoRA, gradient checkpointing, accumulation and data-parallel processes.

The data-parallel test launches a real 2-process run (torchrun, gloo on CPU, driven by
`accelerate.Accelerator`) and checks it takes the same steps as one process with the same batch
cut into two accumulation micro-batches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, random_llama
from safetensors.torch import load_file

from atwu_core.batches import rows_stream
from atwu_core.config import UnlearnConfig
from atwu_core.runs import load_run
from atwu_core.scale import AdaptersOff, apply_lora, split_batch
from atwu_core.scorer import load_scorer
from atwu_core.train import unlearn


def config(lab, method: str, **kw) -> UnlearnConfig:
    base = {"model": str(lab.model_dir), "data": str(lab.bench_dir), "batch_size": 4}
    return UnlearnConfig(method=method, **(base | kw))


def test_split_batch_deals_interleaved_chunks_to_processes():
    rows = list(range(8))
    assert split_batch(rows, rank=0, world=2, accum=2) == [[0, 4], [2, 6]]
    assert split_batch(rows, rank=1, world=2, accum=2) == [[1, 5], [3, 7]]
    # one process with 2 micro-batches trains on the chunks 2 processes would
    assert split_batch(rows, rank=0, world=1, accum=2) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert split_batch(rows, 0, 2, 1) + split_batch(rows, 1, 2, 1) == [[0, 2, 4, 6], [1, 3, 5, 7]]


def test_rows_stream_yields_full_batches_and_every_row_once_per_epoch():
    stream = rows_stream(list(range(5)), batch_size=2, generator=torch.Generator().manual_seed(0))
    batches = [next(stream) for _ in range(5)]
    assert all(len(b) == 2 for b in batches)  # no short batch at the epoch boundary
    flat = [r for b in batches for r in b]
    assert sorted(flat[:5]) == sorted(flat[5:]) == [0, 1, 2, 3, 4]


def test_batch_must_split_into_micro_batches():
    with pytest.raises(ValueError, match=r"batch_size=6 .*multiple of grad_accum=4"):
        UnlearnConfig(batch_size=6, grad_accum=4)
    with pytest.raises(ValueError, match="lora_r=-1"):
        UnlearnConfig(lora_r=-1)


def test_adapters_off_is_exactly_the_starting_model():
    model = random_llama(64, hidden=16, heads=2).eval()
    ids = torch.randint(0, 64, (2, 7))
    base_logits = model(input_ids=ids).logits.detach().clone()
    peft_model = apply_lora(model, r=2, alpha=4.0, targets="all-linear")
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:  # B starts at 0; make the adapters actually change the output
            torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        adapted = peft_model(input_ids=ids).logits
    off = AdaptersOff(peft_model)(input_ids=ids).logits
    assert (adapted - base_logits).abs().max() > 1e-2
    torch.testing.assert_close(off, base_logits, rtol=0, atol=1e-6)


def test_unknown_lora_target_names_the_setting(tiny_lab, tmp_path):
    with pytest.raises(ValueError, match="lora_targets='nope_proj'"):
        cfg = config(tiny_lab, "grad_ascent", lora_r=2, lora_targets="nope_proj")
        unlearn(cfg, runs_dir=tmp_path)


@pytest.mark.parametrize("method", ["npo", "atwu"])  # npo reads the reference (adapters off)
def test_lora_trains_only_the_adapters(tiny_lab, tmp_path, method):
    cfg = config(tiny_lab, method, lora_r=4, lora_alpha=8.0, max_steps=3, save_model=True)
    cfg.conflict = False
    path = unlearn(cfg, runs_dir=tmp_path)
    run = load_run(path)
    assert run.info["status"] == "finished"
    assert run.info["config"]["lora_r"] == 4
    adapter = load_file(path / "adapter" / "adapter_model.safetensors")
    base = load_file(tiny_lab.model_dir / "model.safetensors")
    merged = load_file(path / "model" / "model.safetensors")
    assert set(merged) == set(base)
    changed = set()
    for key, before in base.items():
        module = key.removesuffix(".weight")
        a_key = f"base_model.model.{module}.lora_A.weight"
        if a_key not in adapter:
            # not adapted (embeddings, norms): bit-identical to the starting model
            torch.testing.assert_close(merged[key], before, rtol=0, atol=0)
            continue
        b = adapter[f"base_model.model.{module}.lora_B.weight"]  # (out, r)
        delta = (8.0 / 4) * b @ adapter[a_key]  # (out, in): the merged update is s·B·A
        torch.testing.assert_close(merged[key] - before, delta, rtol=1e-4, atol=1e-6)
        if delta.abs().max() > 0:
            changed.add(module.rsplit(".", 1)[-1])
    # all-linear: attention and MLP projections all trained
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= changed


def test_atwu_eval_of_a_lora_run_merges_its_adapter_into_the_starting_model(
    tiny_lab, tmp_path, capsys
):
    from atwu_core.cli import main

    cfg = config(tiny_lab, "grad_ascent", lora_r=2, max_steps=3, lr=3e-2)
    cfg.conflict = False
    path = unlearn(cfg, runs_dir=tmp_path)
    assert not (path / "model").exists() and (path / "adapter").is_dir()
    args = ["eval", str(path), "--data", str(tiny_lab.bench_dir)]
    assert main([*args, "--retain-model", str(tiny_lab.retain_model_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    evaluated = load_run(path).eval["metrics"]
    assert printed["forget/prob"] == round(evaluated["forget/prob"]["agg_value"], 4)
    # the adapter was applied: the forget answers are less likely than under the starting model
    assert main(["eval", str(tiny_lab.model_dir), "--data", str(tiny_lab.bench_dir)]) == 0
    start = json.loads(capsys.readouterr().out)
    assert printed["forget/prob"] < start["forget/prob"] - 0.02


def test_gradient_checkpointing_changes_memory_not_results(tiny_lab, tmp_path):
    runs = []
    for ckpt in (False, True):
        cfg = config(tiny_lab, "grad_diff", max_steps=3, snapshot_every=1, grad_checkpointing=ckpt)
        cfg.conflict = False
        runs.append(load_run(unlearn(cfg, runs_dir=tmp_path / str(ckpt))).metrics)
    for key in ("loss/total", "forget/nll", "retain/nll", "grad_norm"):
        with_ckpt, without = (torch.tensor(r[key].dropna().to_numpy()) for r in runs[::-1])
        torch.testing.assert_close(with_ckpt, without, rtol=1e-5, atol=1e-6)


STEP_KEYS = ("loss/total", "loss/forget", "loss/retain", "weights/mean", "grad_norm")
SNAPSHOT_KEYS = ("forget/nll", "forget/acc", "retain/nll", "align/auroc")


def test_two_processes_match_one_process_with_accumulation(tiny_lab, tmp_path):
    """2 gloo processes x 4 rows == 1 process x 2 micro-batches of 4 rows, the scorer included."""
    common = ["--model", str(tiny_lab.model_dir), "--data", str(tiny_lab.bench_dir)]
    common += ["--method", "atwu", "--max-steps", "4", "--batch-size", "8"]
    common += ["--set", "update_every=1", "--seed", "3"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    out = subprocess.run(
        [*launch, "-m", "atwu_core.cli", "unlearn", *common, "--runs-dir", str(tmp_path / "ddp")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (ddp_dir,) = (tmp_path / "ddp").iterdir()  # only the main process writes a run
    ddp = load_run(ddp_dir)
    assert ddp.info["status"] == "finished"
    assert ddp.info["environment"]["processes"] == "2"

    cfg = config(tiny_lab, "atwu", max_steps=4, batch_size=8, grad_accum=2, seed=3)
    cfg.hparams = {"update_every": "1"}
    single = load_run(unlearn(cfg, runs_dir=tmp_path / "single"))
    for key in STEP_KEYS + SNAPSHOT_KEYS:
        a, b = ddp.metrics[key].dropna().to_numpy(), single.metrics[key].dropna().to_numpy()
        assert len(a) == len(b) > 0, key
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-5, msg=key)
    # the scorer was trained on both processes' tokens (synchronised), not on rank 0's half
    s_ddp = load_scorer(ddp_dir / "scorer.safetensors")
    s_one = load_scorer(single.path / "scorer.safetensors")
    assert s_one.linear.weight.abs().max() > 0
    torch.testing.assert_close(s_ddp.linear.weight, s_one.linear.weight, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(s_ddp.linear.bias, s_one.linear.bias, rtol=1e-4, atol=1e-6)
