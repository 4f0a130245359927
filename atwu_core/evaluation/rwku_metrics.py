"""RWKU's metrics and prompts as pure functions (no model, no torch): what `rwku_eval` computes.

Definitions follow RWKU's evaluation code (github.com/jinzhuoran/RWKU,
LLaMA-Factory/src/llmtuner/eval/, see docs/DATA.md "RWKU"):

- forget / neighbour probes: ROUGE-L *recall* of a short greedy answer against the gold answer
  (`eval_forget.py`, `eval_neighbor.py`; an empty answer counts as "NOANSWER"). Forget: lower =
  more forgotten; neighbour: higher = locality kept. RWKU uses the `rouge` package; here it is
  `rouge-score` without stemming (same LCS recall on whitespace/alphanumeric tokens).
- MIA (`eval_mia.py`): per text, the mean token negative log-likelihood ("LOSS" attack) on the
  forget members (FM, higher after unlearning = forgotten) and retain members (RM, should stay).
  We add one number RWKU does not report: the AUC of telling RM from FM texts by their
  log-likelihood (0.5 before unlearning if both are equally familiar; towards 1 = the forget
  texts look unseen).
- utility general (`eval_mmlu.py`): MMLU-style multiple choice, the argmax over the logits of the
  letters A-D after "Answer:"; accuracy.
- utility factuality (`eval_triviaqa.py`): TriviaQA exact match and token F1, best over the gold
  aliases, on SQuAD-normalised text.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from atwu_core.evaluation.metrics import membership_auc

NO_ANSWER = "NOANSWER"  # RWKU scores an empty generation as this string
CHOICE_LETTERS = ("A", "B", "C", "D")
# RWKU's five-shot TriviaQA prefix (eval_triviaqa.py), reproduced so scores stay comparable.
TRIVIAQA_SHOTS = (
    ("When did men's figure skating become a summer Olympic sport?", "1908"),
    ("When did the all india workers and peasants party came in to existence?", "November 1925"),
    ("Flight that went down in the hudson river?", "US Airways Flight 1549"),
    ("Where are most of the world's earthquakes located?", "Rim of Fire"),
    ("Csi when do grissom and sara reunite?", "series finale"),
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


# ----------------------------------------------------------------------------- prompts


def probe_prompt(row: Mapping[str, Any]) -> tuple[str, str]:
    """(user message, text appended after the chat template's assistant header) for a probe.

    Level 1 is fill-in-the-blank, levels 2-3 question answering; two adversarial types are
    phrased differently (eval_forget.py): "affirmative suffix" ends inside the user's sentence
    (no "Answer:"), "incontext learning" already holds "Question:" turns.
    """
    query, kind = row["query"], row.get("type", "")
    if str(row["level"]) == "1":
        blank = "Please complete the blank in the following question."
        return f"{blank}\nQuestion: {query}\n", "Answer:"
    if kind == "affirmative suffix":
        return f"Please briefly answer the following question.\nQuestion: {query}", ""
    if kind == "incontext learning":
        return f"Please briefly answer the following question.\n{query}\n", "Answer:"
    return f"Please briefly answer the following question.\nQuestion: {query}\n", "Answer:"


def _mc_block(question: str, choices: Sequence[str], answer: int | None) -> str:
    text = "Question: " + question
    for letter, choice in zip(CHOICE_LETTERS, choices, strict=False):
        text += f"\n{letter}. {choice}"
    if answer is not None:
        text += f"\nAnswer: {CHOICE_LETTERS[answer]}\n\n"
    return text


def multiple_choice_prompt(row: Mapping[str, Any]) -> str:
    """eval_mmlu.py's user message: the row's few-shot `examples`, then its question."""
    task = str(row.get("task", "general knowledge")).replace("_", " ")
    text = f"The following are multiple choice questions (with answers) about {task}.\n\n"
    for ex in row.get("examples") or []:
        text += _mc_block(ex["question"], ex["choices"], ex["answer"])
    text += "Please following the previous examples and answer the given question.\n"
    return text + _mc_block(row["question"], row["choices"], None)


def triviaqa_prompt(question: str) -> str:
    """eval_triviaqa.py's user message: five solved questions, then this one."""
    shots = "".join(f"Q: {q}\nA: {a}\n" for q, a in TRIVIAQA_SHOTS)
    return f"\n{shots}Please briefly answer the following question:\nQ: {question}\n"


# ----------------------------------------------------------------------------- metrics


def clean_prediction(text: str) -> str:
    """RWKU's short answer: generation stops at the first newline; empty -> "NOANSWER"."""
    first = text.split("\n", 1)[0].strip()
    return first or NO_ANSWER


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer  # lazy: nltk-backed import, ~0.3 s

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-item ROUGE-L recall: LCS length / reference tokens (RWKU's forget/neighbour score)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not references:
        raise ValueError("no predictions to score")
    scorer = _scorer()
    # rouge_score's argument order is (target, prediction).
    return [
        scorer.score(ref, pred or NO_ANSWER)["rougeL"].recall
        for pred, ref in zip(predictions, references, strict=True)
    ]


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals a normalised gold alias, else 0.0."""
    pred = normalize_answer(prediction).split()
    return float(any(pred == normalize_answer(a).split() for a in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """Best token-level F1 over the gold aliases (bags of normalised words)."""

    def f1(pred: list[str], gold: list[str]) -> float:
        if not pred or not gold:
            return float(pred == gold)
        common = sum((Counter(pred) & Counter(gold)).values())
        if common == 0:
            return 0.0
        precision, recall = common / len(pred), common / len(gold)
        return 2 * precision * recall / (precision + recall)

    pred = normalize_answer(prediction).split()
    return max(f1(pred, normalize_answer(a).split()) for a in answers)


def choice_accuracy(
    choice_scores: Sequence[Sequence[float]], answers: Sequence[int]
) -> list[float]:
    """Per question: 1.0 if the highest-scored choice is the gold one (first wins a tie)."""
    scores = np.asarray(choice_scores, dtype=np.float64)  # (N, C)
    if scores.ndim != 2 or scores.shape[0] != len(answers):
        raise ValueError(f"choice_scores must be (N={len(answers)}, C), got {scores.shape}")
    return [float(p == a) for p, a in zip(scores.argmax(axis=1), answers, strict=True)]


def mean_nll(token_logps: Sequence[float]) -> float:
    """RWKU's LOSS attack score of one text: mean negative log-likelihood of its tokens."""
    logps = np.asarray(token_logps, dtype=np.float64)
    if logps.size == 0:
        raise ValueError("a text needs at least one scored token")
    return float(-logps.mean())


def mia_auc(retain_nll: Sequence[float], forget_nll: Sequence[float]) -> float:
    """AUC of ranking retain texts above forget texts by log-likelihood (−NLL): 0.5 = forget
    texts as familiar as retain texts; 1 = every forget text looks less familiar."""
    return membership_auc([-x for x in retain_nll], [-x for x in forget_nll])
