"""Run a causal LM over RWKU's probes (benchmark `meta["rwku"]["probes"]`) and build `eval.json`.

Same body as the TOFU evaluation (docs/FORMATS.md): `{"schema", "model", "metrics": {key:
{"agg_value", "value_by_index"}}, "generations": {id: {"split", "question", "answer",
"prediction"}}}`, with RWKU's metric names (`RWKU_METRICS`). The arithmetic is
`atwu_core.evaluation.rwku_metrics`; this module only does model work, batched under
`torch.no_grad()`:

1. greedy short answers (RWKU: 30 new tokens, cut at the first newline) for the forget and
   neighbour probes, and for TriviaQA (utility_factuality);
2. next-token logits of the letters A-D for the multiple-choice questions (utility_general);
3. teacher-forced token log-probs of the raw MIA texts (no chat template, as RWKU scores them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from atwu_core.data.encode import Encoded, prompt_ids
from atwu_core.evaluation import rwku_metrics as R
from atwu_core.evaluation.evaluate import EVAL_SCHEMA, _score, generate_from_ids
from atwu_core.evaluation.metrics import metric_entry

RWKU_EVAL_SETTINGS = {"max_new_tokens": 30, "batch_size": 16}
PROBE_METRICS = {
    "forget_level1": "rwku/forget_l1_rougeL",
    "forget_level2": "rwku/forget_l2_rougeL",
    "forget_level3": "rwku/forget_l3_rougeL",
    "neighbor_level1": "rwku/neighbor_l1_rougeL",
    "neighbor_level2": "rwku/neighbor_l2_rougeL",
}
RWKU_METRICS = (
    *PROBE_METRICS.values(),
    "rwku/forget_avg_rougeL",
    "rwku/neighbor_avg_rougeL",
    "rwku/mia_forget_loss",
    "rwku/mia_retain_loss",
    "rwku/mia_auc",
    "rwku/utility_general_acc",
    "rwku/utility_factuality_em",
    "rwku/utility_factuality_f1",
)


def _with_suffix(tokenizer, user: str, suffix: str) -> list[int]:
    """Chat-formatted user turn, then `suffix` (RWKU appends "Answer:" after the template)."""
    ids = prompt_ids(tokenizer, user)
    return ids + (tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix else [])


@torch.no_grad()
def _next_token_scores(model, prompts: list[list[int]], token_ids: list[int], batch_size, pad_id):
    """(N, C) logits of `token_ids` as the next token after each prompt (right-padded batches)."""
    device = next(model.parameters()).device
    out = np.zeros((len(prompts), len(token_ids)))
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)  # (B, W)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)  # (B, W)
        for row, p in enumerate(chunk):
            ids[row, : len(p)] = torch.tensor(p)
            attn[row, : len(p)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits
        last = torch.tensor([len(p) - 1 for p in chunk], device=device)  # (B,)
        picked = logits[torch.arange(len(chunk), device=device), last]  # (B, V)
        out[start : start + len(chunk)] = picked[:, token_ids].float().cpu().numpy()
    return out


def _text_encoding(tokenizer, text: str, row_id: str, max_length: int | None) -> Encoded:
    """A raw text as an `Encoded` whose "answer" is every token after the first (RWKU's MIA
    scores the whole text given its first token: `model(ids, labels=ids)`)."""
    ids = [int(i) for i in tokenizer(text)["input_ids"]][:max_length]
    if len(ids) < 2:
        raise ValueError(f"MIA text {row_id!r} has fewer than two tokens: {text[:60]!r}")
    return Encoded(row_id, ids, 1, [(0, 0)] * (len(ids) - 1), [False] * (len(ids) - 1))


def evaluate_rwku(
    model,
    tokenizer,
    bench,
    *,
    batch_size: int = RWKU_EVAL_SETTINGS["batch_size"],
    max_new_tokens: int = RWKU_EVAL_SETTINGS["max_new_tokens"],
) -> dict[str, Any]:
    """RWKU evaluation of `model` on the probes of the benchmark's chosen targets."""
    probes = (bench.meta.get("rwku") or {}).get("probes")
    if not probes:
        raise ValueError("benchmark has no RWKU probes (load it with atwu_core.data.rwku)")
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos_token_id: generation would never stop")
    pad_id = tokenizer.pad_token_id
    pad_id = tokenizer.eos_token_id if pad_id is None else pad_id
    max_len = getattr(model.config, "max_position_embeddings", None)
    was_training = model.training
    model.eval()
    try:
        # 1. Generation: every probe, then TriviaQA, in one pass.
        gen_rows = [(c, row) for c in PROBE_METRICS for row in probes[c]]
        prompts = [_with_suffix(tokenizer, *R.probe_prompt(row)) for _, row in gen_rows]
        trivia = probes["utility_factuality"]
        prompts += [_with_suffix(tokenizer, R.triviaqa_prompt(r["question"]), "A:") for r in trivia]
        texts = generate_from_ids(model, tokenizer, prompts, batch_size, max_new_tokens)
        # 2. Multiple choice: the letter with the highest next-token logit.
        mcq = probes["utility_general"]
        letters = [tokenizer(" " + x, add_special_tokens=False)["input_ids"][-1] for x in "ABCD"]
        mc_prompts = [_with_suffix(tokenizer, R.multiple_choice_prompt(r), "Answer:") for r in mcq]
        choice_scores = _next_token_scores(model, mc_prompts, letters, batch_size, pad_id)
        # 3. MIA: mean NLL of each raw text.
        mia = {c: probes[c] for c in ("mia_forget", "mia_retain")}
        encoded = [
            _text_encoding(tokenizer, row["text"], row["id"], max_len)
            for rows in mia.values()
            for row in rows
        ]
        device = next(model.parameters()).device
        scored = iter(_score(model, encoded, batch_size, pad_id, device))
        nll = {
            c: {row["id"]: R.mean_nll(next(scored).logp) for row in rows} for c, rows in mia.items()
        }
    finally:
        model.train(was_training)

    metrics: dict[str, Any] = {}
    generations: dict[str, dict[str, str]] = {}
    preds = iter(texts)
    for config, key in PROBE_METRICS.items():
        rows = probes[config]
        answers = [R.clean_prediction(next(preds)) for _ in rows]
        recall = R.rouge_l_recall(answers, [row["answer"] for row in rows])
        metrics[key] = metric_entry({row["id"]: r for row, r in zip(rows, recall, strict=True)})
        for row, answer in zip(rows, answers, strict=True):
            generations[row["id"]] = {
                "split": config,
                "question": row["query"],
                "answer": row["answer"],
                "prediction": answer,
            }
    for kind, levels in (("forget", (1, 2, 3)), ("neighbor", (1, 2))):
        parts = {f"level{n}": metrics[f"rwku/{kind}_l{n}_rougeL"]["agg_value"] for n in levels}
        metrics[f"rwku/{kind}_avg_rougeL"] = {
            "agg_value": float(np.mean(list(parts.values()))),
            "value_by_index": parts,
        }

    trivia_preds = [next(preds).strip() for _ in trivia]
    for name, fn in (("em", R.exact_match), ("f1", R.token_f1)):
        metrics[f"rwku/utility_factuality_{name}"] = metric_entry(
            {r["id"]: fn(p, r["answers"]) for r, p in zip(trivia, trivia_preds, strict=True)}
        )
    for row, pred in zip(trivia, trivia_preds, strict=True):
        generations[row["id"]] = {
            "split": "utility_factuality",
            "question": row["question"],
            "answer": row["answers"][0],
            "prediction": pred,
        }

    correct = R.choice_accuracy(choice_scores, [row["answer"] for row in mcq])
    metrics["rwku/utility_general_acc"] = metric_entry(
        {row["id"]: c for row, c in zip(mcq, correct, strict=True)}
    )
    for row, scores in zip(mcq, choice_scores, strict=True):
        generations[row["id"]] = {
            "split": "utility_general",
            "question": row["question"],
            "answer": R.CHOICE_LETTERS[row["answer"]],
            "prediction": R.CHOICE_LETTERS[int(np.argmax(scores))],
        }

    metrics["rwku/mia_forget_loss"] = metric_entry(nll["mia_forget"])
    metrics["rwku/mia_retain_loss"] = metric_entry(nll["mia_retain"])
    metrics["rwku/mia_auc"] = {
        "agg_value": R.mia_auc(list(nll["mia_retain"].values()), list(nll["mia_forget"].values())),
        "value_by_index": {},
    }
    return {
        "schema": EVAL_SCHEMA,
        "model": str(getattr(model.config, "_name_or_path", "") or type(model).__name__),
        "metrics": metrics,
        "generations": generations,
    }
