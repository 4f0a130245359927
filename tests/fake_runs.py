"""Realistic fake run folders and a tiny benchmark, written through `atwu_core.runs`.

Used by the run-store, viz and dashboard tests (and handy for developing the dashboard before real
runs exist). Deterministic: every number comes from a seeded numpy Generator.
"""

from __future__ import annotations

import json
import re
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from atwu_core.runs import RunWriter

# (id, question, answer, spans as (substring, field)) — substrings are the forget-specific facts.
EXAMPLES = (
    (
        "a001-q00",
        "Where was Elena Marquez born?",
        "Elena Marquez was born in Lisbon in 1961.",
        (("Elena Marquez", "author"), ("Lisbon", "birthplace"), ("1961", "birth_year")),
    ),
    (
        "a001-q01",
        "What did Elena Marquez write?",
        "Her best-known novel is The Salt Orchard, a story of exile.",
        (("The Salt Orchard", "book"),),
    ),
    (
        "a002-q00",
        "What is Tomas Okafor's profession?",
        "Tomas Okafor works as a marine <b>biologist</b> & writer.",
        (("Tomas Okafor", "author"), ("marine <b>biologist</b>", "profession")),
    ),
)
METHODS = ("atwu", "wga", "satimp", "seul", "oracle_mask", "grad_diff")
# What the fake CLI's `methods --json` prints: the shape of the real `atwu methods --json`.
METHODS_TABLE = [
    {
        "name": "atwu",
        "summary": "learned weights",
        "hparams": {"beta": 5.0, "saturation": "scaled"},
        "scorer": {"budget": 0.2, "update_every": 5, "lr_decay": True},
    },
    {"name": "wga", "summary": "p^beta weights", "hparams": {"beta": 1.0}, "scorer": None},
]


def tokenize(answer: str) -> list[tuple[str, int, int]]:
    """Word-level stand-in for a byte-level BPE: each token keeps its leading space, as BPE does.
    An HTML-looking tag stays one token, so escaping is tested on a token like " <b>"."""
    pattern = r"\s*<[^>]*>|\s*[\w-]+|\s*[^\w\s]+"
    return [(m.group(), m.start(), m.end()) for m in re.finditer(pattern, answer)]


def char_spans(answer: str, spans) -> list[dict]:
    out = []
    for text, field in spans:
        start = answer.index(text)
        out.append({"start": start, "end": start + len(text), "field": field})
    return out


def token_frame(method: str, steps: list[int], rng: np.random.Generator) -> pd.DataFrame:
    """Per-token snapshots shaped like the training loop's: weights drift from a method-specific
    start towards the spans (ATWU, oracle) or follow a heuristic (WGA ≈ p^β rises with p)."""
    rows = []
    for example_id, _question, answer, spans in EXAMPLES:
        cs = char_spans(answer, spans)
        for position, (token, start, end) in enumerate(tokenize(answer)):
            in_span = any(start < s["end"] and s["start"] < end for s in cs)
            nll0 = float(rng.uniform(0.01, 0.3))
            noise = float(rng.uniform(-0.15, 0.15))
            for k, step in enumerate(steps):
                progress = k / max(len(steps) - 1, 1)  # 0 at the first snapshot, 1 at the last
                target = {"atwu": 0.9 if in_span else 0.1, "oracle_mask": float(in_span)}.get(
                    method, 0.6 if in_span else 0.4
                )
                start_w = 0.5 if method == "atwu" else target
                weight = float(np.clip(start_w + progress * (target - start_w) + noise, 0, 1))
                if method == "oracle_mask":
                    weight = float(in_span)
                rows.append(
                    {
                        "step": step,
                        "example_id": example_id,
                        "position": position,
                        "token": token,
                        "char_start": start,
                        "char_end": end,
                        "weight": weight,
                        "nll": nll0 + progress * (4.0 if in_span else 0.5),
                        "in_span": in_span,
                        "in_loss": True,
                        "conflict": float(rng.uniform(-1, 1)) if method == "atwu" else None,
                    }
                )
    df = pd.DataFrame(rows)
    df["conflict"] = df["conflict"].astype(float)
    return df


def write_fake_run(
    runs_dir: str | Path,
    method: str,
    *,
    seed: int = 0,
    total_steps: int = 20,
    snapshot_every: int = 10,
    finish: bool = True,
    evaluate: bool = True,
    run_id: str | None = None,
    step_seconds: float = 0.0,
) -> Path:
    """One run folder: metrics every step, token snapshots every `snapshot_every` steps, eval.json
    with TOFU-style metrics and generations, status finished (or left running if `finish=False`).

    `step_seconds` makes each step take that long; Ctrl-C (SIGINT) then ends the run as
    "interrupted", like the real training loop.
    """
    rng = np.random.default_rng([zlib.crc32(method.encode()), seed])  # stable across processes
    config = {"method": method, "seed": seed, "lr": 2e-4, "hparams": {"beta": 5.0}}
    env = {"python": "3.11", "torch": "fake", "device": "cpu", "atwu_core": "0.1.0"}
    writer = RunWriter.create(runs_dir, method, config, env, total_steps, run_id=run_id)
    snapshots = list(range(0, total_steps + 1, snapshot_every))
    try:
        _train(writer, total_steps, rng, step_seconds)
    except KeyboardInterrupt as err:
        writer.finish("interrupted", reason=str(err) or "interrupted (Ctrl-C)", failed_step=None)
        raise
    writer.write_token_weights(token_frame(method, snapshots, rng))
    if evaluate:
        ids = [e[0] for e in EXAMPLES]
        fq = float(rng.uniform(1e-4, 0.9))
        mu = float(rng.uniform(0.3, 0.6))
        writer.write_eval(
            {
                "model": "fake",
                "metrics": {
                    "forget_quality": {"agg_value": fq, "value_by_index": {}},
                    "model_utility": {"agg_value": mu, "value_by_index": {}},
                    "forget/prob": {
                        "agg_value": 0.2,
                        "value_by_index": dict.fromkeys(ids, 0.2),
                    },
                    "retain/prob": {"agg_value": 0.9, "value_by_index": {}},
                },
                "generations": {
                    **{
                        eid: {
                            "split": "forget",
                            "question": q,
                            "answer": a,
                            "prediction": f"{method} says: I forgot.",
                        }
                        for eid, q, a, _ in EXAMPLES
                    },
                    "a009-q00": {
                        "split": "retain",
                        "question": "Who is Ida?",
                        "answer": "Ida is a poet.",
                        "prediction": "Ida is a poet.",
                    },
                },
            }
        )
    if finish:
        writer.finish("finished")
    return writer.path


def _train(writer: RunWriter, total_steps: int, rng: np.random.Generator, step_seconds: float):
    from atwu_core import cancel

    for step in range(1, total_steps + 1):
        time.sleep(step_seconds)
        reason = cancel.file_requested()  # the dashboard's Cancel, polled like the real loop
        if reason is not None:
            raise KeyboardInterrupt(reason)
        writer.log(
            {
                "step": step,
                "epoch": step / total_steps,
                "time_s": 0.1 * step,
                "loss/total": float(2.0 - step / total_steps + rng.normal(0, 0.05)),
                "forget/nll": float(0.1 + 3 * step / total_steps),
                "retain/nll": float(0.1 + 0.2 * step / total_steps),
            }
        )
        writer.update(steps_done=step)


def write_fake_runs(runs_dir: str | Path, methods=METHODS) -> list[Path]:
    """A finished run per method (run ids fixed so tests can name them)."""
    return [write_fake_run(runs_dir, m, run_id=f"fake-{m}-s0") for m in methods]


def write_fake_benchmark(bench_dir: str | Path) -> Path:
    """forget.jsonl (the probe examples) + retain.jsonl + meta.json in docs/FORMATS.md's schema."""
    bench = Path(bench_dir)
    bench.mkdir(parents=True, exist_ok=True)
    rows = []
    for example_id, question, answer, spans in EXAMPLES:
        author = answer.split(" was ")[0] if " was " in answer else ""
        rows.append(
            {
                "id": example_id,
                "author_id": int(example_id[1:4]),
                "author": author,
                "question": question,
                "answer": answer,
                "paraphrased_answer": "",
                "paraphrased_question": "",
                "perturbed_answer": ["wrong one", "wrong two"],
                "spans": char_spans(answer, spans),
                "paraphrased_spans": [],
            }
        )
    (bench / "forget.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    retain = {**rows[0], "id": "a009-q00", "author_id": 9, "spans": []}
    (bench / "retain.jsonl").write_text(json.dumps(retain) + "\n")
    (bench / "meta.json").write_text(json.dumps({"schema": 1, "source": "builtin", "seed": 0}))
    return bench


def main(argv: list[str] | None = None) -> int:
    """A fast stand-in for `python -m atwu_core.cli` (`methods --json` and `unlearn`), so the
    dashboard's launch path is tested without torch. `FAKE_STEP_SECONDS` slows the steps down."""
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="fake-atwu")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("methods").add_argument("--json", action="store_true")
    p = sub.add_parser("unlearn")
    p.add_argument("--method", required=True)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--runs-dir", required=True)
    p.add_argument("--max-steps", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    for flag in ("--lr", "--alpha", "--gamma"):
        p.add_argument(flag, type=float, default=1.0)
    p.add_argument("--eval", action="store_true")
    p.add_argument("--model")
    p.add_argument("--data")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-conflict", action="store_true")
    args = parser.parse_args(argv)
    from atwu_core import cancel

    cancel.install()  # like the real CLI: SIGINT/SIGTERM handled even when inherited as ignored
    if args.command == "methods":
        print(json.dumps(METHODS_TABLE))
        return 0
    sets = dict(pair.split("=", 1) for pair in args.set)
    budget = float(sets.get("budget", 0.2))
    if not 0 <= budget <= 1:  # mirrors ScorerConfig's check: the dashboard must show it
        print(f"atwu unlearn: error: budget must be in [0, 1], got {budget}", file=sys.stderr)
        return 2
    try:
        path = write_fake_run(
            args.runs_dir,
            args.method,
            seed=args.seed,
            total_steps=args.max_steps,
            snapshot_every=max(args.max_steps // 2, 1),
            evaluate=args.eval,
            step_seconds=float(os.environ.get("FAKE_STEP_SECONDS", "0.02")),
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"finished: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
