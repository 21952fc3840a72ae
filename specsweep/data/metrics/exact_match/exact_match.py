"""Exact match: the fraction of predictions identical to their reference.

specsweep passes the autoregressive output as the reference, so this is "exact match with the autoregressive
output": under greedy decoding speculative decoding is lossless, and anything below 1.0 is a bug or a numerical
divergence worth a look.

This file is an `evaluate` module loaded by local path (specsweep.data.quality.load): evaluate copies it into its
cache and imports it from there, so it must not use relative imports.
"""

import evaluate

from specsweep.data.quality import mean, metric_info

_DESCRIPTION = "The fraction of predictions that are character-for-character identical to their reference."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list[str]): generated texts.
    references (list[str]): the texts they should equal (in specsweep: the autoregressive outputs).
Returns:
    exact_match (float): the fraction of identical pairs (NaN for no pairs).
    exact_match_per_sample (list[bool]): whether each pair is identical.
Examples:
    >>> exact_match.compute(predictions=["a", "b"], references=["a", "c"])
    {'exact_match': 0.5, 'exact_match_per_sample': [True, False]}
"""


class ExactMatch(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions: list[str], references: list[str]) -> dict:
        matches = [prediction == reference for prediction, reference in zip(predictions, references, strict=True)]
        return {"exact_match": mean(matches), "exact_match_per_sample": matches}
