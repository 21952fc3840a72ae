"""ROUGE-1, ROUGE-2 and ROUGE-L F-measure with a tokenizer chosen by language.

rouge_score's default tokenizer keeps only [a-z0-9] runs: Japanese text vanishes and every pair scores 0, and
code loses its operators (`a + b` and `a - b` become identical). So:
- "en": rouge_score's default tokenizer (lowercased words, punctuation dropped);
- "ja": MeCab (fugashi with unidic-lite) surface forms, punctuation dropped as in "en";
- "code": words and single symbol characters, case kept, since both carry meaning in code.

This file is an `evaluate` module loaded by local path (specsweep.data.quality.load): evaluate copies it into its
cache and imports it from there, so it must not use relative imports.
"""

import functools
import re

import evaluate
from rouge_score import rouge_scorer

from specsweep.data.quality import LANGUAGES, mean, metric_info

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")

_DESCRIPTION = "ROUGE-1, ROUGE-2 and ROUGE-L F-measure (rouge_score), averaged over samples."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list[str]): generated texts.
    references (list[str]): reference texts.
    language (str): "en" (default), "ja" or "code"; picks the tokenizer.
Returns:
    rouge1, rouge2, rougeL (float): mean F-measure over samples (NaN for no samples).
    rouge1_per_sample, rouge2_per_sample, rougeL_per_sample (list[float]): F-measure of each sample.
Examples:
    >>> rouge.compute(predictions=["the cat sat"], references=["the cat sat"])["rougeL"]
    1.0
"""


class Rouge(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions: list[str], references: list[str], language: str = "en") -> dict:
        scorer = _scorer(language)
        scores = [scorer.score(reference, prediction) for prediction, reference in zip(predictions, references,
                                                                                         strict=True)]
        result = {}
        for rouge_type in ROUGE_TYPES:
            per_sample = [score[rouge_type].fmeasure for score in scores]
            result[rouge_type] = mean(per_sample)
            result[f"{rouge_type}_per_sample"] = per_sample
        return result


class MeCabTokenizer:
    """Japanese has no spaces between words: MeCab segments it into morphemes."""

    # UniDic's part of speech for punctuation and for whitespace.
    _SKIPPED = {"補助記号", "空白"}

    def __init__(self) -> None:
        # Imported here so that "en" and "code" work without the Japanese extras installed.
        import fugashi

        self._tagger = fugashi.Tagger()

    def tokenize(self, text: str) -> list[str]:
        return [word.surface.lower() for word in self._tagger(text) if word.feature.pos1 not in self._SKIPPED]


class CodeTokenizer:
    """Identifiers and numbers as words, every other non-space character on its own: `a+b` is [a, +, b]."""

    _TOKEN = re.compile(r"\w+|[^\w\s]")

    def tokenize(self, text: str) -> list[str]:
        return self._TOKEN.findall(text)


@functools.cache
def _scorer(language: str) -> rouge_scorer.RougeScorer:
    # Cached: building a MeCab tagger loads its dictionary.
    if language == "en":
        return rouge_scorer.RougeScorer(list(ROUGE_TYPES))
    if language == "ja":
        return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=MeCabTokenizer())
    if language == "code":
        return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=CodeTokenizer())
    raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}.")
