"""The unlearning loop, top to bottom: set up, train, finish.

`unlearn` does every forward pass once per step (model, reference model if the method needs one,
the ATWU scorer if it has one), hands the method the per-token tensors it declared, adds the retain
term, and records everything a user wants to inspect into a run folder through `atwu_core.runs`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from atwu_core import cancel, progress
from atwu_core.batches import (
    answer_stats,
    encode_items,
    flush_denormals,
    rows_stream,
    seed_everything,
    to_device,
    warmup_decay,
)
from atwu_core.config import UnlearnConfig
from atwu_core.conflict import probe_conflict
from atwu_core.data.encode import Encoded, collate, encode_example
from atwu_core.data.schema import Benchmark
from atwu_core.evaluation.protocol import retain_token_nll
from atwu_core.forward import Forward, idk_batch, retain_loss
from atwu_core.losses import masked_mean
from atwu_core.methods import MethodSpec, get_method
from atwu_core.run_setup import (
    environment,
    load_data,
    load_for_training,
    pick_probe,
    split_hparams,
)
from atwu_core.runs import FORGET_WEIGHTS, RunWriter
from atwu_core.scale import DataParallel, no_sync_unless, split_batch
from atwu_core.scorer import ScorerTrainer, TokenScorer, save_scorer
from atwu_core.snapshots import pooled_alignment, span_metrics, token_rows, trajectory_metrics

Callback = Callable[[dict[str, Any]], Any]
SNAPSHOT_BATCH = 32  # rows per forward pass when weighing probe or forget rows
# Forget-answer token accuracy at step 0 below this: the model most likely never saw --data (a
# model trained on its benchmark starts near 1.0; the built-in model on tofu:forget01 gives 0.03).
MISMATCH_ACC = 0.5


class RunCancelled(Exception):
    """Raised inside the loop when the callback asks to stop."""


@dataclass
class Session:
    """Everything one unlearning run holds: built by `_setup`, driven by `_train`, closed by
    `_finish`. Plain fields, so the loop reads top to bottom without closures."""

    config: UnlearnConfig
    spec: MethodSpec
    hparams: dict[str, Any]
    retain_kind: str
    parallel: DataParallel | None
    rank: int
    world: int
    bench: Benchmark
    model: torch.nn.Module
    tokenizer: Any
    ref: torch.nn.Module | None
    device: torch.device
    forget: list[Encoded]
    retain: list[Encoded]
    probe: list[Encoded]
    retain_watch: list[Encoded]
    idk_items: dict[str, Encoded] | None
    total: int
    steps_per_epoch: int
    scorer: TokenScorer | None
    trainer: ScorerTrainer | None
    train_model: torch.nn.Module
    forward: Forward  # training, through DDP if any
    probe_forward: Forward  # snapshots and scorer pre-passes, this process only
    conflict: dict[tuple[str, int], float]
    retain_nll: dict[tuple[str, int], float]
    writer: RunWriter | None
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    forget_stream: Iterator[list[Encoded]]
    retain_stream: Iterator[list[Encoded]]
    snapshots: list[dict[str, Any]] = field(default_factory=list)  # probe rows, every snapshot
    forget_rows: list[dict[str, Any]] = field(default_factory=list)  # all forget rows, first+last
    nll_before: dict[tuple[str, int], float] = field(default_factory=dict)
    trajectory: list[tuple[float, float]] = field(default_factory=list)  # (span_acc, other_acc)
    start: float = 0.0
    step: int = 0  # the step in progress, for a failure report


def unlearn(
    config: UnlearnConfig,
    *,
    runs_dir: str | Path = "runs",
    callback: Callback | None = None,
    run_id: str | None = None,
    evaluate: bool = False,
) -> Path | None:
    """Run one unlearning method and return its run folder.

    `callback(event)` gets `{"step", "total_steps", "metrics"}` after every step; returning
    False cancels the run (status `interrupted`, everything so far kept).

    Under `accelerate launch` / `torchrun` every process trains on its slice of each batch; only
    the main process writes the run folder, evaluates and calls `callback` (the others return
    None).
    """
    s = _setup(config, runs_dir, run_id)
    try:
        _train(s, callback)
        return _finish(s, evaluate)
    except (KeyboardInterrupt, RunCancelled) as err:
        # Wherever it came from (a step, evaluation, model saving): the run is "interrupted".
        if s.writer and s.writer.info["status"] == "running":
            reason = str(err) or "interrupted (Ctrl-C)"
            with cancel.shielded():  # a second Ctrl-C must not leave run.json at "running"
                s.writer.finish("interrupted", reason=reason, failed_step=s.step)
        return s.writer.path if s.writer else None
    except Exception as err:
        if s.writer and s.writer.info["status"] == "running":
            with cancel.shielded():
                s.writer.finish("failed", reason=f"{type(err).__name__}: {err}", failed_step=s.step)
        raise


def _setup(config: UnlearnConfig, runs_dir: str | Path, run_id: str | None) -> Session:
    """Load data and models, build the scorer, optimiser and batch streams, open the run folder."""
    spec = get_method(config.method)
    hparams, scorer_cfg = split_hparams(spec, config.hparams)
    retain_kind = spec.retain if config.retain_loss == "default" else config.retain_loss
    # The reference model costs memory: build it only for methods that read it.
    needs_ref = spec.needs_reference or retain_kind in ("kl", "hidden")
    parallel = DataParallel.from_env(config.device, find_unused="hidden" in spec.needs)
    rank, world = (parallel.rank, parallel.world) if parallel else (0, 1)
    if config.batch_size % (world * config.grad_accum):
        raise ValueError(
            f"batch_size={config.batch_size} must be a multiple of processes x grad_accum = "
            f"{world} x {config.grad_accum}: every process trains on an equal slice of each batch"
        )
    seed_everything(config.seed)
    progress.phase(f"loading data {config.data}")
    bench = load_data(config.data)  # first: a bad --data fails in a second, not after a 1B load
    progress.phase(f"loading model {config.model}" + (" (+ reference copy)" if needs_ref else ""))
    model, tokenizer, ref, device = load_for_training(config, needs_ref, parallel)
    flush_denormals(device)
    max_len = getattr(model.config, "max_position_embeddings", None)
    forget = encode_items(tokenizer, bench.forget, max_len)
    retain = encode_items(tokenizer, bench.retain, max_len)
    probe = encode_items(tokenizer, pick_probe(bench.forget, config.probe_examples), max_len)
    # A fixed retain subset (as large as the forget set) tracks utility during training.
    retain_watch = retain[:: max(1, len(retain) // max(1, len(forget)))][: len(forget)]
    idk_items = None
    if "alt" in spec.needs:
        answers = spec.alt_answers
        idk_items = {
            e.id: encode_example(tokenizer, it.question, answers[i % len(answers)], id=e.id)
            for i, (it, e) in enumerate(zip(bench.forget, forget, strict=True))
        }
    steps_per_epoch = math.ceil(len(forget) / config.batch_size)
    total = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)

    scorer = trainer = None
    position = "own"
    if scorer_cfg is not None:
        scorer = TokenScorer(model.config.hidden_size).to(device)  # fp32 whatever the model
        sync = parallel.mean_grads if parallel else None
        trainer = ScorerTrainer(scorer, scorer_cfg, total_steps=total, sync_grads=sync)
        position = scorer_cfg.scorer_position
    train_model = parallel.wrap(model) if parallel else model

    # Before the run folder exists: a failure here must not leave a run stuck at "running".
    conflict, retain_nll = {}, {}
    writer = None
    if rank == 0:
        pad = tokenizer.pad_token_id
        if config.conflict:
            progress.phase(f"retain conflicts of {len(probe)} probe answers (--no-conflict skips)")
            conflict = probe_conflict(model, probe, retain_watch, pad, config)
        progress.phase("forget-token NLL under the retain model")
        retain_nll = retain_token_nll(config, tokenizer, forget)
        progress.phase(f"first snapshot ({len(forget)} forget rows), then {total} steps")
        run_config = config.to_dict() | {"hparams": hparams, "retain_loss": retain_kind}
        if scorer_cfg is not None:
            run_config["scorer"] = vars(scorer_cfg)
        writer = RunWriter.create(
            runs_dir,
            method=spec.name,
            config=run_config,
            environment=environment(device, world),
            total_steps=total,
            run_id=run_id,
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=config.lr, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: warmup_decay(step, config.warmup_steps, total, 0.1)
    )
    # Same seed on every process: all draw the same global batches and keep their own slice.
    gen = torch.Generator().manual_seed(config.seed)
    return Session(
        config=config,
        spec=spec,
        hparams=hparams,
        retain_kind=retain_kind,
        parallel=parallel,
        rank=rank,
        world=world,
        bench=bench,
        model=model,
        tokenizer=tokenizer,
        ref=ref,
        device=device,
        forget=forget,
        retain=retain,
        probe=probe,
        retain_watch=retain_watch,
        idk_items=idk_items,
        total=total,
        steps_per_epoch=steps_per_epoch,
        scorer=scorer,
        trainer=trainer,
        train_model=train_model,
        forward=Forward(spec, hparams, train_model, ref, scorer, position, tokenizer.pad_token_id),
        probe_forward=Forward(spec, hparams, model, ref, scorer, position, tokenizer.pad_token_id),
        conflict=conflict,
        retain_nll=retain_nll,
        writer=writer,
        opt=opt,
        sched=sched,
        forget_stream=rows_stream(forget, config.batch_size, gen),
        retain_stream=rows_stream(retain, config.batch_size, gen),
    )


def _train(s: Session, callback: Callback | None) -> None:
    """The loop: one optimiser step per batch, the scorer first on its update steps."""
    config = s.config
    trainable = [p for p in s.model.parameters() if p.requires_grad]
    s.start = time.perf_counter()
    if s.writer:
        first = snapshot(s, 0)
        s.writer.log({"step": 0, "time_s": 0.0, **first})
        _warn_on_mismatch(s, first.get("forget/acc"))
    s.model.train()
    for step in range(1, s.total + 1):
        s.step = step
        forget_micro = split_batch(next(s.forget_stream), s.rank, s.world, config.grad_accum)
        retain_micro = split_batch(next(s.retain_stream), s.rank, s.world, config.grad_accum)
        s.opt.zero_grad(set_to_none=True)
        metrics: dict[str, Any] = {}
        update = s.trainer is not None and s.trainer.should_update(step)
        if update and config.grad_accum > 1:
            # The scorer's step uses all of this step's micro-batches: a no-grad pre-pass caches
            # their states, so every micro-batch's loss then sees the updated scorer.
            metrics |= _scorer_step(s, [_scorer_input(s, rows) for rows in forget_micro])
        sums: dict[str, float] = {}
        for i, (f_rows, r_rows) in enumerate(zip(forget_micro, retain_micro, strict=True)):
            # Gradients are all-reduced once per step, on the last micro-batch.
            with no_sync_unless(s.parallel, s.train_model, sync=i == config.grad_accum - 1):
                scalars = micro_step(s, f_rows, r_rows, update and config.grad_accum == 1)
            metrics |= {k: v for k, v in scalars.items() if k.startswith("scorer/")}
            for key, value in scalars.items():
                if not key.startswith("scorer/"):
                    sums[key] = sums.get(key, 0.0) + value / config.grad_accum
        if s.parallel:
            averaged = s.parallel.mean(torch.tensor(list(sums.values()))).tolist()
            sums = dict(zip(sums, averaged, strict=True))
        if not math.isfinite(sums["loss/total"]):
            raise FloatingPointError(
                f"non-finite loss at step {step}: forget={sums['loss/forget']}, "
                f"retain={sums['loss/retain']}; try a lower lr (now {config.lr})"
            )
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.clip)
        s.opt.step()
        s.sched.step()
        metrics |= {
            "step": step,
            "epoch": (step - 1) // s.steps_per_epoch + 1,
            "time_s": time.perf_counter() - s.start,
            "lr": s.sched.get_last_lr()[0],
            "grad_norm": float(grad_norm),
            **sums,
        }
        if s.writer is None:
            continue
        if step % config.snapshot_every == 0 or step == s.total:
            metrics |= snapshot(s, step)
        s.writer.log(metrics)
        s.writer.update(steps_done=step)
        event = {"step": step, "total_steps": s.total, "metrics": metrics}
        if callback is not None and callback(event) is False:
            raise RunCancelled(f"cancelled by the caller at step {step}")
        reason = cancel.file_requested()  # the dashboard's Cancel (atwu_core.cancel)
        if reason is not None:
            raise RunCancelled(f"{reason} at step {step}")


def _warn_on_mismatch(s: Session, forget_acc: float | None) -> None:
    """One line (and run.json `warning`) when the model barely knows the forget answers at step
    0: unlearning data a model never learned measures nothing."""
    if forget_acc is None or not forget_acc < MISMATCH_ACC:
        return
    message = (
        f"warning: the model predicts only {forget_acc:.0%} of the forget answers' tokens at step "
        f"0 (a model trained on its data: > {MISMATCH_ACC:.0%}); was --model {s.config.model} "
        f"trained on --data {s.config.data}?"
    )
    progress.write(message)
    s.writer.update(warning=message)


def micro_step(
    s: Session, f_rows: list[Encoded], r_rows: list[Encoded], update_scorer: bool
) -> dict[str, float]:
    """Forward + backward of one micro-batch (scaled for accumulation); its logged scalars.

    With `update_scorer`, the scorer takes its step on this forward's cached states and NLLs
    before the loss is built, and the loss uses g recomputed by the updated scorer.
    """
    config, pad = s.config, s.tokenizer.pad_token_id
    fbatch = to_device(collate(f_rows, pad), s.device)
    idk = idk_batch(s.idk_items, [e.id for e in f_rows], pad, s.device)
    fb, states = s.forward(fbatch, idk)
    scalars: dict[str, float] = {}
    if update_scorer:
        scalars |= _scorer_step(s, [(states, -fb.logp.detach().float(), fb.mask)])
    out = s.spec.fn(s.forward.weigh(fb, states), **s.hparams)
    if s.retain_kind == "none" or config.alpha == 0:
        l_retain = torch.zeros((), device=s.device)
    else:
        rbatch = to_device(collate(r_rows, pad), s.device)
        l_retain = retain_loss(
            s.retain_kind, s.train_model, s.ref, rbatch, s.forward.layer, s.spec.retain_term
        )
    loss = config.gamma * out.loss + config.alpha * l_retain
    (loss / config.grad_accum).backward()
    return (
        scalars
        | {
            "loss/total": loss.item(),
            "loss/forget": out.loss.item(),
            "loss/retain": l_retain.item(),
            "batch/forget_nll": -masked_mean(fb.logp.detach(), fb.mask).item(),
            "weights/mean": masked_mean(out.token_weights.float(), fb.mask).item(),
            "weights/frac_above_half": masked_mean(
                (out.token_weights > 0.5).float(), fb.mask
            ).item(),
        }
        | {f"method/{k}": float(v) for k, v in out.parts.items()}
    )


def _scorer_input(s: Session, rows: list[Encoded]) -> tuple[torch.Tensor, ...]:
    """(states, ℓ, mask) of rows from a no-grad forward of the current model."""
    with torch.no_grad():
        batch = to_device(collate(rows, s.tokenizer.pad_token_id), s.device)
        fb, states = s.probe_forward(batch)
    return states, -fb.logp.float(), fb.mask


def _scorer_step(s: Session, inputs: list[tuple[torch.Tensor, ...]]) -> dict[str, float]:
    return {f"scorer/{k}": v for k, v in s.trainer.step(inputs).items()}


def snapshot(s: Session, step: int) -> dict[str, float]:
    """Record the method's per-token weights (probe rows every snapshot; every forget row at the
    first and last step) and the forget/retain statistics of this step."""
    s.model.eval()
    rows = weigh_rows(s, step, s.probe)
    s.snapshots.extend(rows)
    s.writer.write_token_weights(pd.DataFrame(s.snapshots))
    if step in (0, s.total):
        s.forget_rows.extend(weigh_rows(s, step, s.forget))
        s.writer.write_token_weights(pd.DataFrame(s.forget_rows), FORGET_WEIGHTS)
    pad = s.tokenizer.pad_token_id
    stats = {f"forget/{k}": v for k, v in answer_stats(s.model, s.forget, pad).items()}
    stats |= {f"retain/{k}": v for k, v in answer_stats(s.model, s.retain_watch, pad).items()}
    stats |= pooled_alignment(rows)
    if "forget/span_acc" in stats and "forget/other_acc" in stats:
        s.trajectory.append((stats["forget/span_acc"], stats["forget/other_acc"]))
    s.model.train()
    return stats


@torch.no_grad()
def weigh_rows(s: Session, step: int, encoded: Sequence[Encoded]) -> list[dict[str, Any]]:
    """Tidy token rows (snapshots.token_rows) of the method's weights on `encoded` rows."""
    pad, rows = s.tokenizer.pad_token_id, []
    for i in range(0, len(encoded), SNAPSHOT_BATCH):
        chunk = list(encoded[i : i + SNAPSHOT_BATCH])
        batch = to_device(collate(chunk, pad), s.device)
        idk = idk_batch(s.idk_items, [e.id for e in chunk], pad, s.device)
        fb, states = s.probe_forward(batch, idk)
        weights = s.spec.fn(s.probe_forward.weigh(fb, states), **s.hparams).token_weights
        rows += token_rows(
            step,
            chunk,
            weights.float().cpu().numpy(),
            (-fb.logp).float().cpu().numpy(),
            fb.mask.cpu().numpy(),
            lambda tok: s.tokenizer.decode([tok]),
            nll_before=s.nll_before,
            conflict=s.conflict,
            retain_nll=s.retain_nll,
        )
    return rows


def _finish(s: Session, evaluate: bool) -> Path | None:
    """Save the scorer, evaluate (TOFU metrics, span alignment on every forget row, selectivity),
    save adapters/model, and mark the run finished."""
    if s.writer is None:
        return None
    config, writer = s.config, s.writer
    if s.scorer is not None:
        save_scorer(writer.path_for("scorer.safetensors"), s.scorer)
    if evaluate:
        from atwu_core.evaluation.protocol import evaluate_run

        progress.phase("evaluating the unlearned model (TOFU metrics)")
        result = evaluate_run(s.model, s.tokenizer, s.bench, config)
        result["metrics"] |= span_metrics([r for r in s.forget_rows if r["step"] == s.total])
        result["metrics"] |= trajectory_metrics(s.trajectory)
        seconds = time.perf_counter() - s.start
        result["metrics"]["run/seconds"] = {"agg_value": seconds, "value_by_index": {}}
        writer.write_eval(result)
    if config.lora_r:
        s.model.save_pretrained(writer.path_for("adapter"), safe_serialization=True)
    if config.save_model:
        from atwu_core.model import save_model

        # A LoRA run saves the merged model too: a standard folder every tool can load.
        final_model = s.model.merge_and_unload() if config.lora_r else s.model
        progress.phase(f"saving the model to {writer.path_for('model')}")
        save_model(final_model, s.tokenizer, writer.path_for("model"))
    writer.finish("finished")
    return writer.path
