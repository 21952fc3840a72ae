"""The flag beside a cell: measured far from predicted, and greedy output that differs from autoregressive output."""

from __future__ import annotations

import pandas as pd
import pytest

from specsweep.study import diagnose


@pytest.mark.parametrize("speedup,predicted,exact,expected", [
    (1.0, 2.0, 0.5, "⚠ below prediction; ✗ greedy output differs from autoregressive"),
    (2.6, 2.0, 1.0, "⚠ above prediction"),
    (1.8, 2.0, 1.0, ""),  # within 1 +- 0.25, lossless
])
def test_the_flag_marks_measured_far_from_predicted_and_lossy_greedy_output(speedup, predicted, exact, expected):
    row = pd.Series({"speedup": speedup, "predicted_speedup": predicted, "sampling.temperature": 0.0,
                     "exact_match": exact})
    assert diagnose.flags(row, 0.25) == expected


def test_a_flag_marks_measured_far_from_predicted():
    row = pd.Series({"speedup": 1.0, "predicted_speedup": 2.0, "sampling.temperature": 0.0, "exact_match": 0.5})
    assert diagnose.flags(row, 0.25) == "⚠ below prediction; ✗ greedy output differs from autoregressive"
    assert diagnose.flags(row.copy().replace({1.0: 1.8, 0.5: 1.0}), 0.25) == ""  # within 1 +- 0.25, lossless
