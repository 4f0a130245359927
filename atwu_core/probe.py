"""Score any text with a run's trained ATWU scorer: which tokens would it call forget-specific?

The scorer reads last-layer hidden states (METHOD.md §1). It is paired with the run's final model
when the run saved one (`--save-model`), else with the starting model named in its config, whose
hidden states the scorer saw at the start of training. Models are cached per path in-process.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import torch

from atwu_core.data.encode import collate, encode_example
from atwu_core.model import load_model
from atwu_core.runs import read_info
from atwu_core.scorer import load_scorer, scorer_hidden

REPO_ROOT = Path(__file__).resolve().parents[1]


def resolve_model_path(run_dir: Path, configured: str) -> str:
    """The run's own final model, else its configured model (relative paths tried from the
    current folder, then from the repository root, so sample runs work from anywhere)."""
    if (run_dir / "model" / "config.json").exists():
        return str(run_dir / "model")
    for base in (Path.cwd(), REPO_ROOT):
        candidate = base / configured
        if candidate.is_dir():
            return str(candidate)
    return configured  # a hub id: load_model explains what is wrong if it cannot be loaded


@functools.lru_cache(maxsize=2)
def _cached_model(path: str):
    model, tokenizer = load_model(path, device="cpu")
    return model.eval(), tokenizer


def score_text(run_path: str | Path, question: str, answer: str) -> pd.DataFrame:
    """Per answer token: text, offsets, scorer weight g and the model's NLL.

    Raises ValueError when the run has no scorer (not an ATWU-family method) or inputs are empty.
    """
    run_dir = Path(run_path)
    if not question.strip() or not answer.strip():
        raise ValueError("type both a question and an answer to score")
    scorer_file = run_dir / "scorer.safetensors"
    if not scorer_file.exists():
        raise ValueError(
            f"run {run_dir.name} has no trained scorer (scorer.safetensors): only ATWU-family "
            "runs (atwu, atwu_npo, atwu_simnpo, atwu_wga) learn one"
        )
    info = read_info(run_dir)
    model_path = resolve_model_path(run_dir, info.get("config", {}).get("model", ""))
    model, tokenizer = _cached_model(model_path)
    scorer = load_scorer(scorer_file)
    enc = encode_example(tokenizer, question, answer, add_end=False)
    batch = collate([enc], tokenizer.pad_token_id)
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], output_hidden_states=True)
        position = info.get("config", {}).get("scorer", {}).get("scorer_position", "own")
        hidden = scorer_hidden(out.hidden_states[-1].float(), position)  # (1, T, D)
        weights = scorer(hidden)[0]  # (T,)
        logp = torch.log_softmax(out.logits[0, :-1].float(), -1)  # (T, V)
        targets = batch["input_ids"][0, 1:]  # (T,)
        nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (T,)
    rows = []
    for pos, tok_id in enumerate(enc.input_ids[enc.answer_start :]):
        t = enc.answer_start - 1 + pos
        start, end = enc.answer_offsets[pos]
        rows.append(
            {
                "token": tokenizer.decode([tok_id]),
                "char_start": start,
                "char_end": end,
                "weight": weights[t].item(),
                "nll": nll[t].item(),
            }
        )
    df = pd.DataFrame(rows)
    df.attrs["model"] = model_path
    return df
