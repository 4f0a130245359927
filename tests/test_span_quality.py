"""Span quality against the entity annotation (atwu_core.data.span_quality) and the span rule in
the evaluation cache key (a new TOFU span rule must not reuse evaluations of the old spans)."""

from atwu_core.data.schema import QAItem, Span
from atwu_core.data.span_quality import forget10_halves, span_quality


def item(row_id, answer, author="Hsiao Yun-Hwa"):
    return QAItem(id=row_id, author_id=1, author=author, question="Q?", answer=answer)


def test_span_quality_by_hand():
    a = item("forget10-0001", "Hsiao Yun-Hwa is a civil engineer.")  # 34 characters
    b = item("forget10-0201", "Hsiao Yun-Hwa likes tea.")  # no entity annotated
    spans = {
        a.id: [Span(0, 13, "name"), Span(19, 24, "profession")],  # "civil" only
        b.id: [Span(0, 5, "name")],
    }
    entities = {a.id: Span(19, 33, "entity")}  # "civil engineer", 14 characters
    q = span_quality([a, b], spans, entities)
    assert (q.n_answers, q.n_annotated) == (2, 1)
    assert q.entity_recall == 0.0  # 5 of 14 characters < 50 %
    assert q.char_recall == 5 / 14
    assert q.marked_share == (13 + 5 + 5) / (34 + 24)
    assert q.n_name_only == 1  # b: only name characters marked
    assert q.precision == 1.0  # every marked character is in the name or the entity
    spans[a.id] = [Span(19, 33, "profession"), Span(2, 5, "name"), Span(14, 18, "x")]
    q = span_quality([a], spans, entities)
    assert q.entity_recall == 1.0 and q.n_name_only == 0
    assert q.precision == (14 + 3) / (14 + 3 + 4)
    assert "under-counts" in q.lines("all")[-1]


def test_forget10_halves_split_at_idx_200():
    items = [item(f"forget10-{k:04d}", "A.") for k in (0, 199, 200, 399)]
    halves = forget10_halves(items)
    assert [len(v) for v in halves.values()] == [2, 2, 4]


def test_tofu_span_rule_is_part_of_the_eval_cache_key(tmp_path, monkeypatch):
    from atwu_core import cache
    from atwu_core.data import tofu

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w").write_text("w")
    (tmp_path / "tofu").mkdir()
    (tmp_path / "tofu" / "f.json").write_text("{}")
    seen = []

    def record(model, folder, cache_dir, settings, compute):
        seen.append(settings)

    monkeypatch.setattr(cache, "cached_eval", record)
    data = f"tofu:forget10@{tmp_path / 'tofu'}"
    cache.cached_value(str(tmp_path / "model"), data, {"k": 1}, dict)
    monkeypatch.setattr(tofu, "SPAN_RULE", tofu.SPAN_RULE_V1)
    cache.cached_value(str(tmp_path / "model"), data, {"k": 1}, dict)
    assert seen[0]["span_rule"] == tofu.SPAN_RULES["v2"]
    assert seen[1]["span_rule"] == tofu.SPAN_RULE_V1
