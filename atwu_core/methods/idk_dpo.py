"""DPO with "I don't know" answers as the preferred response (METHOD.md §2 `idk_dpo`)."""

from __future__ import annotations

import torch.nn.functional as F

from ..losses import check_hparam, mean_over_sequences, sequence_logp
from ..space import LogFloat
from .base import ForgetBatch, MethodOutput, register

# Preferred answers for IdkDPO; the loop pairs each forget question with one of them (TOFU's
# idk list is in the same spirit: refusals that carry no fact and no author name).
IDK_ANSWERS: tuple[str, ...] = (
    "I don't know.",
    "I'm not sure about that.",
    "I have no information about that.",
    "That's not something I know.",
    "I can't answer that, I'm afraid.",
    "I don't have that information.",
    "Sorry, I don't know the answer to that.",
    "I'm unable to say.",
    "I have no idea.",
    "That is beyond what I know.",
    "I'm not aware of the answer.",
    "I couldn't tell you.",
)


@register(
    "idk_dpo",
    needs=("ref_logp", "alt"),
    alt_answers=IDK_ANSWERS,
    search={"beta": LogFloat(0.02, 1.0)},
)
def idk_dpo(batch: ForgetBatch, *, beta: float = 0.1) -> MethodOutput:
    """Prefer an "I don't know" answer over the forget answer (DPO); all answer tokens alike.

    METHOD.md §2. With `r(y) = log π_θ(y|x) - log π_ref(y|x)` on sequence-summed log-probs,
    `L_f = -(2/β)·mean_i log σ(β·(r(idk_i) - r(y_i)))`: Rafailov et al., "Direct Preference
    Optimization", NeurIPS 2023, used for unlearning by TOFU (Maini et al., 2024). The 2/β scale
    follows open-unlearning and NPO (Zhang et al., 2024): without the preferred term it *is* NPO.
    """
    check_hparam("idk_dpo", "beta", beta, beta > 0, "> 0")
    win = sequence_logp(batch.alt_logp, batch.alt_mask) - sequence_logp(
        batch.alt_ref_logp, batch.alt_mask
    )  # (B,)
    lose = sequence_logp(batch.logp, batch.mask) - sequence_logp(batch.ref_logp, batch.mask)  # (B,)
    margin = win - lose  # (B,)
    loss = -mean_over_sequences(F.logsigmoid(beta * margin), batch.mask) * (2.0 / beta)
    return MethodOutput(
        loss=loss,
        token_weights=batch.mask.clone(),
        parts={"idk_dpo/margin": float(margin.detach().mean())},
    )
