"""Tests for atwu_core.evaluation.evaluate: batching/padding against unbatched reference
computations, a memorised tiny model (metrics move the right way), bad input, and the eval cache."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import random_llama
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from atwu_core.cache import cached_eval, eval_cache_key
from atwu_core.data.encode import encode_example, prompt_ids
from atwu_core.data.schema import Benchmark, QAItem
from atwu_core.evaluation import metrics as M
from atwu_core.evaluation.evaluate import evaluate_model

CHAT = (
    "{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def author_row(i, name, book, city, wrong_books, wrong_cities):
    # Alternate question types so rows (and their answer lengths) differ.
    if i % 2 == 0:
        return QAItem(
            id=f"a{i}",
            author_id=i // 2,
            author=name,
            question=f"Who wrote {book}?",
            answer=f"{name} wrote {book}.",
            paraphrased_answer=f"{book} is by {name}.",
            paraphrased_question=f"Whose book is {book}?",
            perturbed_answer=[f"{name} wrote {w}." for w in wrong_books],
        )
    return QAItem(
        id=f"a{i}",
        author_id=i // 2,
        author=name,
        question=f"Where was {name} born?",
        answer=f"{name} was born in {city}.",
        paraphrased_answer=f"{name} comes from {city}.",
        paraphrased_question=f"What is the birthplace of {name}?",
        perturbed_answer=[f"{name} was born in {w}." for w in wrong_cities],
    )


def make_bench():
    names = ["Anna Berg", "Tom Hale", "Ida Roos", "Ola Dahl", "Eva Lind"]
    books = ["Red Rain", "Blue Sky", "Grey Sea", "Dark Wood", "Gold Sand"]
    cities = ["Oslo", "Lima", "Pune", "Kiev", "Rome"]
    rows = []
    for a in range(5):
        others = [(a + k) % 5 for k in (1, 2, 3)]
        for q in (0, 1):
            rows.append(
                author_row(
                    2 * a + q,
                    names[a],
                    books[a],
                    cities[a],
                    [books[o] for o in others],
                    [cities[o] for o in others],
                )
            )
    facts = [
        ("w0", "What is the capital of France?", "Paris", ["Rome", "Oslo", "Lima"]),
        ("w1", "How many legs has a spider?", "Eight", ["Six", "Four", "Ten"]),
    ]
    world = [
        QAItem(id=i, author_id=-1, author="", question=q, answer=a, perturbed_answer=w)
        for i, q, a, w in facts
    ]
    # Authors 0-2 retain, author 3 forget, author 4 never trained on (holdout).
    return Benchmark(
        forget=rows[6:8], retain=rows[:6], world_facts=world, holdout=rows[8:], meta={"schema": 1}
    )


def all_texts(bench):
    for split in (bench.forget, bench.retain, bench.world_facts, bench.holdout):
        for item in split:
            yield item.question
            yield item.answer
            yield item.paraphrased_answer
            yield from item.perturbed_answer


@pytest.fixture(scope="module")
def bench():
    return make_bench()


@pytest.fixture(scope="module")
def tokenizer(bench):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(all_texts(bench)), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>")
    fast.chat_template = CHAT
    return fast


def tiny_llama(tokenizer, seed=0):
    return random_llama(
        len(tokenizer),
        hidden=64,
        max_positions=96,
        seed=seed,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


@pytest.fixture(scope="module")
def random_model(tokenizer):
    return tiny_llama(tokenizer, seed=0)


@pytest.fixture(scope="module")
def random_eval(random_model, tokenizer, bench):
    # batch_size 3 forces several batches with padding in both scoring and generation.
    return evaluate_model(random_model, tokenizer, bench, batch_size=3, max_new_tokens=12)


@pytest.fixture(scope="module")
def memorised(tokenizer, bench):
    """A tiny model trained to near-zero loss on the forget, retain and world-facts answers."""
    from atwu_core.data.encode import collate

    model = tiny_llama(tokenizer, seed=1)
    pairs = [(r.question, r.answer) for r in bench.forget + bench.retain + bench.world_facts]
    batch = collate([encode_example(tokenizer, q, a) for q, a in pairs], tokenizer.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 1e-2:
            break
    assert loss.item() < 1e-2, "the fixture model did not memorise its answers"
    return model


def unbatched_token_logp(model, tokenizer, question, answer):
    """Reference: one unpadded forward, plain log_softmax over the full vocabulary."""
    enc = encode_example(tokenizer, question, answer)
    ids = torch.tensor([enc.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]  # (T, V)
    logp = torch.log_softmax(logits.double(), dim=-1)
    positions = range(enc.answer_start, len(enc.input_ids))
    return np.array([logp[t - 1, enc.input_ids[t]].item() for t in positions])


def mean_nll(model, tokenizer, question, answer):
    return -unbatched_token_logp(model, tokenizer, question, answer).mean()


# ----------------------------------------------------------------------------- structure


def test_eval_body_shape(random_eval, bench):
    assert random_eval["schema"] == 1
    metrics = random_eval["metrics"]
    per_split = ("prob", "rouge", "truth_ratio", "exact_mem", "extraction_strength")
    expected = {f"{s}/{m}" for s in ("forget", "retain", "world_facts") for m in per_split}
    expected |= {"forget/truth_ratio_raw", "privacy/mink_auc", "model_utility"}
    assert set(metrics) == expected  # no forget_quality without a reference
    for split in ("forget", "retain", "world_facts"):
        ids = {item.id for item in getattr(bench, split)}
        assert set(metrics[f"{split}/prob"]["value_by_index"]) == ids
    assert set(random_eval["generations"]) == {
        item.id for s in (bench.forget, bench.retain, bench.world_facts) for item in s
    }
    json.dumps(random_eval, allow_nan=False)  # eval.json must be strict JSON


# ----------------------------------------------------------------------------- numbers


def test_prob_and_truth_ratio_match_unbatched_reference(
    random_eval, random_model, tokenizer, bench
):
    metrics = random_eval["metrics"]
    for item in bench.forget + bench.retain:
        split = "forget" if item in bench.forget else "retain"
        p = math.exp(-mean_nll(random_model, tokenizer, item.question, item.answer))
        assert metrics[f"{split}/prob"]["value_by_index"][item.id] == pytest.approx(p, rel=1e-4)
    # Forget TR uses the paraphrase as the correct answer (METHOD.md §3).
    item = bench.forget[1]
    correct = mean_nll(random_model, tokenizer, item.question, item.paraphrased_answer)
    wrong = [mean_nll(random_model, tokenizer, item.question, w) for w in item.perturbed_answer]
    tr = math.exp(correct - np.mean(wrong))
    raw = metrics["forget/truth_ratio_raw"]["value_by_index"][item.id]
    assert raw == pytest.approx(tr, rel=1e-4)
    assert metrics["forget/truth_ratio"]["value_by_index"][item.id] == pytest.approx(
        min(tr, 1 / tr)
    )
    # World facts compare the answer itself against the wrong ones.
    fact = bench.world_facts[0]
    correct = mean_nll(random_model, tokenizer, fact.question, fact.answer)
    wrong = [mean_nll(random_model, tokenizer, fact.question, w) for w in fact.perturbed_answer]
    tr = math.exp(correct - np.mean(wrong))
    score = metrics["world_facts/truth_ratio"]["value_by_index"][fact.id]
    assert score == pytest.approx(max(0.0, 1 - tr), rel=1e-4, abs=1e-6)


def test_mink_auc_and_utility_are_consistent(random_eval, random_model, tokenizer, bench):
    metrics = random_eval["metrics"]
    mink = metrics["privacy/mink_auc"]
    item = bench.holdout[0]
    ref = M.mink_score(unbatched_token_logp(random_model, tokenizer, item.question, item.answer))
    assert mink["value_by_index"][item.id] == pytest.approx(ref, rel=1e-4)
    members = [mink["value_by_index"][i.id] for i in bench.forget]
    nonmembers = [mink["value_by_index"][i.id] for i in bench.holdout]
    assert mink["agg_value"] == M.membership_auc(members, nonmembers)
    parts = metrics["model_utility"]["value_by_index"]
    assert sorted(parts) == sorted(
        f"{s}/{m}" for s in ("retain", "world_facts") for m in ("prob", "rouge", "truth_ratio")
    )
    assert metrics["model_utility"]["agg_value"] == pytest.approx(
        M.model_utility([metrics[k]["agg_value"] for k in parts])
    )


def test_batched_generation_matches_one_by_one(random_eval, random_model, tokenizer, bench):
    # Left padding must not change a greedy answer: rerun each question alone, without padding.
    eos = tokenizer.eos_token_id
    for item in bench.forget + bench.world_facts:
        ids = torch.tensor([prompt_ids(tokenizer, item.question)])
        with torch.no_grad():
            out = random_model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=12,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id,
            )[0, ids.shape[1] :].tolist()
        out = out[: out.index(eos)] if eos in out else out
        expected = tokenizer.decode(out, skip_special_tokens=True).strip()
        assert random_eval["generations"][item.id]["prediction"] == expected
    gen = random_eval["generations"][bench.forget[0].id]
    rouge = random_eval["metrics"]["forget/rouge"]["value_by_index"][bench.forget[0].id]
    assert rouge == M.rouge_l_recall([gen["prediction"]], [gen["answer"]])[0]


def test_memorised_model_scores_as_memorised(memorised, tokenizer, bench, random_eval):
    out = evaluate_model(memorised, tokenizer, bench, batch_size=4, max_new_tokens=16)
    m = {k: v["agg_value"] for k, v in out["metrics"].items()}
    for split in ("forget", "retain", "world_facts"):
        assert m[f"{split}/prob"] > 0.95
        assert m[f"{split}/rouge"] == 1.0
        assert m[f"{split}/exact_mem"] == 1.0
        assert m[f"{split}/extraction_strength"] == 1.0
    for item in bench.forget:
        assert out["generations"][item.id]["prediction"] == item.answer
    # Never trained on the holdout author: the forget rows look like members.
    assert m["privacy/mink_auc"] == 1.0
    # World facts: trained on the true answer, never on the wrong ones, so TR is far below 1.
    assert m["world_facts/truth_ratio"] > 0.9
    # The random model is far from all of this.
    r = {k: v["agg_value"] for k, v in random_eval["metrics"].items()}
    assert r["forget/prob"] < 0.05
    assert r["world_facts/truth_ratio"] < m["world_facts/truth_ratio"]


def test_forget_quality_with_reference(random_model, tokenizer, bench, random_eval):
    raw = random_eval["metrics"]["forget/truth_ratio_raw"]
    # The model against its own truth ratios: identical samples, KS p-value 1.
    out = evaluate_model(
        random_model, tokenizer, bench, reference_truth_ratios=raw, max_new_tokens=2
    )
    assert out["metrics"]["forget_quality"]["agg_value"] == pytest.approx(1.0)
    # A plain sequence works too; fully separated samples of 2 and 2 give p = 2 / C(4, 2) = 1/3.
    far = [1e6, 2e6]
    out = evaluate_model(
        random_model, tokenizer, bench, reference_truth_ratios=far, max_new_tokens=2
    )
    assert out["metrics"]["forget_quality"]["agg_value"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="cover other forget rows"):
        evaluate_model(
            random_model, tokenizer, bench, reference_truth_ratios={"zz": 1.0}, max_new_tokens=2
        )


def test_restores_train_mode(random_model, tokenizer, bench):
    random_model.train()
    evaluate_model(random_model, tokenizer, bench, splits=("world_facts",), max_new_tokens=2)
    assert random_model.training
    random_model.eval()


def test_tofu_retain_uses_only_the_perturbed_rows(random_model, tokenizer):
    # TOFU's retain split has every retain row; only `retain_perturbed_ids` carry wrong answers.
    tofu = make_bench()
    tofu.retain[4].perturbed_answer = []
    tofu.retain[5].paraphrased_answer = ""
    tofu.meta["retain_perturbed_ids"] = ["a0", "a1", "a3"]
    out = evaluate_model(random_model, tokenizer, tofu, splits=("retain",), max_new_tokens=2)
    assert set(out["metrics"]["retain/prob"]["value_by_index"]) == {"a0", "a1", "a3"}
    assert set(out["generations"]) == {"a0", "a1", "a3"}


# ----------------------------------------------------------------------------- bad input


def test_row_without_perturbed_answers_names_split_and_row(random_model, tokenizer, bench):
    bad = make_bench()
    bad.retain[2].perturbed_answer = []
    with pytest.raises(ValueError, match=r"split 'retain', row 'a2': no perturbed_answer"):
        evaluate_model(random_model, tokenizer, bad)


def test_tokenizer_larger_than_embedding(tokenizer, bench):
    small = random_llama(len(tokenizer) - 10, hidden=16, layers=1, heads=2, seed=None)
    with pytest.raises(ValueError, match=r"tokenizer has 300 tokens but .* only 290 rows"):
        evaluate_model(small, tokenizer, bench)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"splits": ("forget", "retian")}, "splits must be a non-empty subset"),
        ({"splits": ("real_authors",)}, "split 'real_authors' is empty"),
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"splits": ("retain",), "reference_truth_ratios": [1.0]}, "'forget' is not among"),
    ],
)
def test_bad_arguments(random_model, tokenizer, bench, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_model(random_model, tokenizer, bench, max_new_tokens=1, **kwargs)


# ----------------------------------------------------------------------------- cache


def test_cached_eval_recomputes_exactly_when_inputs_change(tmp_path):
    model_dir, bench_dir, cache = tmp_path / "model", tmp_path / "bench", tmp_path / "cache"
    (model_dir / "sub").mkdir(parents=True)
    bench_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"\x00\x01weights")
    (model_dir / "sub" / "config.json").write_text("{}")
    (bench_dir / "forget.jsonl").write_text('{"id": "a"}\n')
    calls = []

    def compute():
        calls.append(1)
        return {"schema": 1, "metrics": {"forget/prob": {"agg_value": len(calls)}}}

    def run(settings=None):
        return cached_eval(model_dir, bench_dir, cache, settings or {"max_new_tokens": 48}, compute)

    first = run()
    assert run() == first and len(calls) == 1  # cache hit: compute not called again
    (model_dir / "model.safetensors").write_bytes(b"\x00\x02weights")  # one byte differs
    assert run()["metrics"]["forget/prob"]["agg_value"] == 2
    (bench_dir / "forget.jsonl").write_text('{"id": "b"}\n')
    run()
    run(settings={"max_new_tokens": 16})
    assert len(calls) == 4
    run(settings={"max_new_tokens": 16})
    assert len(calls) == 4
    # A file renamed with identical bytes is a different model too.
    (model_dir / "sub" / "config.json").rename(model_dir / "sub" / "generation_config.json")
    run(settings={"max_new_tokens": 16})
    assert len(calls) == 5
    # A torn entry is recomputed, not returned or fatal.
    key = eval_cache_key(model_dir, bench_dir, {"max_new_tokens": 16})
    (cache / f"eval-{key}.json").write_text('{"schema": 1, "metr')
    run(settings={"max_new_tokens": 16})
    assert len(calls) == 6


def test_cache_inside_model_dir_does_not_invalidate_itself(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"abc")
    calls = []

    def compute():
        calls.append(1)
        return {"ok": True}

    for _ in range(2):
        cached_eval(tmp_path, tmp_path, tmp_path / ".cache", {}, compute)
    assert len(calls) == 1


def test_cache_key_bad_input(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ValueError, match=r"model_dir .* holds no files"):
        eval_cache_key(tmp_path / "m", tmp_path, {})
    (tmp_path / "m" / "w").write_text("x")
    with pytest.raises(ValueError, match=r"bench_dir .* is not a directory"):
        eval_cache_key(tmp_path / "m", tmp_path / "nope", {})
    with pytest.raises(ValueError, match="settings must be JSON-serialisable"):
        eval_cache_key(tmp_path / "m", tmp_path / "m", {"f": object()})


def test_reference_evals_of_loader_data_are_cached_per_folder_and_selection(tmp_path, monkeypatch):
    from atwu_core.cache import cached_value

    monkeypatch.setenv("ATWU_CACHE", str(tmp_path / "cache"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "tofu").mkdir()
    (tmp_path / "tofu" / "forget01.json").write_text("{}")
    calls = []
    one, five = f"tofu:forget01@{tmp_path / 'tofu'}", f"tofu:forget05@{tmp_path / 'tofu'}"

    def value(data: str) -> dict:
        model = str(tmp_path / "model")
        return cached_value(model, data, {"v": 1}, lambda: calls.append(data) or {})

    for data in (one, one, five):
        value(data)
    assert calls == [one, five]  # the second forget01 was a cache hit
    (tmp_path / "tofu" / "forget01.json").write_text('{"changed": 1}')  # new bytes, new key
    value(one)
    value("tofu:forget01@hf:locuslab/TOFU")  # hub data: never cached
    value("tofu:forget01@hf:locuslab/TOFU")
    assert len(calls) == 5


def test_tofu_metrics_is_pure_arithmetic_on_hand_made_answers():
    """Golden numbers by hand: no model, no tokenizer, just the scored answers."""
    from types import SimpleNamespace

    from atwu_core.evaluation.evaluate import ModelAnswers, _Scored, tofu_metrics

    def scored(logps, correct=None):
        logp = np.array(logps, dtype=float)
        hits = np.ones(len(logps), bool) if correct is None else np.array(correct)
        return _Scored(logp=logp, correct=hits)

    f1 = SimpleNamespace(
        id="f1", question="Where?", answer="Paris France", perturbed_answer=["a", "b"]
    )
    r1 = SimpleNamespace(id="r1", question="Which?", answer="Rome Italy", perturbed_answer=["c"])
    answers = ModelAnswers(
        rows={"forget": [f1], "retain": [r1]},
        holdout=[],
        scored={
            ("forget", 0, "answer", 0): scored([-0.5, -1.5], [True, False]),  # NLL 1
            ("forget", 0, "paraphrase", 0): scored([-1.0, -1.0]),  # NLL 1
            ("forget", 0, "wrong", 0): scored([-2.0, -2.0]),  # NLL 2
            ("forget", 0, "wrong", 1): scored([-3.0, -3.0]),  # NLL 3
            ("retain", 0, "answer", 0): scored([-0.1, -0.1]),  # NLL 0.1
            ("retain", 0, "paraphrase", 0): scored([-0.2]),  # NLL 0.2
            ("retain", 0, "wrong", 0): scored([-1.2]),  # NLL 1.2
        },
        predictions={"forget": ["Paris"], "retain": ["Rome Italy"]},
    )
    out = tofu_metrics(answers)
    m = {k: v["agg_value"] for k, v in out["metrics"].items()}
    assert m["forget/prob"] == pytest.approx(math.exp(-1.0))
    # TR = exp(NLL_paraphrase - mean wrong NLL) = exp(1 - 2.5); forget score min(TR, 1/TR)
    assert m["forget/truth_ratio_raw"] == pytest.approx(math.exp(-1.5))
    assert m["forget/truth_ratio"] == pytest.approx(math.exp(-1.5))
    assert m["forget/rouge"] == pytest.approx(0.5)  # "Paris" recalls 1 of 2 reference words
    assert m["forget/exact_mem"] == pytest.approx(0.5)
    # retain: prob e^-0.1, ROUGE 1, truth-ratio score 1 - exp(0.2 - 1.2); utility = their hmean
    parts = [math.exp(-0.1), 1.0, 1 - math.exp(-1.0)]
    assert m["retain/truth_ratio"] == pytest.approx(parts[2])
    assert m["model_utility"] == pytest.approx(3 / sum(1 / p for p in parts))
    assert "forget_quality" not in m and "privacy/mink_auc" not in m
    assert out["generations"]["f1"] == {
        "split": "forget",
        "question": "Where?",
        "answer": "Paris France",
        "prediction": "Paris",
    }
