"""Tests for atwu_core.conflict.retain_conflict: golden cosines on a bigram toy model, identities
and an independent `.backward()` cross-check on a tiny random Llama."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import random_llama

from atwu_core.conflict import retain_conflict

IGNORE = -100


def batch(rows):
    """A collate-style dict from (input_ids, n_prompt) rows: right padding with 0, labels -100 on
    the prompt and padding."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention_mask = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for b, (ids, n_prompt) in enumerate(rows):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        attention_mask[b, : len(ids)] = 1
        labels[b, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class Bigram(torch.nn.Module):
    """logits at position t = row input_ids[t] of a V×V table: ∇ℓ only touches that row."""

    def __init__(self, vocab):
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(vocab, vocab))

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.table[input_ids])  # (B, T, V)


@pytest.fixture(scope="module")
def llama():
    return random_llama(60, max_positions=64)


def test_bigram_golden_cosines():
    # With a zero table p is uniform (1/V) at every position. The gradient of ℓ for target a after
    # context c is p - e_a on row c, zero elsewhere. Against a retain token b ≠ a after the same c:
    # (p - e_a)·(p - e_b) = 1/V - 2/V = -1/V and |p - e_a|² = 1 - 1/V, so cos = -1/(V - 1).
    # Same context and target: cos = 1. A different context touches another row: cos = 0.
    vocab = 7
    model = Bigram(vocab)
    forget = batch(
        [([3, 1, 2], 1), ([5, 2], 1)]
    )  # tokens: (ctx 3 -> 1), (ctx 1 -> 2); (ctx 5 -> 2)
    retain = batch([([3, 4], 1)])  # one token: ctx 3 -> 4
    out = retain_conflict(model, forget, retain)
    expected = torch.tensor([[0.0, -1 / (vocab - 1), 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(out, expected)

    same = retain_conflict(model, forget, batch([([5, 2], 1)]))  # ctx 5 -> 2 on both sides
    torch.testing.assert_close(same[1], torch.tensor([0.0, 1.0, 0.0]))


def test_token_with_itself_as_retain_batch_is_one(llama):
    # A one-token answer: L_r is exactly that token's ℓ, so the two gradients coincide.
    example = batch([([5, 9, 13, 21], 3)])
    out = retain_conflict(llama, example, example)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 0.0, 1.0]]))


def test_values_in_range_and_zero_outside_answer(llama):
    forget = batch([([1, 2, 3, 4, 5, 6], 2), ([7, 8, 9, 10], 3)])
    retain = batch([([11, 12, 13, 14, 15], 2), ([16, 17, 18], 1)])
    out = retain_conflict(llama, forget, retain)
    assert out.shape == forget["input_ids"].shape
    answer = forget["labels"] != IGNORE
    assert (out[~answer] == 0).all()
    assert (out[answer].abs() > 0).all()
    assert (out.abs() <= 1).all()


def test_matches_independent_backward_on_padded_batch(llama):
    # Recompute one token's cosine the plain way: a forward of the whole padded batch, .backward()
    # into .grad, then torch's cosine_similarity. Right padding must not change anything.
    forget = batch([([1, 2, 3], 1), ([4, 5, 6, 7, 8, 9], 2)])
    retain = batch([([10, 11, 12, 13], 2), ([14, 15, 16], 1)])
    out = retain_conflict(llama, forget, retain)
    params = [p for p in llama.parameters() if p.requires_grad]

    def grad_of(b, loss_fn):
        llama.zero_grad()
        logits = llama(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        logp = F.log_softmax(logits[:, :-1], dim=-1)
        targets = b["labels"][:, 1:]
        nll = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        loss_fn(nll, targets != IGNORE).backward()
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        llama.zero_grad()
        return flat

    g_r = grad_of(retain, lambda nll, mask: nll[mask].mean())
    # Example 1, input position 4 (token 8) is predicted by position 3.
    g_t = grad_of(forget, lambda nll, mask: nll[1, 3])
    expected = F.cosine_similarity(g_t, g_r, dim=0)
    torch.testing.assert_close(out[1, 4], expected, rtol=1e-4, atol=1e-5)


def test_leaves_model_state_alone(llama):
    llama.train()
    example = batch([([5, 9, 13, 21], 2)])
    retain_conflict(llama, example, example)
    assert llama.training
    assert all(p.grad is None for p in llama.parameters())
    llama.eval()


def test_bad_input():
    model = Bigram(5)
    good = batch([([1, 2, 3], 1)])
    no_answer = batch([([1, 2, 3], 3)])
    with pytest.raises(ValueError, match="retain_batch has no answer token"):
        retain_conflict(model, good, no_answer)
    with pytest.raises(ValueError, match="forget_batch lacks 'labels'"):
        retain_conflict(model, {k: good[k] for k in ("input_ids", "attention_mask")}, good)
    bad_shape = dict(good, labels=good["labels"][:, :2])
    with pytest.raises(ValueError, match=r"forget_batch\['labels'\] has shape \(1, 2\)"):
        retain_conflict(model, bad_shape, good)
    left_padded = dict(good, attention_mask=torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match="must be right-padded"):
        retain_conflict(model, left_padded, good)
    frozen = Bigram(5).requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter with requires_grad"):
        retain_conflict(frozen, good, good)
