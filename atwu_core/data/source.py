"""Where a loader's rows come from: a local folder or a Hugging Face dataset (TOFU, RWKU).

A `Source` answers `has(config)` and `rows(config)`; every row carries a `where` string (file and
line, or hub config and row) so a loader's errors can say exactly which row is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

HUB_PREFIX = "hf:"

Row = tuple[str, dict[str, Any]]  # (where: "file, line N" / "repo config C, row N", JSON object)


@dataclass
class Source:
    """Rows by config name, from a folder or the hub; `describe` names it in error messages."""

    describe: str
    has: Callable[[str], bool]
    rows: Callable[[str], list[Row]]

    def missing(self, configs: Iterable[str]) -> list[str]:
        return [c for c in configs if not self.has(c)]


def hub_source(repo: str, split_of: Callable[[str], str] = lambda config: "train") -> Source:
    """A dataset on the hub, read through `datasets` only when a loader is pointed at it."""
    import datasets  # lazy: heavy, and the only place a loader may reach the network

    configs = list(datasets.get_dataset_config_names(repo))

    def rows(config: str) -> list[Row]:
        table = datasets.load_dataset(repo, config, split=split_of(config))
        return [(f"{repo} config {config}, row {i}", dict(row)) for i, row in enumerate(table)]

    return Source(f"{HUB_PREFIX}{repo}", lambda config: config in configs, rows)
