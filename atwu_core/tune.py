"""`atwu tune`: equal-budget hyperparameter search, one Optuna study per method (docs/TUNING.md).

Objective. Each trial is one evaluated unlearning run (`train.unlearn(..., evaluate=True)`) and
scores

    maximise  log10(forget_quality)
    subject to  model_utility >= 0.9 × model_utility of the full (starting) model on the same data

through TPE's `constraints_func` (the constraint value `0.9·U_full - U` must be <= 0). The full
model's utility comes from `evaluation.protocol.reference_evals`, the evaluation `atwu compare`
puts on its leaderboard. The *best* trial is the feasible one with the highest objective; when no
trial is feasible it is the highest-utility trial, and best.json says `"feasible": false`.

What is searched: the method's own `search` (its `@register`), `scorer.SCORER_SEARCH` for
methods that need a scorer, and `RUN_SEARCH` (lr, and alpha for methods with a retain term).
Names fixed with `--set` are left out of the search.

Equal budget: every method, controls included, gets the same number of *completed* trials.
A trial that diverges (non-finite loss) is completed with a floor objective and counts as
infeasible: it spent its share of the budget. A trial left RUNNING by a crash is marked failed
when the study is resumed and does not count.

Leakage: the study records the benchmark's generator seed (meta.json `seed`); `atwu compare
--tuned` refuses to report on data with that seed.

Layout: `<runs-dir>/tune/<method>-data<seed>/` holds `study.db` (SQLite, resumable),
`runs/` (one run folder per trial) and `best.json`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from atwu_core.config import UnlearnConfig
from atwu_core.space import Dimension, LogFloat, validate_space

# Run-level knobs every method shares, around UnlearnConfig's defaults (lr 1e-3, alpha 1).
RUN_SEARCH: dict[str, Dimension] = {
    "lr": LogFloat(2e-4, 3e-3),
    "alpha": LogFloat(0.5, 4.0),
}
UTILITY_FRACTION = 0.9  # a trial is feasible when its utility >= this × the full model's
FQ_FLOOR = 1e-300  # forget quality is a p-value; log10 of 0 is clamped here
BEST_FORMAT = "atwu-tune-best"
BEST_SCHEMA = 1
MAX_CONSECUTIVE_FAILURES = 3
# Run options that must match between a study's trials (and are reported in best.json).
STUDY_OPTIONS = (
    "model",
    "data",
    "retain_model",
    "gamma",
    "retain_loss",
    "epochs",
    "max_steps",
    "batch_size",
    "warmup_steps",
    "clip",
    "seed",
    "dtype",
    "grad_accum",
    "lora_r",
    "lora_alpha",
    "lora_targets",
)


def search_space(method: str, fixed: Mapping[str, Any] = ()) -> dict[str, Dimension]:
    """Everything `atwu tune` searches for `method`: run knobs, scorer settings, its own hparams,
    minus the names in `fixed` (values given with --set)."""
    from atwu_core.methods import get_method
    from atwu_core.scorer import SCORER_SEARCH

    spec = get_method(method)
    space: dict[str, Dimension] = dict(RUN_SEARCH)
    if spec.retain == "none":
        del space["alpha"]  # the loop ignores alpha: searching it would waste trials
    if "scorer" in spec.needs:
        space.update(SCORER_SEARCH)
    clash = set(space) & set(spec.search)
    if clash:
        raise ValueError(f"method {method!r}: search names {sorted(clash)} clash with run knobs")
    space.update(spec.search)
    return {k: v for k, v in space.items() if k not in fixed}


def check_scorer_search() -> None:
    """SCORER_SEARCH only names ScorerConfig fields, with sane ranges (ValueError otherwise)."""
    from atwu_core.scorer import SCORER_SEARCH, ScorerConfig

    validate_space("SCORER_SEARCH", SCORER_SEARCH, vars(ScorerConfig()))


def data_seed(data: str) -> int | None:
    """The benchmark's generator seed (meta.json `seed`), None for data without one (TOFU)."""
    from atwu_core.run_setup import load_data

    seed = load_data(data).meta.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def study_name(method: str, seed: int | None, data: str) -> str:
    if seed is not None:
        return f"{method}-data{seed}"
    return f"{method}-data-{hashlib.sha1(data.encode()).hexdigest()[:8]}"


def full_model_utility(base: UnlearnConfig) -> float:
    """model_utility of the starting model on `base.data`, from the reference evaluation
    `atwu compare` reports (cached by content hash)."""
    from atwu_core.evaluation.protocol import reference_evals

    evals = reference_evals(base)
    if not evals:
        raise ValueError(
            f"--model {base.model}: no retain model beside it and no --retain-model, so there is "
            "no forget quality to tune for"
        )
    value = evals["full"]["metrics"].get("model_utility", {}).get("agg_value")
    if not isinstance(value, (int, float)):
        raise ValueError(f"the full model's evaluation on {base.data} has no model_utility")
    return float(value)


def run_trial(config: UnlearnConfig, runs_dir: Path, run_id: str) -> dict[str, Any]:
    """One evaluated run: {"forget_quality", "model_utility", "run", "status"}.

    A non-finite loss (the trial's hparams diverged) comes back as status "diverged"."""
    from atwu_core.runs import eval_value, read_eval, read_info
    from atwu_core.train import unlearn

    try:
        path = unlearn(config, runs_dir=runs_dir, run_id=run_id, evaluate=True)
    except FloatingPointError as err:
        return {"status": "diverged", "reason": str(err), "run": str(runs_dir / run_id)}
    status = read_info(path).get("status")
    ev = read_eval(path)
    return {
        "status": status,
        "forget_quality": eval_value(ev, "forget_quality"),
        "model_utility": eval_value(ev, "model_utility"),
        "run": str(path),
    }


def objective(forget_quality: float) -> float:
    return math.log10(max(forget_quality, FQ_FLOOR))


def _constraints(trial) -> list[float]:
    return [trial.user_attrs.get("constraint", 1.0)]


def _open_study(db: Path, name: str, tune_seed: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Optuna >= 5 reads constraints set on the trial (`Trial.set_constraint`) and deprecates
    # `constraints_func`; 4.x only knows `constraints_func`. Same constraint either way.
    legacy = not hasattr(optuna.trial.Trial, "set_constraint")
    sampler = optuna.samplers.TPESampler(
        seed=tune_seed, constraints_func=_constraints if legacy else None
    )
    try:
        return optuna.create_study(
            storage=f"sqlite:///{db}",
            study_name=name,
            sampler=sampler,
            direction="maximize",
            load_if_exists=True,
        )
    except Exception as err:  # sqlalchemy / optuna storage errors: the file is not a study
        raise ValueError(
            f"{db}: not a readable Optuna study database ({type(err).__name__}); "
            "delete it to start the study over"
        ) from None


def fail_stale_trials(study) -> int:
    """Mark trials left RUNNING (by a crash or a kill) failed, so they neither count nor steer
    the sampler. One process per study: a live trial elsewhere would be marked too."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study.tell(t.number, state=TrialState.FAIL)
    return len(stale)


def completed(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def best_trial(trials: Sequence) -> tuple[Any, bool] | tuple[None, bool]:
    """(trial, feasible): the feasible trial with the highest objective, else the one with the
    highest model utility (feasible False). (None, False) for no trials."""
    if not trials:
        return None, False
    feasible = [t for t in trials if t.user_attrs.get("constraint", 1.0) <= 0]
    if feasible:
        return max(feasible, key=lambda t: (t.value, -t.number)), True
    return max(trials, key=lambda t: (t.user_attrs.get("model_utility") or 0.0, -t.number)), False


def _split(method: str, params: Mapping[str, Any], base: UnlearnConfig) -> dict[str, Any]:
    """Trial params -> {"hparams": method + scorer (resolved), "lr", "alpha"}."""
    from atwu_core.methods import get_method
    from atwu_core.run_setup import split_hparams

    knobs = {k: params[k] for k in RUN_SEARCH if k in params}
    overrides = {**base.hparams, **{k: v for k, v in params.items() if k not in RUN_SEARCH}}
    hparams, scorer = split_hparams(get_method(method), overrides)
    if scorer is not None:
        hparams = {**hparams, **dataclasses.asdict(scorer)}
    return {
        "hparams": hparams,
        "lr": knobs.get("lr", base.lr),
        "alpha": knobs.get("alpha", base.alpha),
    }


def write_best(study, study_dir: Path) -> dict[str, Any] | None:
    """best.json from the study's completed trials (None, nothing written, when there are none)."""
    trials = completed(study)
    best, feasible = best_trial(trials)
    if best is None:
        return None
    attrs = study.user_attrs
    out = {
        "format": BEST_FORMAT,
        "schema": BEST_SCHEMA,
        "method": attrs["method"],
        "study": study.study_name,
        "hparams": best.user_attrs["hparams"],
        "lr": best.user_attrs["lr"],
        "alpha": best.user_attrs["alpha"],
        "objective": best.value,
        "forget_quality": best.user_attrs.get("forget_quality"),
        "model_utility": best.user_attrs.get("model_utility"),
        "feasible": feasible,
        "note": None
        if feasible
        else "no trial met the utility constraint: this is the highest-utility trial",
        "trial": best.number,
        "run": best.user_attrs.get("run"),
        "n_trials": len(trials),
        "data": attrs["data"],
        "data_seed": attrs["data_seed"],
        "tune_seed": attrs["tune_seed"],
        "full_model_utility": attrs["full_model_utility"],
        "utility_floor": attrs["utility_floor"],
        "objective_definition": (
            f"maximise log10(forget_quality) s.t. model_utility >= {UTILITY_FRACTION} x full "
            "model's model_utility"
        ),
        "run_options": attrs["run_options"],
    }
    tmp = study_dir / "best.json.tmp"
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(study_dir / "best.json")
    return out


def tune(
    method: str,
    n_trials: int,
    base: UnlearnConfig,
    runs_dir: str | Path = "runs",
    *,
    tune_seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run `method`'s study until it holds `n_trials` completed trials; returns best.json's
    content. Resumes the study in `<runs_dir>/tune/<method>-data<seed>/` if it exists."""
    from optuna.trial import TrialState
    from tqdm import tqdm

    from atwu_core.methods import get_method

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"--trials must be an integer >= 1, got {n_trials!r}")
    spec = get_method(method)
    space = search_space(method, base.hparams)
    _split(method, {}, base)  # a bad --set fails before any run
    seed = data_seed(base.data)
    name = study_name(method, seed, base.data)
    study_dir = Path(runs_dir) / "tune" / name
    db = study_dir / "study.db"
    # A new study needs the full model's utility: computed (or found missing) before any file
    # is written, so a setup error leaves no half-made study behind.
    full = None if db.exists() else full_model_utility(base)
    study_dir.mkdir(parents=True, exist_ok=True)
    options = {k: getattr(base, k) for k in STUDY_OPTIONS} | {"hparams": dict(base.hparams)}
    study = _open_study(db, name, tune_seed)
    attrs = study.user_attrs
    if attrs:
        if attrs.get("method") != method:
            raise ValueError(f"{db}: study of {attrs.get('method')!r}, not {method!r}")
        differ = {
            k: (attrs["run_options"].get(k), v)
            for k, v in options.items()
            if attrs["run_options"].get(k) != v
        }
        if differ:
            said = ", ".join(f"{k}={a!r} (now {b!r})" for k, (a, b) in differ.items())
            raise ValueError(
                f"{db}: this study's trials ran with {said}; resume with the same run options "
                "or use another --runs-dir"
            )
        full = attrs["full_model_utility"]
    else:
        if full is None:  # a study.db without attributes: created, then the setup failed
            full = full_model_utility(base)
        for key, value in {
            "method": method,
            "data": base.data,
            "data_seed": seed,
            "tune_seed": tune_seed,
            "full_model_utility": full,
            "utility_floor": UTILITY_FRACTION * full,
            "run_options": options,
            "search": {k: repr(v) for k, v in space.items()},
        }.items():
            study.set_user_attr(key, value)
    floor = UTILITY_FRACTION * full
    fail_stale_trials(study)
    done = len(completed(study))
    bar = tqdm(total=n_trials, initial=min(done, n_trials), desc=f"tune {method}", unit="trial")
    bar.disable = not progress
    failures = 0
    try:
        _show_best(bar, study)
        while done < n_trials:
            trial = study.ask()
            params = {k: dim.suggest(trial, k) for k, dim in space.items()}
            config = _split(method, params, base)
            cfg = dataclasses.replace(
                base,
                method=spec.name,
                hparams=dict(config["hparams"]),
                lr=config["lr"],
                alpha=config["alpha"],
                save_model=False,
            )
            for key, value in config.items():
                trial.set_user_attr(key, value)
            try:
                result = run_trial(cfg, study_dir / "runs", f"{method}-trial{trial.number:03d}")
            except BaseException as err:
                trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
                study.tell(trial, state=TrialState.FAIL)
                raise
            trial.set_user_attr("run", result["run"])
            trial.set_user_attr("status", result["status"])
            if result["status"] == "diverged":
                fq, utility = FQ_FLOOR, 0.0
                trial.set_user_attr("fail_reason", result["reason"])
            else:
                fq, utility = result.get("forget_quality"), result.get("model_utility")
            if result["status"] == "interrupted":
                study.tell(trial, state=TrialState.FAIL)
                raise KeyboardInterrupt
            if fq is None or utility is None:
                failures += 1
                trial.set_user_attr("fail_reason", f"run {result['run']} has no forget_quality")
                study.tell(trial, state=TrialState.FAIL)
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise ValueError(
                        f"{failures} trials in a row gave no forget_quality/model_utility "
                        f"(last: {result['run']}); is the evaluation working?"
                    )
                continue
            failures = 0
            trial.set_user_attr("forget_quality", fq)
            trial.set_user_attr("model_utility", utility)
            trial.set_user_attr("constraint", floor - utility)
            if hasattr(trial, "set_constraint"):
                trial.set_constraint("utility", floor - utility)
            study.tell(trial, objective(fq))
            done += 1
            bar.update(1)
            write_best(study, study_dir)
            _show_best(bar, study)
    finally:
        bar.close()
    best = write_best(study, study_dir)
    assert best is not None
    return best | {"study_dir": str(study_dir)}


def _show_best(bar, study) -> None:
    best, feasible = best_trial(completed(study))
    if best is not None:
        fq = best.user_attrs.get("forget_quality")
        bar.set_postfix_str(
            f"best log10 FQ {best.value:.2f} (FQ {fq:.2g}, MU "
            f"{best.user_attrs.get('model_utility'):.3f}{'' if feasible else ', infeasible'})"
        )


def read_best(study_dir: str | Path) -> dict[str, Any]:
    """best.json of a study folder, checked; ValueError naming the file otherwise."""
    from atwu_core.methods import get_method

    path = Path(study_dir) / "best.json"
    if not Path(study_dir).is_dir():
        raise ValueError(f"--tuned {study_dir}: no such folder")
    if not path.exists():
        raise ValueError(
            f"{path}: missing (not a tuned study, or no trial of it has finished; run atwu tune)"
        )
    try:
        best = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(best, dict) or best.get("format") != BEST_FORMAT:
        raise ValueError(f"{path}: not an atwu tune best.json (format {BEST_FORMAT!r})")
    missing = [k for k in ("method", "hparams", "lr", "alpha", "data_seed") if k not in best]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    get_method(best["method"])
    return best


def find_studies(paths: Sequence[str | Path]) -> list[Path]:
    """Study folders named by `--tuned`: each path is a study folder (with best.json or
    study.db), or a folder holding study folders (e.g. runs/tune)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            raise ValueError(f"--tuned {p}: no such folder")
        if (p / "best.json").exists() or (p / "study.db").exists():
            out.append(p)
            continue
        inner = sorted(
            d for d in p.iterdir() if (d / "best.json").exists() or (d / "study.db").exists()
        )
        if not inner:
            raise ValueError(f"--tuned {p}: neither a study folder nor a folder of them")
        out.extend(inner)
    return out


def load_tuned(paths: Sequence[str | Path]) -> dict[str, dict[str, Any]]:
    """method -> best.json for every study named by `--tuned`; two studies of one method is an
    error (which one to report would be a choice made after seeing results)."""
    tuned: dict[str, dict[str, Any]] = {}
    where: dict[str, Path] = {}
    for study_dir in find_studies(paths):
        best = read_best(study_dir)
        method = best["method"]
        if method in tuned:
            raise ValueError(f"--tuned: two studies of {method!r}: {where[method]} and {study_dir}")
        tuned[method], where[method] = best | {"study_dir": str(study_dir)}, study_dir
    return tuned


def check_report_data(tuned: Mapping[str, Mapping[str, Any]], data: str) -> None:
    """Refuse to report tuned configs on the data they were tuned on (ValueError)."""
    seed = data_seed(data)
    for method, best in tuned.items():
        same = (
            best["data_seed"] == seed
            if seed is not None and best["data_seed"] is not None
            else best.get("data") == data
        )
        if same:
            what = f"generator seed {seed}" if seed is not None else "the same data"
            raise ValueError(
                f"--tuned {best.get('study_dir')}: {method} was tuned on {what}; report on a "
                f"benchmark with another seed (atwu prepare --seed N --out DIR) than --data {data}"
            )


def tune_many(
    methods: Sequence[str],
    n_trials: int,
    base: UnlearnConfig,
    runs_dir: str | Path,
    *,
    tune_seed: int = 0,
    progress: bool = True,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """The same `n_trials` for every method (equal budget), one study each, in order."""
    from atwu_core.methods import get_method

    for m in methods:  # a typo fails before hours of trials
        get_method(m)
        search_space(m, base.hparams)
    out = []
    for m in methods:
        best = tune(m, n_trials, base, runs_dir, tune_seed=tune_seed, progress=progress)
        if on_done is not None:
            on_done(best)
        out.append(best)
    return out
