"""The forward passes of one unlearning step: what a method declared it needs, packed into a
`ForgetBatch`, and the retain term `L_r` (METHOD.md notation)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from atwu_core.batches import gather_logp, shift, to_device
from atwu_core.data.encode import collate
from atwu_core.losses import masked_mean
from atwu_core.methods import ForgetBatch
from atwu_core.scorer import scorer_hidden


class Forward:
    """Runs the forward passes a method needs and packs them into a `ForgetBatch`.

    The scorer's weights are not filled here: on a step where the scorer updates, the loop trains
    it on this forward's cached states first, then calls `weigh` (METHOD.md §1, the authors'
    order).
    """

    def __init__(
        self,
        spec,
        hparams,
        model,
        ref_model,
        scorer,
        position: str = "own",
        pad_id: int | None = None,
    ):
        self.spec, self.hparams = spec, hparams
        self.pad_id = pad_id  # fills the masked question ("ctx_masked_logp")
        self.model, self.ref, self.scorer = model, ref_model, scorer
        self.needs = spec.needs
        self.position = position  # which last-layer state scores y_t (ScorerConfig)
        # RMU reads one intermediate layer; ATWU's scorer reads the last (METHOD.md §1, "Scorer").
        self.layer = spec.hidden_layer(hparams)
        self.want_hidden = bool(self.needs & {"hidden", "scorer"})

    def __call__(
        self, batch: dict[str, torch.Tensor], idk: dict[str, torch.Tensor] | None = None
    ) -> tuple[ForgetBatch, torch.Tensor | None]:
        """The ForgetBatch and the detached scorer input states (B, T, D) (None without scorer)."""
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=self.want_hidden,
        )
        labels, mask, spans = shift(batch)
        fb = ForgetBatch(logp=gather_logp(out.logits[:, :-1], labels), mask=mask, labels=labels)
        scorer_states = None
        if "scorer" in self.needs:
            last = out.hidden_states[-1].detach().float()  # (B, T+1, D)
            scorer_states = scorer_hidden(last, self.position)  # (B, T, D)
        if "hidden" in self.needs:
            fb.hidden = out.hidden_states[self.layer][:, 1:]
        if "logits" in self.needs:
            fb.logits = out.logits[:, :-1]
        if "span_mask" in self.needs:
            fb.span_mask = spans
        if "ctx_masked_logp" in self.needs:
            if self.pad_id is None:
                raise ValueError(
                    f"method {self.spec.name!r} needs 'ctx_masked_logp': pass Forward(pad_id=...)"
                )
            with torch.no_grad():
                masked = self.model(
                    input_ids=mask_question(batch, self.pad_id),
                    attention_mask=batch["attention_mask"],
                )
            fb.ctx_masked_logp = gather_logp(masked.logits[:, :-1], labels)
        if self.ref is not None and self.needs & {"ref_logp", "ref_logits", "ref_hidden"}:
            with torch.no_grad():
                ref_out = self.ref(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    output_hidden_states="ref_hidden" in self.needs,
                )
            fb.ref_logp = gather_logp(ref_out.logits[:, :-1], labels)
            if "ref_logits" in self.needs:
                fb.ref_logits = ref_out.logits[:, :-1].float()
            if "ref_hidden" in self.needs:
                fb.ref_hidden = ref_out.hidden_states[self.layer][:, 1:]
        if "alt" in self.needs and idk is not None:
            alt_labels, alt_mask, _ = shift(idk)
            alt_logits = self.model(
                input_ids=idk["input_ids"], attention_mask=idk["attention_mask"]
            ).logits
            fb.alt_logp = gather_logp(alt_logits[:, :-1], alt_labels)
            fb.alt_mask = alt_mask
            with torch.no_grad():
                ref_alt = self.ref(input_ids=idk["input_ids"], attention_mask=idk["attention_mask"])
            fb.alt_ref_logp = gather_logp(ref_alt.logits[:, :-1], alt_labels)
        return fb, scorer_states

    def weigh(self, fb: ForgetBatch, scorer_states: torch.Tensor | None) -> ForgetBatch:
        """Fill the scorer's weights g (B, T) from the cached states, with the current scorer."""
        if scorer_states is not None:
            with torch.no_grad():
                fb.scorer_weights = self.scorer(scorer_states)
        return fb


def mask_question(batch: dict[str, torch.Tensor], pad_id: int) -> torch.Tensor:
    """`input_ids` with the question masked: every prompt token but the last replaced by `pad_id`.

    The prompt of a row is everything before its first answer token (`labels != -100`; rows are
    right-padded, see `collate`). Its last token, which predicts the first answer token, is kept,
    as are the answer and the padding; the attention mask is not changed, so every query row still
    attends to at least that last prompt token and the answer before it (TokenUnlearn's x̃; our
    reading). A row without answer tokens is returned unchanged.
    """
    ids, labels = batch["input_ids"], batch["labels"]  # (B, L)
    has_answer = (labels != -100).any(dim=-1)  # (B,)
    start = (labels != -100).float().argmax(dim=-1)  # (B,) first answer position
    pos = torch.arange(ids.shape[1], device=ids.device)[None, :]  # (1, L)
    question = (pos < (start[:, None] - 1)) & has_answer[:, None]  # (B, L)
    return torch.where(question, torch.full_like(ids, pad_id), ids)


def retain_loss(
    kind: str,
    model: torch.nn.Module,
    ref: torch.nn.Module | None,
    batch: dict[str, torch.Tensor],
    layer: int,
    hidden_term: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """L_r on a retain batch: answer NLL, KL(ref || θ) per token, or (kind "hidden") the method's
    `hidden_term(h_θ, h_ref, mask)` on the states at `layer` (RMU's hidden-state match)."""
    labels, mask, _ = shift(batch)
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=kind == "hidden",
    )
    if kind == "nll":
        return -masked_mean(gather_logp(out.logits[:, :-1], labels), mask)
    with torch.no_grad():
        ref_out = ref(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=kind == "hidden",
        )
    if kind == "hidden":
        h, h_ref = out.hidden_states[layer][:, 1:], ref_out.hidden_states[layer][:, 1:]  # (B, T, D)
        return hidden_term(h, h_ref, mask)
    logq = torch.log_softmax(out.logits[:, :-1].float(), -1)  # (B, T, V)
    logp_ref = torch.log_softmax(ref_out.logits[:, :-1].float(), -1)
    kl = F.kl_div(logq, logp_ref, log_target=True, reduction="none").sum(-1)  # (B, T)
    return masked_mean(kl, mask)


def idk_batch(idk_items, ids, pad, device):
    """The "I don't know" answers paired with these forget rows (IdkDPO's preferred answers),
    collated like the rows; None for methods without them."""
    if idk_items is None:
        return None
    return to_device(collate([idk_items[k] for k in ids], pad), device)
