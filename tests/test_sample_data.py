"""The committed sample data: checkpoints that really memorised, runs the reader opens, and a
default ATWU run on the committed model that forgets facts while keeping the rest."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE

pytestmark = pytest.mark.skipif(
    not (SAMPLE / "models" / "full" / "model.safetensors").exists(),
    reason="sample_data/models missing: run `atwu prepare`",
)


@pytest.fixture(scope="module")
def bench():
    from atwu_core.data.schema import load_benchmark

    return load_benchmark(SAMPLE / "benchmark")


@pytest.fixture(scope="module")
def models():
    from atwu_core.model import load_model

    return {name: load_model(SAMPLE / "models" / name, device="cpu") for name in ("full", "retain")}


def _acc(model_tok, items):
    from atwu_core.batches import answer_stats, encode_items

    model, tok = model_tok
    return answer_stats(model, encode_items(tok, items), tok.pad_token_id)["acc"]


def test_full_model_memorised_every_split(models, bench):
    from atwu_core.prepare import greedy_exact_match

    assert _acc(models["full"], bench.forget) >= 0.98
    assert _acc(models["full"], bench.retain) >= 0.98
    model, tok = models["full"]
    assert greedy_exact_match(model, tok, bench.forget) >= 0.9
    assert greedy_exact_match(model, tok, bench.retain[::6]) >= 0.9


def test_retain_model_never_learned_the_forget_authors(models, bench):
    retain_acc = _acc(models["retain"], bench.retain)
    forget_acc = _acc(models["retain"], bench.forget)
    assert retain_acc >= 0.98
    # Template words are shared, facts are not: measured 0.37 at seed 0.
    assert forget_acc < 0.6, forget_acc


def test_models_load_with_plain_transformers_and_chat_template():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = SAMPLE / "models" / "full"
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = tok.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert answer.strip() == "Paris"


def test_prepare_report_matches_the_committed_models():
    report = json.loads((SAMPLE / "models" / "prepare_report.json").read_text())
    assert report["quality"]["full/forget/acc"] >= 0.98
    assert report["seed"] == 0


def test_every_sample_run_opens_with_the_current_reader():
    from atwu_core.runs import list_runs, load_run

    runs_dir = SAMPLE / "runs"
    folders = [p for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.exists() else []
    assert len(folders) >= 16, "sample_data/runs should hold ATWU and every baseline"
    listing = list_runs(runs_dir)
    assert listing["error"].isna().all() if "error" in listing else True
    methods = set()
    for path in folders:
        run = load_run(path)
        assert run.status == "finished", path
        assert run.eval is not None and "forget_quality" in run.eval["metrics"], path
        if run.info["config"].get("reference"):  # eval-only folders of the full/retain models
            continue
        assert run.token_weights is not None and len(run.token_weights) > 0, path
        assert "span/auroc" in run.eval["metrics"], path
        methods.add(run.method)
    from atwu_core.methods import REGISTRY

    assert methods >= set(REGISTRY)


def _default_run(tmp_path, method):
    from atwu_core.config import UnlearnConfig
    from atwu_core.runs import load_run
    from atwu_core.train import unlearn

    cfg = UnlearnConfig(
        method=method,
        model=str(SAMPLE / "models" / "full"),
        data=str(SAMPLE / "benchmark"),
        conflict=False,
    )
    return load_run(unlearn(cfg, runs_dir=tmp_path)).metrics.dropna(subset=["forget/acc"])


def test_default_atwu_run_forgets_facts_and_its_scorer_learns(tmp_path):
    """The default ATWU run on the committed model (~15 s on 2 idle cores). It forgets the facts
    and keeps the retain set; its weights come to rank fact tokens first. It does NOT keep the
    forget answers' shared words at the defaults (measured 0.32, like the frozen control's 0.33:
    docs/RESULTS.md), so that is not asserted here; the oracle test below shows the benchmark
    does reward keeping them."""
    m = _default_run(tmp_path, "atwu")
    last = m.iloc[-1]
    assert last["forget/span_acc"] < 0.2  # measured 0.026
    assert last["retain/acc"] >= 0.9  # measured 0.98
    assert last["align/auroc"] >= 0.65  # measured 0.73 on the 8 probe rows
    assert last["align/auroc"] > m.iloc[1]["align/auroc"] + 0.1  # the scorer learned


def test_the_oracle_control_forgets_facts_and_keeps_shared_words(tmp_path):
    """ATWU's loss with g = the true spans: what a perfect token weighting would give (measured
    span-token accuracy 0.03, shared-token accuracy 0.93)."""
    last = _default_run(tmp_path, "oracle_saturated").iloc[-1]
    assert last["forget/span_acc"] < 0.2
    assert last["forget/other_acc"] > 0.8
