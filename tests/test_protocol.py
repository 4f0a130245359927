"""Evaluation settings of runs (atwu_core.evaluation.protocol): the generation budget for ROUGE."""

from atwu_core.data.schema import Benchmark, QAItem
from atwu_core.evaluation.protocol import generation_budget


class WordTokenizer:
    """One token per word: answer lengths in tokens are word counts, checkable by eye."""

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text.split())))}


def bench_with(forget_words: int, retain_words: int, holdout_words: int) -> Benchmark:
    def item(id, words):
        return QAItem(id=id, author_id=0, author="", question="Q?", answer="w " * words)

    return Benchmark(
        forget=[item("f0", 3), item("f1", forget_words)],
        retain=[item("r0", retain_words)],
        world_facts=[item("w0", 2)],
        holdout=[item("h0", holdout_words)],
        meta={},
    )


def test_short_answers_keep_the_floor_of_48():
    assert generation_budget(WordTokenizer(), bench_with(10, 20, 5)) == 48


def test_a_long_answer_raises_the_budget_to_its_length_plus_the_end_token():
    assert generation_budget(WordTokenizer(), bench_with(90, 20, 5)) == 91
    assert generation_budget(WordTokenizer(), bench_with(10, 60, 5)) == 61


def test_holdout_answers_are_never_generated_so_do_not_count():
    assert generation_budget(WordTokenizer(), bench_with(10, 20, 300)) == 48


def test_an_empty_benchmark_is_left_to_evaluate_model_to_name():
    empty = Benchmark(forget=[], retain=[], world_facts=[], holdout=[], meta={})
    assert generation_budget(WordTokenizer(), empty) == 48
