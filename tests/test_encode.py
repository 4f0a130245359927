"""Tokenisation, span -> token labels and batching (atwu_core.data.encode, METHOD.md §4)."""

from types import SimpleNamespace

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from atwu_core.data.encode import (
    IGNORE_INDEX,
    Encoded,
    _as_id_list,
    collate,
    encode_example,
    prompt_ids,
    token_span_labels,
)
from atwu_core.data.schema import Span

TEMPLATE = (
    "{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "Ada Lovelace was born in London.",
    "Where was Ada Lovelace born?",
    "The capital of France is Paris.",
    "What is the capital of France?",
    "Ada wrote notes on the engine.",
]


@pytest.fixture(scope="module")
def tok():
    """A byte-level BPE with a tiny chat template: built in-process, no download."""
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|pad|>", "<|user|>", "<|assistant|>", "<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(CORPUS, trainer)
    out = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|end|>", pad_token="<|pad|>")
    out.chat_template = TEMPLATE
    return out


# ---- token_span_labels: pure, golden cases ------------------------------------------------


def test_span_labels_straddle_and_inside():
    # tokens: [0,3) [3,7) [7,12) [12,14); span [5, 9) cuts tokens 1 and 2 in the middle
    assert token_span_labels([(0, 3), (3, 7), (7, 12), (12, 14)], [(5, 9)]) == [
        False,
        True,
        True,
        False,
    ]


def test_span_labels_touching_boundary_is_not_overlap():
    # span [4, 9): token [0,4) ends where it starts, token [9,12) starts where it ends
    assert token_span_labels([(0, 4), (4, 9), (9, 12)], [Span(4, 9, "name")]) == [
        False,
        True,
        False,
    ]


def test_span_labels_zero_width_tokens_and_empty_inputs():
    assert token_span_labels([(5, 5), (9, 9)], [(4, 9)]) == [False, False]
    assert token_span_labels([], [(0, 3)]) == []
    assert token_span_labels([(0, 3), (3, 6)], []) == [False, False]


def test_span_labels_several_spans():
    offsets = [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert token_span_labels(offsets, [(0, 1), (7, 8)]) == [True, False, False, True]


# ---- prompt and example encoding ---------------------------------------------------------


def test_prompt_ids_is_the_chat_template(tok):
    ids = prompt_ids(tok, "Where was Ada born?")
    assert isinstance(ids, list) and all(type(i) is int for i in ids)
    assert tok.decode(ids) == "<|user|>Where was Ada born?<|end|><|assistant|>"
    assert ids[0] == tok.convert_tokens_to_ids("<|user|>")
    assert ids[-1] == tok.convert_tokens_to_ids("<|assistant|>")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ([3, 4], [3, 4]),
        ([[3, 4]], [3, 4]),
        ({"input_ids": [3, 4], "attention_mask": [1, 1]}, [3, 4]),
        (torch.tensor([[3, 4]]), [3, 4]),
    ],
)
def test_as_id_list_handles_every_return_type(raw, expected):
    assert _as_id_list(raw) == expected


def test_encode_example_layout_offsets_and_spans(tok):
    question, answer = "Where was Ada Lovelace born?", "Ada Lovelace was born in London."
    city = answer.index("London")
    ex = encode_example(tok, question, answer, [Span(city, city + 6, "city")], id="r1")
    prompt = prompt_ids(tok, question)
    assert ex.id == "r1"
    assert ex.input_ids[: ex.answer_start] == prompt
    answer_ids = ex.input_ids[ex.answer_start :]
    assert answer_ids[-1] == tok.eos_token_id
    assert tok.decode(answer_ids[:-1]) == answer
    assert len(ex.answer_offsets) == len(answer_ids) == len(ex.in_span)
    assert ex.answer_offsets[-1] == (len(answer), len(answer))
    # Offsets point at exactly the text each token decodes to, and tile the answer.
    for token_id, (start, end) in zip(answer_ids[:-1], ex.answer_offsets[:-1], strict=True):
        assert tok.decode([token_id]) == answer[start:end]
    assert "".join(answer[s:e] for s, e in ex.answer_offsets) == answer
    # The positive tokens spell the span (byte-level BPE keeps the leading space in the token).
    positive = [t for t, flag in zip(answer_ids, ex.in_span, strict=True) if flag]
    assert tok.decode(positive).strip() == "London"
    assert ex.in_span[-1] is False


def test_encode_without_end_and_without_spans(tok):
    ex = encode_example(tok, "What is the capital of France?", "Paris.", add_end=False)
    assert tok.eos_token_id not in ex.input_ids[ex.answer_start :]
    assert tok.decode(ex.input_ids[ex.answer_start :]) == "Paris."
    assert not any(ex.in_span)


def test_truncation_drops_answer_tail_and_end_token(tok):
    question, answer = "Where was Ada born?", "Ada Lovelace was born in London."
    full = encode_example(tok, question, answer)
    n_prompt = full.answer_start
    cut = encode_example(tok, question, answer, max_length=n_prompt + 2)
    assert len(cut.input_ids) == n_prompt + 2
    assert cut.input_ids == full.input_ids[: n_prompt + 2]
    assert cut.answer_offsets == full.answer_offsets[:2]
    assert tok.eos_token_id not in cut.input_ids[n_prompt:]
    with pytest.raises(ValueError, match="no room for the answer"):
        encode_example(tok, question, answer, id="r9", max_length=n_prompt)
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        encode_example(tok, question, answer, max_length=0)


def test_slow_or_templateless_tokenizer_is_rejected(tok):
    with pytest.raises(ValueError, match="fast tokenizer"):
        encode_example(SimpleNamespace(is_fast=False), "q?", "a.")
    bare = SimpleNamespace(is_fast=True, chat_template=None)
    with pytest.raises(ValueError, match="no chat template"):
        prompt_ids(bare, "q?")


# ---- collate -----------------------------------------------------------------------------


def test_collate_golden_small_batch():
    a = Encoded("a", [7, 8, 9, 10], answer_start=2, answer_offsets=[(0, 1), (1, 1)],
                in_span=[True, False])  # fmt: skip
    b = Encoded("b", [7, 11, 12, 13, 14, 15], answer_start=3,
                answer_offsets=[(0, 2), (2, 4), (4, 4)], in_span=[False, True, False])  # fmt: skip
    out = collate([a, b], pad_id=0)
    assert out["input_ids"].tolist() == [[7, 8, 9, 10, 0, 0], [7, 11, 12, 13, 14, 15]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]
    m = IGNORE_INDEX
    assert out["labels"].tolist() == [[m, m, 9, 10, m, m], [m, m, m, 13, 14, 15]]
    assert out["span_labels"].tolist() == [[0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]]
    assert out["input_ids"].dtype == out["labels"].dtype == out["attention_mask"].dtype
    assert out["input_ids"].dtype == torch.long and out["span_labels"].dtype == torch.float


def test_collate_real_examples_mask_prompt_and_padding(tok):
    rows = [
        ("Where was Ada born?", "Ada was born in London.", [(16, 22)]),
        ("What is the capital of France?", "Paris.", []),
    ]
    batch = [encode_example(tok, q, a, s, id=str(i)) for i, (q, a, s) in enumerate(rows)]
    assert any(batch[0].in_span)
    out = collate(batch, pad_id=tok.pad_token_id)
    for b, ex in enumerate(batch):
        n = len(ex.input_ids)
        labels = out["labels"][b]
        assert (labels[: ex.answer_start] == IGNORE_INDEX).all()
        assert (labels[n:] == IGNORE_INDEX).all()
        assert labels[ex.answer_start : n].tolist() == ex.input_ids[ex.answer_start :]
        assert (out["input_ids"][b, n:] == tok.pad_token_id).all()
        assert out["span_labels"][b, ex.answer_start : n].tolist() == [float(f) for f in ex.in_span]
        assert out["span_labels"][b, : ex.answer_start].sum() == 0


def test_collate_rejects_empty_and_inconsistent():
    with pytest.raises(ValueError, match="empty batch"):
        collate([], pad_id=0)
    bad = Encoded("x", [1, 2, 3], answer_start=1, answer_offsets=[(0, 1)], in_span=[True])
    with pytest.raises(ValueError, match="'x' has 1 span labels for 2 answer tokens"):
        collate([bad], pad_id=0)
