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
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from atwu_core.config import FinetuneConfig, TinyModelConfig
from atwu_core.data.benchmark import generate_benchmark
from atwu_core.data.schema import Benchmark, save_benchmark
from atwu_core.model import build_tiny_model, count_parameters, save_model, train_tokenizer
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


def greedy_exact_match(model, tokenizer, items, max_new_tokens: int = 64) -> float:
    """Share of rows whose greedy answer equals the reference answer exactly."""
    from atwu_core.data.encode import prompt_ids

    device = next(model.parameters()).device
    hits = 0
    for item in items:
        ids = torch.tensor([prompt_ids(tokenizer, item.question)], device=device)
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        hits += text.strip() == item.answer.strip()
    return hits / max(1, len(items))


def train_one(
    name: str,
    items,
    tokenizer,
    model_cfg: TinyModelConfig,
    ft_cfg: FinetuneConfig,
    out_dir: Path,
    progress: Progress | None,
):
    seed_everything(ft_cfg.seed)
    model = build_tiny_model(model_cfg, tokenizer)
    stats = finetune(
        model,
        tokenizer,
        items,
        ft_cfg,
        progress=(lambda d, t, loss: progress(name, d, t, loss)) if progress else None,
    )
    save_model(model, tokenizer, out_dir / "models" / name)
    return model, stats


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
    full_items = [*bench.forget, *bench.retain, *bench.world_facts]
    full, full_stats = train_one(
        "full", full_items, tokenizer, model_cfg, ft_cfg, out_dir, progress
    )
    timings["full_model_s"] = time.perf_counter() - t

    t = time.perf_counter()
    retain_items = [*bench.retain, *bench.world_facts]
    retain, retain_stats = train_one(
        "retain", retain_items, tokenizer, model_cfg, ft_cfg, out_dir, progress
    )
    timings["retain_model_s"] = time.perf_counter() - t

    t = time.perf_counter()
    pad = tokenizer.pad_token_id
    quality = {}
    for name, model in (("full", full), ("retain", retain)):
        for split in ("forget", "retain"):
            stats = answer_stats(model, encode_items(tokenizer, getattr(bench, split)), pad)
            quality[f"{name}/{split}/acc"] = stats["acc"]
            quality[f"{name}/{split}/nll"] = stats["nll"]
        quality[f"{name}/forget/exact_match"] = greedy_exact_match(model, tokenizer, bench.forget)
    timings["checks_s"] = time.perf_counter() - t

    report = {
        "seed": seed,
        "n_authors": n_authors,
        "forget_fraction": forget_fraction,
        "parameters": count_parameters(full),
        "model": asdict(model_cfg),
        "finetune": asdict(ft_cfg),
        "final_loss": {"full": full_stats["final_loss"], "retain": retain_stats["final_loss"]},
        "quality": quality,
        "timings": timings,
    }
    (out_dir / "models" / "prepare_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
