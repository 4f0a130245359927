"""TOFU end to end on a randomly initialised Llama: chat-template masking, an
`atwu unlearn --data tofu:forget01@<dir>` run, and TOFU evaluation, on the real TOFU files.

Nothing downloads: the tokenizer is trained in-test on TOFU text and the model is built from a
config, both saved into a temp folder as a standard Hugging Face checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import TOFU_DIR

needs_tofu = pytest.mark.skipif(
    not (TOFU_DIR / "forget01_perturbed.json").is_file()
    or not (TOFU_DIR / "retain99.json").is_file(),
    reason=f"no local TOFU copy at {TOFU_DIR} (forget01_perturbed.json and retain99.json needed)",
)
pytestmark = needs_tofu


@pytest.fixture(scope="module")
def tofu01():
    from atwu_core.data.tofu import load_tofu

    return load_tofu(TOFU_DIR, forget="forget01")


@pytest.fixture(scope="module")
def tofu_model(tofu01, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Llama with a byte-level BPE tokenizer trained on TOFU text."""
    import torch
    from transformers.utils import logging as hf_logging

    from atwu_core.config import TinyModelConfig
    from atwu_core.model import build_tiny_model, save_model, train_tokenizer

    hf_logging.disable_progress_bar()
    # Forget rows plus a slice of retain rows: enough text for 512 merges, trained in < 1 s.
    rows = [*tofu01.forget, *tofu01.retain[:400], *tofu01.world_facts]
    texts = [t for row in rows for t in (row.question, row.answer)]
    tok = train_tokenizer(texts, vocab_size=512)
    torch.manual_seed(0)
    cfg = TinyModelConfig(
        vocab_size=512, hidden_size=32, intermediate_size=64, num_heads=2, max_positions=256
    )
    model = build_tiny_model(cfg, tok)
    path = tmp_path_factory.mktemp("tofu_model") / "model"
    save_model(model, tok, path)
    return path


def test_labels_are_ignored_exactly_on_the_chat_template_prompt(tofu01, tofu_model):
    """(a) Loss only on answer (+ end) tokens: -100 on precisely the template's prompt tokens."""
    from atwu_core.batches import encode_items
    from atwu_core.data.encode import IGNORE_INDEX, collate
    from atwu_core.model import load_model

    _, tok = load_model(tofu_model, device="cpu")
    items = tofu01.forget[:3]
    encoded = encode_items(tok, items)
    batch = collate(encoded, tok.pad_token_id)
    width = batch["labels"].shape[1]
    for b, item in enumerate(items):
        rendered = tok.apply_chat_template(
            [{"role": "user", "content": item.question}], add_generation_prompt=True, tokenize=False
        )
        # The prompt is what the template renders: user tag, question, assistant tag.
        assert rendered == f"<|user|>{item.question}<|assistant|>"
        prompt = tok(rendered, add_special_tokens=False)["input_ids"]
        answer = tok(item.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n = len(prompt) + len(answer)
        assert batch["input_ids"][b, :n].tolist() == prompt + answer
        labels = batch["labels"][b].tolist()
        assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
        assert labels[len(prompt) : n] == answer
        assert labels[n:] == [IGNORE_INDEX] * (width - n)  # padding
        # Derived spans reach the tokens: the author's name is in every forget01 answer's spans.
        assert batch["span_labels"][b, len(prompt) : n].sum() > 0


def test_cli_unlearn_on_tofu_forget01_writes_a_finished_run(tofu_model, tmp_path, capsys):
    """(b) `atwu unlearn --data tofu:forget01@<dir>` with ATWU: a finished run with span tokens."""
    from atwu_core.cli import main
    from atwu_core.runs import load_run

    runs = tmp_path / "runs"
    argv = ["unlearn", "--data", f"tofu:forget01@{TOFU_DIR}", "--model", str(tofu_model)]
    argv += ["--max-steps", "2", "--method", "atwu", "--runs-dir", str(runs), "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert f"finished: {run_dir}" in out
    run = load_run(run_dir)
    assert run.info["status"] == "finished"
    assert run.info["config"]["data"] == f"tofu:forget01@{TOFU_DIR}"
    assert run.metrics["step"].tolist()[-1] == 2
    weights = run.token_weights
    assert weights is not None and set(weights["step"]) == {0, 2}
    assert weights["in_span"].any() and not weights["in_span"].all()
    assert weights["weight"].map(math.isfinite).all()
    assert run.metrics["loss/total"].iloc[1:].map(math.isfinite).all()


def test_evaluate_model_on_tofu_forget01_gives_finite_metrics(tofu01, tofu_model):
    """(c) The TOFU protocol on a subsample of forget01 / retain / world facts: finite numbers."""
    from dataclasses import replace

    from atwu_core.evaluation.evaluate import evaluate_model
    from atwu_core.model import load_model

    model, tok = load_model(tofu_model, device="cpu")
    keep = set(tofu01.meta["retain_perturbed_ids"][:6])
    small = replace(
        tofu01,
        forget=tofu01.forget[:6],
        retain=[row for row in tofu01.retain if row.id in keep],
        world_facts=tofu01.world_facts[:6],
        meta=tofu01.meta | {"retain_perturbed_ids": sorted(keep)},
    )
    reference = {row.id: 1.0 for row in small.forget}
    result = evaluate_model(
        model, tok, small, reference_truth_ratios=reference, batch_size=8, max_new_tokens=4
    )
    metrics = result["metrics"]
    for split in ("forget", "retain", "world_facts"):
        for name in ("prob", "rouge", "truth_ratio", "exact_mem", "extraction_strength"):
            value = metrics[f"{split}/{name}"]["agg_value"]
            assert math.isfinite(value), f"{split}/{name} = {value}"
        assert len(metrics[f"{split}/prob"]["value_by_index"]) == 6
    assert 0 <= metrics["model_utility"]["agg_value"] <= 1
    assert math.isfinite(metrics["forget_quality"]["agg_value"])
    assert {g["split"] for g in result["generations"].values()} == {
        "forget",
        "retain",
        "world_facts",
    }
