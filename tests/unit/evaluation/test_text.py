"""The text-generation suite against sacrebleu and rouge-score called directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer  # type: ignore[import-untyped]

from keelwatch.errors import InvalidInputError
from keelwatch.monitoring.evaluation.text import text_generation_metrics

WORDS = [
    "the",
    "a",
    "model",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "quickly",
    "ran",
    "over",
    "hill",
    "and",
    "under",
    "bridge",
    "river",
]


def _corpus(seed: int, rows: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    refs, hyps = [], []
    for _ in range(rows):
        ref = list(rng.choice(WORDS, size=int(rng.integers(4, 14))))
        hyp = [w if rng.random() < 0.7 else str(rng.choice(WORDS)) for w in ref]
        if rng.random() < 0.3:
            hyp = hyp[: max(1, len(hyp) - 2)]
        refs.append(" ".join(ref))
        hyps.append(" ".join(hyp))
    return refs, hyps


def test_matches_sacrebleu_and_rouge_score() -> None:
    refs, hyps = _corpus(5, 300)

    got = text_generation_metrics(refs, hyps)

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge = [scorer.score(r, h)["rougeL"].fmeasure for r, h in zip(refs, hyps, strict=True)]
    assert got.rows == 300
    assert got.bleu == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-12)
    assert got.chrf == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-12)
    assert got.rouge_l == pytest.approx(sum(rouge) / len(rouge), abs=1e-12)
    assert 10 < got.bleu < 90 and 0.3 < got.rouge_l < 0.95  # neither trivial 0 nor 100
    assert got.perplexity is None
    assert set(got.as_dict()) == {"bleu", "chrf", "rouge_l"}


def test_identical_texts_score_perfectly() -> None:
    refs = ["the cat sat on the mat today", "a dog ran over the hill quickly"]
    got = text_generation_metrics(refs, refs)
    assert got.bleu == pytest.approx(100)
    assert got.chrf == pytest.approx(100)
    assert got.rouge_l == 1.0


def test_perplexity_over_all_tokens() -> None:
    # Two rows, 1 + 3 tokens: the mean is over tokens, not over rows.
    logprobs = [[math.log(0.5)], [math.log(0.25), math.log(0.25), math.log(0.25)]]
    got = text_generation_metrics(["a b", "c d"], ["a b", "c d"], token_logprobs=logprobs)
    expected = math.exp(-(math.log(0.5) + 3 * math.log(0.25)) / 4)
    assert got.perplexity == pytest.approx(expected)
    assert got.perplexity != pytest.approx(math.exp(-(math.log(0.5) + math.log(0.25)) / 2))
    uniform = text_generation_metrics(["x"], ["x"], token_logprobs=[[math.log(0.5)] * 7])
    assert uniform.perplexity == pytest.approx(2.0)
    assert uniform.as_dict()["perplexity"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("refs", "hyps", "logprobs", "message"),
    [
        ([], [], None, "references is empty"),
        (["a"], ["a", "b"], None, "references has 1 rows but hypotheses has 2"),
        (["a", None], ["a", "b"], None, "references has 1 row\\(s\\) that are not strings"),
        ("abc", "abc", None, "must be a sequence of texts"),
        (["a"], ["a"], [[-0.1], [-0.2]], "token_logprobs has 2 rows but there are 1"),
        (["a"], ["a"], [[]], "holds no tokens"),
        (["a"], ["a"], [[0.5]], "pass log-probabilities"),
        (["a"], ["a"], [[float("nan")]], "missing \\(NaN\\)"),
    ],
)
def test_bad_input(refs: object, hyps: object, logprobs: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        text_generation_metrics(refs, hyps, token_logprobs=logprobs)  # type: ignore[arg-type]
