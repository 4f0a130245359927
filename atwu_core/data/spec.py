"""The `--data` string, parsed in one place: a benchmark folder, TOFU or RWKU.

    path/to/benchmark                              our format (atwu_core.data.schema)
    tofu:<forget split>[+entity][@<folder | hf:locuslab/TOFU>]
    rwku:<subjects>@<folder | hf:jinzhuoran/RWKU>[#<corpus config>]

`parse` splits it, `format` writes it back, `load` returns the `Benchmark`. The loaders' own
syntax (RWKU's subject list and corpus) stays with the loaders; this module only knows where a
spec's rows come from, which is what the CLI checks and the evaluation cache need.

`+entity` swaps TOFU's derived forget spans for the independent entity annotation shipped with
the package (atwu_core.data.entity_spans, docs/DATA.md): the span source is part of the `--data`
string, so run.json's `config.data` records it and the evaluation cache keys on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from atwu_core.data.source import HUB_PREFIX

if TYPE_CHECKING:
    from atwu_core.data.schema import Benchmark

LOADERS = ("tofu", "rwku")
# Span sources a `tofu:` spec may name after "+" ("" = the spans derived by atwu_core.data.tofu).
SPAN_SOURCES = ("entity",)
TOFU_HUB = f"{HUB_PREFIX}locuslab/TOFU"


@dataclass(frozen=True)
class DataSpec:
    """`loader` is "benchmark" (a folder), "tofu" or "rwku"."""

    loader: str
    selection: str = ""  # TOFU's forget split, RWKU's subjects; "" for a benchmark folder
    source: str = ""  # a folder or "hf:<repo>" (RWKU's "#corpus" kept on); "" = TOFU's hub
    spans: str = ""  # TOFU only: "" (derived spans) or a SPAN_SOURCES entry ("+entity")

    @property
    def is_hub(self) -> bool:
        return self.source.startswith(HUB_PREFIX) or (self.loader == "tofu" and not self.source)

    def local(self) -> tuple[Path | None, str]:
        """(the local folder the rows come from, the spec without that folder).

        The folder is None for hub data. The evaluation cache hashes the folder's bytes and keys
        on the rest, so `tofu:forget01@dir` and `tofu:forget05@dir` are cached apart.
        """
        if self.loader == "benchmark":
            return Path(self.source), ""
        if self.is_hub:
            return None, format(self)
        folder, hash_, corpus = self.source.partition("#")
        spans = f"+{self.spans}" if self.spans else ""
        return Path(folder), f"{self.loader}:{self.selection}{spans}" + (
            f"#{corpus}" if hash_ else ""
        )


def parse(spec: str) -> DataSpec:
    """Split a `--data` string. Only a known loader prefix counts, so `C:/bench` is a folder."""
    loader, sep, rest = spec.partition(":")
    if not sep or loader not in LOADERS:
        return DataSpec("benchmark", source=spec)
    selection, _, source = rest.partition("@")
    spans = ""
    if loader == "tofu":
        selection, _, spans = selection.partition("+")
    return DataSpec(loader, selection=selection, source=source, spans=spans)


def format(data: DataSpec) -> str:
    if data.loader == "benchmark":
        return data.source
    spans = f"+{data.spans}" if data.spans else ""
    return f"{data.loader}:{data.selection}{spans}" + (f"@{data.source}" if data.source else "")


def with_folder(spec: str, folder: str | None) -> str:
    """`tofu:forget10` + DIR -> `tofu:forget10@DIR` (`--data-dir`); RWKU's `#corpus` stays last."""
    if folder is None:
        return spec
    data = parse(spec)
    if data.loader == "benchmark":
        raise ValueError(f"--data-dir goes with tofu:<split> or rwku:<subjects> data, not {spec!r}")
    if data.source:
        raise ValueError(f"--data {spec!r} already names its source (@...); drop --data-dir")
    selection, hash_sign, corpus = data.selection.partition("#")
    return format(DataSpec(data.loader, selection, f"{folder}{hash_sign}{corpus}", data.spans))


def load(spec: str) -> Benchmark:
    """The benchmark a `--data` string names; loaders are imported only when used."""
    data = parse(spec)
    if data.loader == "rwku":
        from atwu_core.data.rwku import load_rwku_selection

        # RWKU's loader parses its own subject list and corpus (and says when "@" is missing).
        return load_rwku_selection(
            f"{data.selection}@{data.source}" if data.source else data.selection
        )
    if data.loader == "tofu":
        from atwu_core.data.tofu import load_tofu

        if data.spans and data.spans not in SPAN_SOURCES:
            raise ValueError(
                f"--data {spec!r}: unknown span source {data.spans!r} after '+'; "
                f"valid: {', '.join(SPAN_SOURCES)} (or none for the derived spans)"
            )
        bench = load_tofu(data.source or TOFU_HUB, forget=data.selection)
        if data.spans == "entity":
            from atwu_core.data.entity_spans import apply_entity_spans

            bench = apply_entity_spans(bench)
        return bench
    from atwu_core.data.schema import load_benchmark

    return load_benchmark(data.source)
