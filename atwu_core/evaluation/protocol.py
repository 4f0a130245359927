"""Evaluating a run against its references: the retain model's truth ratios give forget quality.

The full and retain models are fixed, so their evaluations are cached by a content hash of
(model files, benchmark files, settings) in `$ATWU_CACHE` (default `~/.cache/atwu`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atwu_core.cache import cached_value
from atwu_core.config import UnlearnConfig
from atwu_core.data.schema import Benchmark

# max_new_tokens is a floor: `generation_budget` raises it for benchmarks with longer answers.
# version 2: budget follows the longest answer (version 1 cut TOFU answers at 48 tokens).
EVAL_SETTINGS = {"max_new_tokens": 48, "batch_size": 32, "version": 2}
SCORED_SPLITS = ("forget", "retain", "world_facts")  # what `evaluate_model` scores by default


def generation_budget(tokenizer, bench: Benchmark) -> int:
    """Tokens to generate per question for ROUGE: the floor of EVAL_SETTINGS, or the longest
    evaluated answer + its end token. A generation cut shorter than the reference caps ROUGE-L
    recall below 1 even for a model that knows the answer (TOFU answers run to ~100 tokens;
    the built-in benchmark's to 25, so its budget stays 48)."""
    from atwu_core.evaluation.evaluate import eval_rows

    longest = max(
        (
            len(tokenizer(item.answer, add_special_tokens=False)["input_ids"])
            for split in SCORED_SPLITS
            for item in eval_rows(bench, split)
        ),
        default=0,  # no rows: `evaluate_model` names the empty split
    )
    return max(EVAL_SETTINGS["max_new_tokens"], longest + 1)


def retain_model_for(config: UnlearnConfig) -> str | None:
    """Forget-quality reference: `config.retain_model`, else a `retain` folder beside the model."""
    if config.retain_model:
        return config.retain_model
    sibling = Path(config.model).parent / "retain"
    return str(sibling) if (sibling / "config.json").exists() else None


def fixed_model_eval(model_dir: str, data: str, bench: Benchmark) -> dict[str, Any]:
    """Evaluation of a model that never changes (full or retain), computed once and cached."""
    from atwu_core.evaluation.evaluate import evaluate_model
    from atwu_core.model import load_model

    def compute() -> dict[str, Any]:
        model, tokenizer = load_model(model_dir)
        return evaluate_model(
            model,
            tokenizer,
            bench,
            batch_size=EVAL_SETTINGS["batch_size"],
            max_new_tokens=generation_budget(tokenizer, bench),
        )

    return cached_value(model_dir, data, EVAL_SETTINGS, compute)


def reference_evals(base: UnlearnConfig) -> dict[str, dict[str, Any]]:
    """Cached evaluations of the starting (`full`) and `retain` models, the two ends of the scale
    every method sits between; forget quality of each against the retain model filled in."""
    from atwu_core import progress
    from atwu_core.data.spec import load
    from atwu_core.evaluation.metrics import forget_quality

    retain_dir = retain_model_for(base)
    if retain_dir is None:
        return {}
    bench = load(base.data)
    evals = {}
    for name, model in (("full", base.model), ("retain", retain_dir)):
        progress.phase(f"reference model {name} ({model}): evaluation (cached after the first)")
        evals[name] = fixed_model_eval(model, base.data, bench)
    ref = evals["retain"]["metrics"]["forget/truth_ratio_raw"]["value_by_index"]
    for ev in evals.values():
        tr = ev["metrics"]["forget/truth_ratio_raw"]["value_by_index"]
        fq = forget_quality([tr[k] for k in ref], list(ref.values()))
        ev["metrics"]["forget_quality"] = {"agg_value": fq, "value_by_index": {}}
    return evals


def evaluate_run(model, tokenizer, bench: Benchmark, config: UnlearnConfig) -> dict[str, Any]:
    """TOFU evaluation of an unlearned model; forget quality when a retain model is known.
    An RWKU benchmark gets RWKU's own metrics instead (no retain model exists for it)."""
    from atwu_core.evaluation.evaluate import evaluate_model

    if bench.meta.get("source") == "rwku":
        from atwu_core.evaluation.rwku import evaluate_rwku

        return evaluate_rwku(model, tokenizer, bench) | {"reference_model": None}

    reference = None
    retain_dir = retain_model_for(config)
    if retain_dir is not None:
        ref_eval = fixed_model_eval(retain_dir, config.data, bench)
        reference = ref_eval["metrics"]["forget/truth_ratio_raw"]
    result = evaluate_model(
        model,
        tokenizer,
        bench,
        reference_truth_ratios=reference,
        batch_size=EVAL_SETTINGS["batch_size"],
        max_new_tokens=generation_budget(tokenizer, bench),
    )
    result["reference_model"] = retain_dir
    return result


ROW_BATCH = 32  # forget rows per forward pass


def retain_token_nll(config: UnlearnConfig, tokenizer, forget: list) -> dict:
    """ℓ_t of every forget answer token under the retain model (the paper's label: what a model
    that never saw the forget set cannot predict); {} without a retain model or when its
    tokenizer splits the answers differently. Cached by content hash like the evaluations."""
    import torch

    from atwu_core.batches import gather_logp, shift, to_device
    from atwu_core.data.encode import collate
    from atwu_core.model import load_model

    retain_dir = retain_model_for(config)
    if retain_dir is None or not Path(retain_dir).is_dir():
        return {}

    def compute() -> dict[str, Any]:
        model, retain_tok = load_model(retain_dir, device=config.device, dtype=config.dtype)
        if retain_tok.get_vocab() != tokenizer.get_vocab():
            return {}
        device, pad = next(model.parameters()).device, tokenizer.pad_token_id
        out = {}
        with torch.no_grad():
            for i in range(0, len(forget), ROW_BATCH):
                chunk = forget[i : i + ROW_BATCH]
                batch = to_device(collate(chunk, pad), device)
                logits = model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits
                labels, _, _ = shift(batch)
                nll = -gather_logp(logits[:, :-1], labels).cpu()  # (B, T)
                for b, enc in enumerate(chunk):
                    for pos in range(len(enc.input_ids) - enc.answer_start):
                        out[f"{enc.id}\t{pos}"] = nll[b, enc.answer_start - 1 + pos].item()
        return out

    settings = {"retain_token_nll": [e.id for e in forget], "version": 1}
    values = cached_value(retain_dir, config.data, settings, compute)
    return {(k.split("\t")[0], int(k.split("\t")[1])): v for k, v in values.items()}
