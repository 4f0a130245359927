"""`atwu prepare`: build a benchmark and the two tiny models that memorise it, from scratch.

    <out>/benchmark/       forget/retain/world_facts/holdout .jsonl + meta.json
    <out>/models/full/     memorised every author (forget + retain) and the world facts
    <out>/models/retain/   never saw the forget authors: the forget-quality reference

Two presets: `prepare` (the built-in benchmark, into sample_data/) and `prepare_tofu_mini` (a
slice of the real TOFU text, `atwu_core.data.tofu_mini`, into sample_data/tofu_mini/).
`prepare_pretrained` fine-tunes an existing model (SmolLM2, with LoRA merged before saving) on an
existing benchmark folder instead of training tiny models from scratch.

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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from atwu_core.batches import answer_stats, encode_items, seed_everything
from atwu_core.config import FinetuneConfig, TinyModelConfig
from atwu_core.data.benchmark import generate_benchmark
from atwu_core.data.schema import Benchmark, load_benchmark, save_benchmark
from atwu_core.data.tofu_mini import tofu_mini
from atwu_core.finetune import finetune
from atwu_core.model import (
    build_tiny_model,
    count_parameters,
    load_model,
    save_model,
    train_tokenizer,
)

Progress = Callable[[str, int, int, float], None]  # (stage, done, total, loss)

SAVE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# TOFU-mini (docs/RESULTS.md, "TOFU-mini"): TOFU's free text needs a larger vocabulary than the
# templated built-in benchmark to fit every row in 128 positions (2048 tokens: longest prompt +
# answer 109; 1024 tokens: 138). Epochs, measured on the full model (fp32, seed 0): 14 leave a
# training loss of 0.06 (forget token accuracy 0.999), 20 reach 0.007 (1.000), 40 reach 3e-4
# in twice the time. Weights are stored in bf16 to halve the committed sample data;
# `load_model` reads them back as fp32 on CPU, and the post-save checks below measure the
# rounded weights (forget token accuracy and greedy exact match 1.000 at seed 0).
TOFU_MINI_MODEL = TinyModelConfig(vocab_size=2048)
TOFU_MINI_FINETUNE = FinetuneConfig(epochs=20)
TOFU_MINI_OUT = Path("sample_data") / "tofu_mini"
# A pretrained model with LoRA adapters learns new facts in a few epochs (docs/RESULTS.md,
# "SmolLM2"); batch 8 keeps a CPU step near 10 s.
PRETRAINED_FINETUNE = FinetuneConfig(epochs=8, lr=2e-3, batch_size=8, warmup_steps=10)


@dataclass(frozen=True)
class PretrainedStart:
    """Start from an existing model (`load_model` spec: folder, hub id, `smollm2`) instead of a
    tiny random one; with `lora_r` > 0 only rank-r adapters train, merged into the saved weights
    (so the saved folder is an ordinary model that `atwu unlearn` can wrap with its own LoRA)."""

    base: str
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_targets: str = "all-linear"


def _starting_model(start: TinyModelConfig | PretrainedStart, tokenizer) -> torch.nn.Module:
    if isinstance(start, TinyModelConfig):
        return build_tiny_model(start, tokenizer)
    model, _ = load_model(start.base, device="cpu", dtype="float32")
    if start.lora_r:
        from atwu_core.scale import apply_lora

        model = apply_lora(model, start.lora_r, start.lora_alpha, start.lora_targets)
    return model


def _finished_model(model: torch.nn.Module) -> torch.nn.Module:
    """A LoRA-wrapped model with its adapters merged (peft); any other model as it is."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


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
    from atwu_core.evaluation.evaluate import generate_answers

    # Room for the longest answer and its end token (+ slack for a non-canonical tokenisation):
    # a shorter budget would cut long TOFU answers and count them as misses.
    longest = max(len(tokenizer(it.answer, add_special_tokens=False)["input_ids"]) for it in items)
    questions = [it.question for it in items]
    answers = generate_answers(model, tokenizer, questions, max_new_tokens=longest + 8)
    return sum(a == it.answer.strip() for a, it in zip(answers, items, strict=True)) / len(items)


def _train_worker(name, items, tokenizer, start, ft_cfg, out_dir, save_dtype, queue) -> None:
    """One model in its own process with one thread: two of them use both cores fully, which
    beats one process with two threads on a model this small (measured in the benchmark script)."""
    # Same weights on every rebuild on this machine and torch version: one thread (a fixed
    # reduction order), deterministic kernels, every generator seeded.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        seed_everything(ft_cfg.seed)
        model = _starting_model(start, tokenizer)

        def report(done: int, total: int, loss: float) -> None:
            if done % 10 == 0 or done == total:
                queue.put(("progress", name, done, total, loss))

        stats = finetune(model, tokenizer, items, ft_cfg, progress=report)
        model = _finished_model(model).to(SAVE_DTYPES[save_dtype])
        save_model(model, tokenizer, Path(out_dir) / "models" / name)
        queue.put(("done", name, stats))
    except BaseException as err:  # the parent must hear about it, not wait forever
        queue.put(("error", name, f"{type(err).__name__}: {err}"))
        raise


def train_models_in_parallel(
    jobs: dict, tokenizer, start, ft_cfg, out_dir, progress, save_dtype: str = "float32"
):
    """Fine-tune each `name -> items` job in a spawned process; returns `name -> stats`."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_train_worker,
            args=(name, items, tokenizer, start, ft_cfg, str(out_dir), save_dtype, queue),
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
    bench_seed: int = 0,
    model_cfg: TinyModelConfig | None = None,
    ft_cfg: FinetuneConfig | None = None,
    progress: Progress | None = None,
) -> dict:
    """Built-in benchmark + full and retain models; returns (and writes) a report with timings.

    `bench_seed` draws the benchmark (`generate_benchmark(seed=...)`), `seed` the models' initial
    weights and data order: one benchmark can be trained with several model seeds and back.
    """
    t = time.perf_counter()
    bench = generate_benchmark(
        n_authors=n_authors, forget_fraction=forget_fraction, seed=bench_seed
    )
    seconds = time.perf_counter() - t
    return build_models(
        out_dir,
        bench,
        seed=seed,
        model_cfg=model_cfg or TinyModelConfig(),
        ft_cfg=ft_cfg or FinetuneConfig(seed=seed),
        progress=progress,
        benchmark_s=seconds,
        report={
            "bench_seed": bench_seed,
            "generator_version": bench.meta["generator_version"],
            "n_authors": n_authors,
            "forget_fraction": forget_fraction,
        },
    )


def prepare_tofu_mini(
    out_dir: str | Path = TOFU_MINI_OUT,
    tofu_source: str | Path = "hf:locuslab/TOFU",
    *,
    n_retain_authors: int = 10,
    n_holdout_authors: int = 2,
    seed: int = 0,
    model_cfg: TinyModelConfig | None = None,
    ft_cfg: FinetuneConfig | None = None,
    progress: Progress | None = None,
) -> dict:
    """TOFU-mini benchmark (from a TOFU folder or the hub) + full and retain models in bf16."""
    t = time.perf_counter()
    bench = tofu_mini(tofu_source, n_retain_authors, n_holdout_authors)
    seconds = time.perf_counter() - t
    return build_models(
        out_dir,
        bench,
        seed=seed,
        model_cfg=model_cfg or TOFU_MINI_MODEL,
        ft_cfg=ft_cfg or replace(TOFU_MINI_FINETUNE, seed=seed),
        progress=progress,
        benchmark_s=seconds,
        save_dtype="bfloat16",
        report={
            "preset": "tofu-mini",
            "tofu_source": bench.meta["tofu_source"],
            "n_authors": bench.meta["n_authors"],
            "forget_fraction": bench.meta["forget_fraction"],
        },
    )


def _check_lengths(tokenizer, bench: Benchmark, max_positions: int) -> None:
    """Every trained row must fit the model's positions: unlearning truncates longer rows (and
    fine-tuning would train positions the model was not built for)."""
    from atwu_core.data.encode import encode_example

    for split in ("forget", "retain", "world_facts"):
        for item in getattr(bench, split):
            n = len(encode_example(tokenizer, item.question, item.answer, id=item.id).input_ids)
            if n > max_positions:
                raise ValueError(
                    f"{split} row {item.id}: question + answer are {n} tokens, more than the "
                    f"model's max_positions={max_positions}; raise the vocabulary size or "
                    "max_positions"
                )


def build_models(
    out_dir: str | Path,
    bench: Benchmark,
    *,
    seed: int,
    model_cfg: TinyModelConfig | PretrainedStart,
    ft_cfg: FinetuneConfig,
    progress: Progress | None,
    benchmark_s: float,
    report: dict,
    save_dtype: str = "float32",
    exact_match_rows: int | None = None,
) -> dict:
    """Save `bench`, get a tokenizer (trained for a tiny model, the base model's otherwise), train
    both models, check them; write the report.

    A pretrained start does not train on the world facts: it already knows real-world facts, and
    they stay what they measure (general knowledge the unlearning must not break). Greedy exact
    match is checked on the first `exact_match_rows` rows per split (all when None): generating
    every retain answer with a 135 M model costs minutes on a CPU.
    """
    if save_dtype not in SAVE_DTYPES:
        raise ValueError(f"save_dtype={save_dtype!r} is invalid: use {', '.join(SAVE_DTYPES)}")
    out_dir = Path(out_dir)
    timings: dict[str, float] = {"benchmark_s": benchmark_s}
    save_benchmark(out_dir / "benchmark", bench)

    t = time.perf_counter()
    tiny = isinstance(model_cfg, TinyModelConfig)
    if tiny:
        tokenizer = train_tokenizer(corpus_texts(bench), vocab_size=model_cfg.vocab_size)
        _check_lengths(tokenizer, bench, model_cfg.max_positions)
    else:
        _, tokenizer = load_model(model_cfg.base, device="cpu")
    timings["tokenizer_s"] = time.perf_counter() - t

    t = time.perf_counter()
    world = list(bench.world_facts) if tiny else []
    jobs = {
        "full": [*bench.forget, *bench.retain, *world],
        "retain": [*bench.retain, *world],  # never sees the forget authors
    }
    train_stats = train_models_in_parallel(
        jobs, tokenizer, model_cfg, ft_cfg, out_dir, progress, save_dtype
    )
    timings["train_models_s"] = time.perf_counter() - t
    # Loaded back from disk: the checks measure the stored (possibly bf16-rounded) weights.
    full, _ = load_model(out_dir / "models" / "full", device="cpu")
    retain, _ = load_model(out_dir / "models" / "retain", device="cpu")

    t = time.perf_counter()
    pad = tokenizer.pad_token_id
    quality = {}
    for name, model in (("full", full), ("retain", retain)):
        for split in ("forget", "retain"):
            rows = getattr(bench, split)
            stats = answer_stats(model, encode_items(tokenizer, rows), pad)
            quality[f"{name}/{split}/acc"] = stats["acc"]
            quality[f"{name}/{split}/nll"] = stats["nll"]
            quality[f"{name}/{split}/exact_match"] = greedy_exact_match(
                model, tokenizer, rows[:exact_match_rows]
            )
    timings["checks_s"] = time.perf_counter() - t

    report = {
        "seed": seed,
        **report,
        "parameters": count_parameters(full),
        "model": asdict(model_cfg),
        "finetune": asdict(ft_cfg),
        "trained_on_world_facts": tiny,
        "exact_match_rows": exact_match_rows,
        "save_dtype": save_dtype,
        # The weights are reproducible on one machine and torch version, not across them.
        "torch": torch.__version__,
        "final_loss": {name: st["final_loss"] for name, st in train_stats.items()},
        "train_seconds": {name: st["seconds"] for name, st in train_stats.items()},
        "train_steps": {name: st["steps"] for name, st in train_stats.items()},
        "quality": quality,
        "timings": timings,
    }
    (out_dir / "models" / "prepare_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def prepare_pretrained(
    out_dir: str | Path,
    benchmark_dir: str | Path,
    start: PretrainedStart,
    *,
    seed: int = 0,
    ft_cfg: FinetuneConfig | None = None,
    progress: Progress | None = None,
    exact_match_rows: int | None = 40,
) -> dict:
    """Fine-tune `start.base` (LoRA by default) on an existing benchmark folder, full and retain
    model in parallel; the benchmark is copied to `<out>/benchmark` so runs point at one folder."""
    t = time.perf_counter()
    bench = load_benchmark(benchmark_dir)
    seconds = time.perf_counter() - t
    return build_models(
        out_dir,
        bench,
        seed=seed,
        model_cfg=start,
        ft_cfg=ft_cfg or replace(PRETRAINED_FINETUNE, seed=seed),
        progress=progress,
        benchmark_s=seconds,
        report={"preset": "pretrained", "benchmark_from": str(benchmark_dir)},
        exact_match_rows=exact_match_rows,
    )
