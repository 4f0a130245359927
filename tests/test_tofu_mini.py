"""TOFU-mini (atwu_core.data.tofu_mini): the TOFU slice the tiny model trains on, real files."""

import os
from pathlib import Path

import pytest

from atwu_core.data.schema import load_benchmark, save_benchmark
from atwu_core.data.tofu import load_tofu
from atwu_core.data.tofu_mini import tofu_mini
from atwu_core.evaluation.evaluate import eval_rows

TOFU_DIR = Path(
    os.environ.get("ATWU_TOFU_DIR", Path(__file__).resolve().parents[2] / "shared/data/tofu")
)
pytestmark = pytest.mark.skipif(
    not (TOFU_DIR / "forget01_perturbed.json").is_file(),
    reason=f"no local TOFU copy at {TOFU_DIR} (set ATWU_TOFU_DIR to a folder of TOFU's files)",
)


@pytest.fixture(scope="module")
def mini():
    return tofu_mini(TOFU_DIR)


@pytest.fixture(scope="module")
def forget01():
    return load_tofu(TOFU_DIR, "forget01")


def authors(items):
    return list(dict.fromkeys(item.author_id for item in items))


def test_sizes_and_authors(mini):
    assert (len(mini.forget), len(mini.retain), len(mini.holdout)) == (40, 200, 40)
    assert len(mini.world_facts) == 117  # every TOFU world fact
    assert mini.real_authors == []
    # forget01 = TOFU's last two authors; retain = the first ten; holdout = the next two.
    assert authors(mini.forget) == [198, 199]
    assert authors(mini.retain) == list(range(10))
    assert authors(mini.holdout) == [10, 11]
    assert {item.author for item in mini.forget} == {"Basil Mahfouz Al-Kuwaiti", "Nikolai Abilov"}
    assert mini.retain[0].author == "Jaime Vasquez"
    named = {a["author_id"]: a["split"] for a in mini.meta["authors"]}
    assert named == {**dict.fromkeys(range(10), "retain"), 10: "holdout", 11: "holdout",
                     198: "forget", 199: "forget"}  # fmt: skip
    assert mini.meta["n_authors"] == 12 and mini.meta["forget_fraction"] == pytest.approx(2 / 12)


def test_every_evaluated_row_has_what_the_truth_ratio_needs(mini):
    retain = eval_rows(mini, "retain")
    assert len(retain) == 200  # all kept retain rows are evaluated, not a subset
    for item in [*mini.forget, *retain]:
        assert item.paraphrased_answer and len(item.perturbed_answer) >= 3, item.id
    assert all(item.perturbed_answer for item in mini.world_facts)


def test_rows_are_those_of_tofu_forget01_spans_against_the_trained_authors(mini, forget01):
    from dataclasses import replace

    from atwu_core.data.tofu import SPAN_RULE, derive_forget_spans

    unspanned = [replace(it, spans=[], paraphrased_spans=[]) for it in mini.forget]
    assert unspanned == [replace(it, spans=[], paraphrased_spans=[]) for it in forget01.forget]
    assert mini.forget == derive_forget_spans(forget01.forget, mini.retain)  # its 10 authors
    assert mini.meta["span_rule"] == SPAN_RULE
    assert mini.meta["span_reference"] == "the 10 retain authors TOFU-mini trains on"
    assert all(item.spans for item in mini.forget)
    by_id = {item.id: item for item in forget01.retain}
    assert all(by_id[item.id] == item for item in [*mini.retain, *mini.holdout])
    assert all(not item.spans for item in [*mini.retain, *mini.holdout])


def test_saved_folder_reloads_to_the_same_benchmark(mini, tmp_path):
    save_benchmark(tmp_path, mini)
    again = load_benchmark(tmp_path)
    for split in ("forget", "retain", "world_facts", "holdout"):
        assert again.split(split) == mini.split(split), split
    assert again.meta["source"] == "tofu-mini"
    assert not (tmp_path / "real_authors.jsonl").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_retain_authors": 19, "n_holdout_authors": 2}, "for only 20 retain authors"),
        ({"n_retain_authors": 0}, "n_retain_authors must be an int >= 1, got 0"),
        ({"n_holdout_authors": -1}, "n_holdout_authors must be an int >= 0, got -1"),
        ({"n_retain_authors": 2.5}, "n_retain_authors must be an int >= 1, got 2.5"),
    ],
)
def test_bad_author_counts_say_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tofu_mini(TOFU_DIR, **kwargs)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        tofu_mini(tmp_path / "nope")


# ---- atwu prepare --preset tofu-mini, shrunk: 1 retain author, a 32-wide model, 1 epoch --------


def test_prepare_writes_the_benchmark_and_bf16_models(tmp_path):
    from safetensors import safe_open

    from atwu_core.config import FinetuneConfig, TinyModelConfig
    from atwu_core.data.schema import load_benchmark
    from atwu_core.prepare import prepare_tofu_mini

    report = prepare_tofu_mini(
        tmp_path,
        TOFU_DIR,
        n_retain_authors=1,
        n_holdout_authors=1,
        model_cfg=TinyModelConfig(vocab_size=2048, hidden_size=32, intermediate_size=64),
        ft_cfg=FinetuneConfig(epochs=1),
    )
    bench = load_benchmark(tmp_path / "benchmark")
    assert (len(bench.forget), len(bench.retain), len(bench.holdout)) == (40, 20, 20)
    assert report["preset"] == "tofu-mini" and report["save_dtype"] == "bfloat16"
    assert report["n_authors"] == 3 and report["tofu_source"] == str(TOFU_DIR)
    for name in ("full", "retain"):
        with safe_open(tmp_path / "models" / name / "model.safetensors", "pt") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}  # noqa: SIM118
    assert 0 <= report["quality"]["full/forget/acc"] <= 1


def test_prepare_refuses_rows_longer_than_the_model(tmp_path):
    from atwu_core.config import TinyModelConfig
    from atwu_core.prepare import prepare_tofu_mini

    tiny = TinyModelConfig(vocab_size=300, hidden_size=32, intermediate_size=64, max_positions=64)
    with pytest.raises(ValueError, match=r"row forget01-0000: question \+ answer are \d+ tokens"):
        prepare_tofu_mini(tmp_path, TOFU_DIR, n_retain_authors=1, model_cfg=tiny)
    assert not (tmp_path / "models").exists()
