# ruff: noqa: E501 (prose)
# ruff: noqa: E501 (prose)
"""Plain-language explanations shown next to every view, metric, method and hyperparameter.

Text only: what a number computes and which way is better, with the METHOD.md section it comes
from. Kept apart from app.py so the app stays a thin layout layer.
"""

ATWU_BLURB = """
**Unlearning** makes a trained language model forget some training data (here: facts about a few
fictitious authors) while keeping everything else it knows.

Most methods push the *whole* answer away (gradient ascent on every token). But an answer like
"Elena Marquez was born in **Lisbon**" mostly consists of words the model also needs for other
authors ("was born in"). Pushing on those damages the model.

**ATWU** (Alternating Token-Weighted Unlearning) learns, with no labels, a weight *g* in (0, 1)
for each token: a tiny linear scorer on the model's hidden state. The aim: weight the tokens whose
loss can rise without the retain data pulling them back, not the shared words. The model step and
the scorer step alternate (METHOD.md §1).

Two controls say what the learned weights add: **atwu_frozen** is ATWU's loss with every weight
fixed at 0.5, **oracle_saturated** the same loss with the true fact spans as weights. On five
fresh benchmarks, ATWU at the authors' settings ranks fact tokens above chance but keeps the
forget answers' shared words no better than the frozen control; scoring the hidden state that
predicts each token (`scorer_position=prev`, updated every step) makes the learned weights
matter, yet it saves less than half of what the oracle saves, and tuned for forget quality the
gain is not significant. The "Seed study" tab has the numbers, with their spread over seeds.

This dashboard shows the weights token by token next to the controls, the ground-truth fact
spans and heuristic weightings (WGA, SatImp, SEUL), and compares how well each method forgets.
"""

VIEWS = {
    "token": (
        "Each box is one token of a forget answer. **Colour = the method's weight** for that token "
        "(pale = ignored, dark = pushed on hardest; the legend names the colour scale); **cyan "
        "outline = the token is part of a ground-truth fact** the model should forget, dashed "
        "orange = a value other authors share. A good token weighting colours the outlined tokens "
        "dark and leaves the rest pale. Hover a token for its numbers: the NLL (how surprised the "
        "model is by the token) before unlearning → at this step; higher = more forgotten. Press "
        "Play or move the slider to replay training. Ranking tokens well is not the same as "
        "sparing the shared words: the frozen control's row and the leaderboard tell that apart."
    ),
    "heatmap": (
        "Every probe example (rows) and answer position (columns) at the chosen step. Cyan squares "
        "mark ground-truth span tokens; hover a cell to see its token."
    ),
    "side_by_side": (
        "The same answer under several methods, all at the slider's step (a run without that "
        "snapshot shows its nearest earlier one, and says so). ATWU learns its weights; "
        "atwu_frozen is its control with every weight 0.5 (what ATWU's loss does without learned "
        "weights); oracle_saturated uses the true spans (what a perfect weighting could do). WGA "
        "and SatImp derive weights from the token's probability, SEUL picks surprising tokens, "
        "ETW weights by the model's predictive entropy and TokenUnlearn by how much the token "
        "needs the question (both 2026; our readings of the papers). "
        "The last row is the ground truth. Next to each run: its span AUROC on this example."
    ),
    "ranking": (
        "Span AUROC of each method's final token weights on every forget answer (eval.json "
        "`span/auroc`), mean ± sd over seeds. Hatched grey bars are scores, not methods: they "
        "rank tokens by a number alone (the token's NLL, its rise, or the retain model's NLL), "
        "with no unlearning. A weighting that ranks facts well need not keep the shared words: "
        "compare `forget/other_token_acc` of atwu and atwu_frozen in the leaderboard "
        "(the Seed study tab has it over five benchmarks)."
    ),
    "probe": (
        "Type any question and answer: the selected run's model scores each answer token (for "
        "ATWU: the learned scorer's weight g). This loads the model, so the first click takes a "
        "few seconds."
    ),
    "alignment": (
        "How well each method's token weights pick out the ground-truth fact tokens (METHOD.md §4), "
        "pooled over all answer tokens of the probe examples. **AUROC**: chance that a random fact "
        "token gets a higher weight than a random other token (0.5 = chance, 1 = perfect). "
        "**AP** (average precision): area under the precision–recall curve; its chance level is the "
        "share of fact tokens. Higher is better for both. Uniform weights (gradient ascent) sit at "
        "chance by construction."
    ),
    "curves": (
        "Training curves from each run's metrics.jsonl: pick a metric logged during unlearning. "
        "`forget/*` is measured on the forget set (NLL up = forgetting), `retain/*` on data the "
        "model must keep (should stay flat)."
    ),
    "tradeoff": (
        "Each point is a method (mean ± sd when it has several seeds; grey markers are the "
        "reference models, targets rather than competitors, never on the front). **Forget quality** (up is better) is a p-value: could the "
        "unlearned model's answers come from a model that never saw the forget data? It is drawn "
        "on a log axis. **Model utility** (right is better) summarises how well the model still "
        "does on everything else. The dashed line is the Pareto front: methods no other method "
        "beats on both axes at once. RWKU runs have no forget quality: plot e.g. `rwku/forget_avg_rougeL` (down "
        "= forgotten) against `rwku/neighbor_avg_rougeL` (right = related knowledge kept)."
    ),
    "leaderboard": (
        "Final metrics per method, from eval.json (METHOD.md §3): mean ± sd over its runs, ★ = best "
        "method per column, ATWU's row tinted. `selectivity` and `shared acc` say whether a method "
        "kept the forget answers' shared words; compare atwu with atwu_frozen. Click a column "
        "header to sort. `forget/*` lower = more forgotten; `retain/*`, `world_facts/*` and "
        "`model_utility` higher = better kept; `forget_quality` higher = better. RWKU runs fill the "
        "`rwku/*` columns instead (see 'What do the columns mean?'); a cell is empty where a "
        "run's benchmark has no such metric."
    ),
    "generations": (
        "What the models actually say: the question, the true answer (facts highlighted), and each "
        "run's greedy answer after unlearning. A good run no longer states the highlighted facts "
        "but still answers fluently: a fact of the true answer that survives in a run's answer "
        "is marked in orange, and an answer that degenerates into repetition is flagged."
    ),
    "experiment": (
        "Launch an unlearning run in the background (`atwu unlearn`). It writes a run folder that "
        "the other views pick up while it trains. Hover a hyperparameter for what it does."
    ),
    "study": (
        "The seed study (docs/RESULTS.md): every method and two controls, each run on five freshly "
        "generated benchmarks (generator seeds 1–5, each with its own full and retain model). "
        "**atwu_frozen** is ATWU's loss with every token weight frozen at 0.5; "
        "**oracle_saturated** the same loss with the true fact spans as weights (what a perfect "
        "weighting could do). If ATWU's learned weights matter, ATWU beats the frozen control. "
        "Numbers are means over seeds ± the 95 % confidence interval (Student t); the paired "
        "chart takes ATWU minus the control seed by seed, and an interval that excludes 0 is a "
        "measurable effect. A new `docs/results/study_*.csv` appears in the study picker."
    ),
    "data": (
        "The benchmark the runs were trained and evaluated on: questions about fictitious authors. "
        "Highlighted: the fact spans the forget methods should remove (the ground truth of the "
        "alignment view). Perturbed answers are the wrong answers used by the truth ratio."
    ),
}

# The seed-study view's metrics (atwu_core.study.VIEW_METRICS), in words.
STUDY_METRICS = {
    "selectivity": "the forget answers' shared words (not facts) still predicted at the end of a "
    "run whose fact tokens were forgotten (span-token accuracy ≤ 0.1). Higher = the method "
    "spared what it should keep.",
    "span/auroc": "how well the method's token weights single out the fact tokens (0.5 = "
    "chance, 1 = perfect).",
    "log10_fq": "log10 of forget quality, a KS-test p-value against the retain model. Higher "
    "= closer to a model that never saw the forget data.",
    "model_utility": "what the model still does on retain and world-facts data. Higher = "
    "better kept.",
}
STUDY_NO_SELECTIVITY = (
    "Selectivity is defined only for runs whose fact tokens were forgotten (span-token accuracy "
    "≤ 0.1); methods that never got there on any seed have no value and are named under the "
    "chart."
)

METRICS = {
    "forget_quality": "KS-test p-value vs the retain model's truth ratios on the forget set. Higher = better (more like never trained on it).",
    "model_utility": "Harmonic mean of probability, ROUGE-L and truth ratio on retain and world-facts splits. Higher = better.",
    "retain/prob": "Mean probability of the true retain answer. Higher = better kept.",
    "forget/rouge": "ROUGE-L recall of the greedy answer vs the true forget answer. Lower = more forgotten.",
    "retain/rouge": "ROUGE-L recall on retain questions. Higher = better kept.",
    "forget/truth_ratio": "min(TR, 1/TR) on the forget set: 1 = the true answer is no more likely than wrong ones.",
    "retain/truth_ratio": "max(0, 1 − TR) on retain: higher = the model still prefers the true answer.",
    "privacy/mink_auc": "Membership-inference AUC, forget vs never-seen authors. 0.5 = indistinguishable (best).",
    "forget/nll": "Mean NLL of forget answers during training. Rising = forgetting.",
    "retain/nll": "Mean NLL of retain answers during training. Should stay low and flat.",
    "forget/acc": "Share of forget answer tokens the model still predicts (teacher-forced). Lower = more forgotten.",
    "retain/acc": "Share of retain answer tokens predicted right. Should stay near 1.",
    "forget/prob": "Mean probability of the true forget answer. Lower = more forgotten.",
    "loss/total": "γ·L_f + α·L_r, the loss the model step minimises.",
    "loss/forget": "The method's forget loss L_f (negative for ascent methods).",
    "loss/retain": "The retain loss L_r: NLL (or KL) on retain data. Low = utility kept.",
    "weights/mean": "Mean token weight on the batch.",
    "weights/frac_above_half": "Share of tokens with weight > 0.5 (ATWU's budget targets 0.2).",
    "scorer/loss": "ATWU scorer objective L_s (METHOD.md §1).",
    "align/auroc": "Span AUROC of this snapshot's weights (0.5 = chance, 1 = perfect).",
    "align/ap": "Span average precision of this snapshot's weights. Higher = better.",
    "selectivity": "Accuracy on the forget answers' shared (non-fact) tokens at the end of a run that forgot the facts (fact-token accuracy ≤ 0.1). Higher = the method kept what it should.",
    "forget/span_token_acc": "Teacher-forced accuracy on the forget answers' fact tokens at the end. Lower = more forgotten.",
    "forget/other_token_acc": "Teacher-forced accuracy on the forget answers' other (shared) tokens at the end. Higher = kept.",
    "forget/span_acc": "Accuracy on the forget answers' fact tokens during training. Falling = forgetting.",
    "forget/other_acc": "Accuracy on the forget answers' shared tokens during training. Should stay high.",
    "span/auroc": "AUROC of the final token weights against the fact spans, on every forget answer. 0.5 = chance.",
    "span/no_end/auroc": "The same without each answer's end-of-turn token.",
    "auroc": "Chance a fact token outranks a non-fact token. 0.5 = chance, 1 = perfect.",
    "ap": "Average precision of ranking fact tokens first. Higher = better.",
    # RWKU (docs/DATA.md "RWKU"): real people as targets, probed with short questions.
    "rwku/forget_l1_rougeL": "RWKU forget, level 1 (fill in the blank about a target): ROUGE-L recall of the model's short answer. Lower = more forgotten.",
    "rwku/forget_l2_rougeL": "RWKU forget, level 2 (questions about a target): ROUGE-L recall. Lower = more forgotten.",
    "rwku/forget_l3_rougeL": "RWKU forget, level 3 (adversarial questions: role play, prefix injection, reverse query...): ROUGE-L recall. Lower = more forgotten, even under attack.",
    "rwku/forget_avg_rougeL": "Mean of RWKU's three forget levels (ROUGE-L recall). Lower = more forgotten.",
    "rwku/neighbor_l1_rougeL": "RWKU neighbours, level 1: fill-in-the-blank about things *related* to a target that must stay known. ROUGE-L recall; higher = locality kept.",
    "rwku/neighbor_l2_rougeL": "RWKU neighbours, level 2: questions about related knowledge. ROUGE-L recall; higher = locality kept.",
    "rwku/neighbor_avg_rougeL": "Mean of RWKU's two neighbour levels (ROUGE-L recall). Higher = better kept.",
    "rwku/mia_forget_loss": "Mean NLL of texts about the targets (RWKU's membership-inference 'LOSS' on the forget set). Higher = the model finds them less familiar = more forgotten.",
    "rwku/mia_retain_loss": "Mean NLL of unrelated texts the model should keep (RWKU's retain MIA set). Should stay as before unlearning.",
    "rwku/mia_auc": "AUC of telling the retain MIA texts from the forget ones by the model's likelihood. 0.5 = targets as familiar as anything else; towards 1 = targets look unseen.",
    "rwku/utility_general_acc": "RWKU utility: accuracy on MMLU-style multiple-choice questions (letters A–D). Higher = general ability kept.",
    "rwku/utility_factuality_em": "RWKU utility: TriviaQA exact match of the short answer. Higher = world knowledge kept.",
    "rwku/utility_factuality_f1": "RWKU utility: TriviaQA token F1 of the short answer. Higher = world knowledge kept.",
}

SPLITS = {
    "forget": "on the forget set (lower probability / ROUGE = more forgotten)",
    "retain": "on retain data the model must keep (higher = better)",
    "world_facts": "on general world facts (higher = better kept)",
    "real_authors": "on real authors (higher = better kept)",
    "privacy": "privacy metric",
    "align": "span alignment of the token weights (METHOD.md §4)",
    "loss": "training loss term",
    "rwku": "RWKU metric (real-world knowledge unlearning benchmark)",
}


def describe_metric(key: str) -> str:
    """A plain-language line for a metric key, from its exact name or its namespace."""
    if key in METRICS:
        return METRICS[key]
    namespace = key.split("/", 1)[0]
    return f"`{key}`: {SPLITS[namespace]}." if namespace in SPLITS else f"`{key}`"


METHODS = {
    "atwu": "Learned token weights g from a linear scorer on hidden states, saturated ascent (§1).",
    "atwu_npo": "NPO on a sequence log-prob reweighted by the learned weights 2·g (§1 plug-in).",
    "atwu_simnpo": "SimNPO with the learned weights 2·g (§1 plug-in).",
    "atwu_wga": "WGA with the learned weights 2·g (§1 plug-in).",
    "grad_ascent": "Push every answer token's probability down; no retain term. Often collapses the model.",
    "grad_diff": "Gradient ascent on forget + ordinary training on retain data.",
    "npo": "Negative preference optimisation: ascent that slows down once below a reference model.",
    "simnpo": "NPO without a reference model, on length-normalised NLL.",
    "idk_dpo": 'Prefer an "I don\'t know" answer over the forget answer (DPO).',
    "rmu": "Scramble hidden states of forget tokens towards a random direction.",
    "undial": "Distil the reference model with the target token's logit lowered.",
    "wga": "Weight each token by p^β: pushes on tokens the model still knows well.",
    "satimp": "Weight p^β1·(1−p)^β2: pushes on tokens of middling confidence.",
    "tnpo": "Token-level NPO weights relative to the reference model.",
    "seul": "Hard mask of the most surprising tokens of each answer (heuristic spans).",
    "oracle_mask": "Ascent only on the true fact spans: the upper bound a learned scorer chases.",
    "atwu_frozen": "Control: ATWU's loss with every weight fixed at 0.5. What saturation alone does, without learned weights.",
    "oracle_saturated": "Control: ATWU's loss with the weight = the true fact spans. The best any token weighting could do.",
}

HPARAMS = {
    "beta": "Sharpness of the method's weighting / saturation (see the method's formula). Larger = stronger effect.",
    "beta1": "SatImp: exponent on p (favours tokens the model is confident about).",
    "beta2": "SatImp: exponent on (1 − p) (damps tokens the model is already certain about).",
    "delta": "SimNPO margin on the length-normalised NLL.",
    "saturation": "ATWU: 'scaled' uses p^(β·g), 'plain' p^β, 'none' drops the factor (ablation).",
    "k": "SEUL: a token is selected when its log-prob is below the sequence mean minus k·std.",
    "max_gap": "SEUL: fill gaps of at most this many unselected tokens between selected ones.",
    "saturate": "Oracle: use the saturated loss instead of plain gradient difference.",
    "steering_coeff": "RMU: length of the random target vector for forget hidden states.",
    "layer": "RMU: which hidden-state layer to steer.",
    "seed": "Random seed.",
    "lr": "AdamW learning rate of the model step. Unlearning is sharp in it: on the tiny model 1e-3 forgets the facts in 50 steps and keeps the retain set; much higher wrecks everything else.",
    "alpha": "Weight of the retain loss L_r (keep what should stay). 0 = no retain term (ablation).",
    "gamma": "Weight of the forget loss L_f.",
    "update_every": "ATWU: update the scorer every n model steps (default 5).",
    "lambda_h": "ATWU scorer: entropy weight pushing g towards 0 or 1.",
    "lambda_p": "ATWU scorer: weight of the budget penalty.",
    "budget": "ATWU scorer: target fraction of tokens with g > 0.5 per sequence (0–1).",
    "lambda_2": "ATWU scorer: L2 penalty on the scorer's weights and bias.",
    "scorer_weight_decay": "ATWU scorer: SGD weight decay (1e-4 in the authors' code).",
    "scorer_position": "ATWU scorer: score token t from its own hidden state ('own', the authors' default) or from the state that predicts it ('prev').",
    "scorer_lr": "ATWU scorer: SGD learning rate.",
    "scorer_momentum": "ATWU scorer: SGD momentum.",
    "scorer_clip": "ATWU scorer: gradient-norm clip.",
    "lr_decay": "ATWU scorer: learning rate decays linearly over the scorer's updates (last one at 1/N).",
    "freeze_after": "ATWU scorer: stop updating after this model step (−1 = never).",
}

# Human labels of the launcher's hyperparameters (the code name stays in the help text).
HPARAM_LABELS = {
    "beta": "Sharpness β",
    "beta1": "SatImp β₁ (on p)",
    "beta2": "SatImp β₂ (on 1 − p)",
    "delta": "SimNPO margin δ",
    "saturation": "Saturation",
    "k": "SEUL threshold k",
    "max_gap": "SEUL gap fill",
    "saturate": "Saturated loss",
    "steering_coeff": "RMU steering length",
    "layer": "RMU layer",
    "update_every": "Scorer update every n steps",
    "lambda_h": "Scorer entropy weight λ_h",
    "lambda_p": "Scorer budget weight λ_p",
    "budget": "Scorer budget (share of g > 0.5)",
    "lambda_2": "Scorer L2 weight λ₂",
    "scorer_weight_decay": "Scorer weight decay",
    "scorer_position": "Scorer reads position",
    "scorer_lr": "Scorer learning rate",
    "scorer_momentum": "Scorer momentum",
    "scorer_clip": "Scorer gradient clip",
    "lr_decay": "Scorer learning-rate decay",
    "freeze_after": "Freeze scorer after step",
}
# Hyperparameters whose values are a fixed set: a select box, not free text.
HPARAM_CHOICES = {
    "saturation": ["scaled", "plain", "none"],
    "scorer_position": ["own", "prev"],
}

# The guided tour (5 steps, a 5-minute demo): (title, text, the tab it opens, what it sets up).
# The text says what the controls show, not more; numbers of the seed study: docs/RESULTS.md.
TOUR = (
    (
        "1 · What is unlearning?",
        "A language model was fine-tuned on facts about fictitious authors. Unlearning should "
        "make it forget a few authors' facts (their birthplace, their books...) and keep "
        "everything else: other authors, general knowledge, and the ordinary words those "
        "answers share with all the others.",
        "Token view",
        "",
    ),
    (
        "2 · Which tokens carry the facts?",
        "Look at the last row, the ground truth: the dark tokens are the facts to forget, "
        "everything pale is wording every author shares. Dashed orange marks values other "
        "authors have too (a birth year, a month). Most methods push on every token of the "
        "answer; a token weighting tries to push only on the facts.",
        "Token view",
        "start",
    ),
    (
        "3 · Watch ATWU learn its weights",
        "Press Play. At step 0 ATWU's weights are all 0.5 (one colour). As training goes on, "
        "its scorer learns, without labels, which tokens to push on: the span AUROC next to "
        "the row says how well its ranking matches the facts (0.5 = chance, 1 = perfect).",
        "Token view",
        "play",
    ),
    (
        "4 · Compare with the controls and baselines",
        "atwu_frozen uses ATWU's loss with every weight fixed at 0.5; oracle_saturated uses "
        "the true facts as weights. Here ATWU (authors' settings) ranks fact tokens above "
        "chance, yet keeps the answers' shared words no better than the frozen control; the "
        "oracle keeps most of them. With `scorer_position=prev` the learned weights do help, by "
        "less than half the oracle's margin (Seed study tab). The Alignment tab ranks every "
        "method.",
        "Alignment",
        "",
    ),
    (
        "5 · The trade-off",
        "Each point is a method: up = forgets better (forget quality), right = keeps more "
        "(model utility). The grey markers are the models before unlearning and the target "
        "model trained without the forget set. The leaderboard below has the shared-word "
        "accuracy; the Seed study tab has every method over five benchmarks.",
        "Curves & trade-offs",
        "",
    ),
)
