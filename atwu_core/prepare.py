"""`atwu prepare`: build the built-in benchmark and the two tiny models from scratch.

    sample_data/benchmark/   forget/retain/world_facts/holdout .jsonl + meta.json
    sample_data/models/full/     memorised every author (forget + retain) and the world facts
    sample_data/models/retain/   never saw the forget authors: the forget-quality reference

Deterministic for a seed: same benchmark bytes, same tokenizer, same initial weights and data
order (CPU kernels make the trained weights reproducible on one machine, not bit-exact across
hardware).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import queue as queue_mod
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from atwu_core.config import FinetuneConfig, TinyModelConfig
from atwu_core.data.benchmark import generate_benchmark
from atwu_core.data.schema import Benchmark, save_benchmark
from atwu_core.model import (
    build_tiny_model,
    count_parameters,
    load_model,
    save_model,
    train_tokenizer,
)
from atwu_core.train import answer_stats, encode_items, finetune, seed_everything

Progress = Callable[[str, int, int, float], None]  # (stage, done, total, loss)


def corpus_texts(bench: Benchmark) -> list[str]:
    """Every string a model will read or score, so the tokenizer covers them all."""
    texts: list[str] = []
    for split in (bench.forget, bench.retain, bench.world_facts, bench.holdout):
        for item in split:
            texts += [
                item.question,
                item.answer,
                item.paraphrased_answer,
                item.paraphrased_question,
            ]
            texts += list(item.perturbed_answer)
    return [t for t in texts if t]


def greedy_exact_match(model, tokenizer, items) -> float:
    """Share of rows whose greedy answer equals the reference answer exactly."""
    from atwu_core.evaluate import generate_answers

    answers = generate_answers(model, tokenizer, [it.question for it in items], max_new_tokens=64)
    return sum(a == it.answer.strip() for a, it in zip(answers, items, strict=True)) / len(items)


def _train_worker(name, items, tokenizer, model_cfg, ft_cfg, out_dir, queue) -> None:
    """One model in its own process with one thread: two of them use both cores fully, which
    beats one process with two threads on a model this small (measured in the benchmark script)."""
    torch.set_num_threads(1)
    try:
        seed_everything(ft_cfg.seed)
        model = build_tiny_model(model_cfg, tokenizer)

        def report(done: int, total: int, loss: float) -> None:
            if done % 10 == 0 or done == total:
                queue.put(("progress", name, done, total, loss))

        stats = finetune(model, tokenizer, items, ft_cfg, progress=report)
        save_model(model, tokenizer, Path(out_dir) / "models" / name)
        queue.put(("done", name, stats))
    except BaseException as err:  # the parent must hear about it, not wait forever
        queue.put(("error", name, f"{type(err).__name__}: {err}"))
        raise


def train_models_in_parallel(jobs: dict, tokenizer, model_cfg, ft_cfg, out_dir, progress):
    """Fine-tune each `name -> items` job in a spawned process; returns `name -> stats`."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_train_worker,
            args=(name, items, tokenizer, model_cfg, ft_cfg, str(out_dir), queue),
        )
        for name, items in jobs.items()
    ]
    for p in procs:
        p.start()
    stats: dict[str, dict] = {}
    try:
        while len(stats) < len(jobs):
            try:
                msg = queue.get(timeout=5)
            except queue_mod.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    code = dead[0].exitcode
                    raise RuntimeError(f"a training process died (exit code {code})") from None
                continue
            if msg[0] == "progress" and progress is not None:
                progress(*msg[1:])
            elif msg[0] == "done":
                stats[msg[1]] = msg[2]
            elif msg[0] == "error":
                raise RuntimeError(f"training the {msg[1]} model failed: {msg[2]}")
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    return stats


def prepare(
    out_dir: str | Path = "sample_data",
    *,
    n_authors: int = 20,
    forget_fraction: float = 0.1,
    seed: int = 0,
    model_cfg: TinyModelConfig | None = None,
    ft_cfg: FinetuneConfig | None = None,
    progress: Progress | None = None,
) -> dict:
    """Build benchmark + full and retain models; returns (and writes) a report with timings."""
    out_dir = Path(out_dir)
    model_cfg = model_cfg or TinyModelConfig()
    ft_cfg = ft_cfg or FinetuneConfig(seed=seed)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    bench = generate_benchmark(n_authors=n_authors, forget_fraction=forget_fraction, seed=seed)
    save_benchmark(out_dir / "benchmark", bench)
    timings["benchmark_s"] = time.perf_counter() - t

    t = time.perf_counter()
    tokenizer = train_tokenizer(corpus_texts(bench), vocab_size=model_cfg.vocab_size)
    timings["tokenizer_s"] = time.perf_counter() - t

    t = time.perf_counter()
    jobs = {
        "full": [*bench.forget, *bench.retain, *bench.world_facts],
        "retain": [*bench.retain, *bench.world_facts],  # never sees the forget authors
    }
    train_stats = train_models_in_parallel(jobs, tokenizer, model_cfg, ft_cfg, out_dir, progress)
    timings["train_models_s"] = time.perf_counter() - t
    full, _ = load_model(out_dir / "models" / "full", device="cpu")
    retain, _ = load_model(out_dir / "models" / "retain", device="cpu")

    t = time.perf_counter()
    pad = tokenizer.pad_token_id
    quality = {}
    for name, model in (("full", full), ("retain", retain)):
        for split in ("forget", "retain"):
            stats = answer_stats(model, encode_items(tokenizer, getattr(bench, split)), pad)
            quality[f"{name}/{split}/acc"] = stats["acc"]
            quality[f"{name}/{split}/nll"] = stats["nll"]
        quality[f"{name}/forget/exact_match"] = greedy_exact_match(model, tokenizer, bench.forget)
        quality[f"{name}/retain/exact_match"] = greedy_exact_match(model, tokenizer, bench.retain)
    timings["checks_s"] = time.perf_counter() - t

    report = {
        "seed": seed,
        "n_authors": n_authors,
        "forget_fraction": forget_fraction,
        "parameters": count_parameters(full),
        "model": asdict(model_cfg),
        "finetune": asdict(ft_cfg),
        "final_loss": {name: st["final_loss"] for name, st in train_stats.items()},
        "quality": quality,
        "timings": timings,
    }
    (out_dir / "models" / "prepare_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
