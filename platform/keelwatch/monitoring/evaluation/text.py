"""Text-generation suite: corpus BLEU and chrF (sacrebleu), mean ROUGE-L F-measure
(rouge-score) and, when the model exposes token log-probabilities, perplexity.

Scales follow the libraries: BLEU and chrF are 0-100 (sacrebleu's convention, the figures
papers quote); ROUGE-L is 0-1. Perplexity is ``exp(-mean log p)`` over every token of every
row, natural log.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer  # type: ignore[import-untyped]  # no stubs upstream

from keelwatch.errors import InvalidInputError


@dataclass(frozen=True)
class TextMetrics:
    """One model's text-generation metrics on one dataset of reference texts."""

    rows: int
    bleu: float
    chrf: float
    rouge_l: float
    perplexity: float | None

    def as_dict(self) -> dict[str, float]:
        """Flat metric name -> value; perplexity is left out when there were no log-probs."""
        out = {"bleu": self.bleu, "chrf": self.chrf, "rouge_l": self.rouge_l}
        if self.perplexity is not None:
            out["perplexity"] = self.perplexity
        return out


def _texts(name: str, values: Sequence[str]) -> list[str]:
    if isinstance(values, str):
        raise InvalidInputError(f"{name} must be a sequence of texts, not one string")
    texts = list(values)
    if not texts:
        raise InvalidInputError(f"{name} is empty: no rows to evaluate")
    bad = sum(1 for t in texts if not isinstance(t, str))
    if bad:
        raise InvalidInputError(f"{name} has {bad} row(s) that are not strings (missing text?)")
    return texts


def perplexity(token_logprobs: Sequence[Sequence[float]], rows: int) -> float:
    """``exp(-mean log p)`` over all tokens of all rows (natural-log probabilities)."""
    if len(token_logprobs) != rows:
        raise InvalidInputError(
            f"token_logprobs has {len(token_logprobs)} rows but there are {rows} hypotheses"
        )
    flat = np.fromiter((float(lp) for row in token_logprobs for lp in row), dtype=np.float64)
    if flat.size == 0:
        raise InvalidInputError("token_logprobs holds no tokens; perplexity needs at least one")
    if not np.isfinite(flat).all():
        raise InvalidInputError("token_logprobs has missing (NaN) or infinite values")
    if (flat > 0).any():
        raise InvalidInputError("token_logprobs has positive values; pass log-probabilities (<= 0)")
    return math.exp(-float(flat.mean()))


def text_generation_metrics(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    token_logprobs: Sequence[Sequence[float]] | None = None,
) -> TextMetrics:
    """BLEU, chrF and ROUGE-L of ``hypotheses`` against one reference each (same order)."""
    refs = _texts("references", references)
    hyps = _texts("hypotheses", hypotheses)
    if len(refs) != len(hyps):
        raise InvalidInputError(
            f"references has {len(refs)} rows but hypotheses has {len(hyps)}; they must match"
        )
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge = [scorer.score(ref, hyp)["rougeL"].fmeasure for ref, hyp in zip(refs, hyps, strict=True)]
    return TextMetrics(
        rows=len(refs),
        bleu=float(sacrebleu.corpus_bleu(hyps, [refs]).score),
        chrf=float(sacrebleu.corpus_chrf(hyps, [refs]).score),
        rouge_l=float(np.mean(rouge)),
        perplexity=None if token_logprobs is None else perplexity(token_logprobs, len(hyps)),
    )
