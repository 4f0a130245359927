"""The `--data` string: one parser for the CLI checks, the loaders and the evaluation cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from atwu_core.data import spec as data_spec
from atwu_core.data.spec import DataSpec

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "parsed", "local"),
    [
        (
            "sample_data/benchmark",
            DataSpec("benchmark", "", "sample_data/benchmark"),
            ("sample_data/benchmark", ""),
        ),
        ("C:/bench", DataSpec("benchmark", "", "C:/bench"), ("C:/bench", "")),
        (
            "tofu:forget01@data/tofu",
            DataSpec("tofu", "forget01", "data/tofu"),
            ("data/tofu", "tofu:forget01"),
        ),
        ("tofu:forget10", DataSpec("tofu", "forget10", ""), (None, "tofu:forget10")),
        (
            "tofu:forget05@hf:locuslab/TOFU",
            DataSpec("tofu", "forget05", "hf:locuslab/TOFU"),
            (None, "tofu:forget05@hf:locuslab/TOFU"),
        ),
        (
            "rwku:Stephen King,Confucius@data/rwku#train_pair_llama3",
            DataSpec("rwku", "Stephen King,Confucius", "data/rwku#train_pair_llama3"),
            ("data/rwku", "rwku:Stephen King,Confucius#train_pair_llama3"),
        ),
    ],
)
def test_parse_format_and_local_folder(text, parsed, local):
    data = data_spec.parse(text)
    assert data == parsed
    assert data_spec.format(data) == text
    folder, rest = data.local()
    assert (str(folder) if folder else None, rest) == local


def test_load_dispatches_to_each_loader_with_its_own_errors(tmp_path):
    bench = data_spec.load(str(ROOT / "sample_data" / "benchmark"))
    assert len(bench.forget) == 40 and bench.retain
    with pytest.raises(ValueError, match=r"rwku:<subjects>@<folder"):
        data_spec.load("rwku:first10")
    with pytest.raises((ValueError, FileNotFoundError), match="nope"):
        data_spec.load(f"tofu:forget01@{tmp_path / 'nope'}")
