"""The W&B helpers that a job's run and the study's run share, without a run: a sweep's group, a cell's run id, and
a table that keeps numbers as numbers. Runs themselves are logged in tests/test_sweep.py and tests/e2e/."""

from __future__ import annotations

import math

import pandas as pd

from specsweep import tracking


def test_sweeps_of_the_same_name_get_their_own_group(tmp_path):
    group = tracking.wandb_group(tmp_path / "a" / "sweep")
    assert group.startswith("sweep-") and len(group) == len("sweep-") + 8
    assert group == tracking.wandb_group(tmp_path / "a" / "sweep")  # the same sweep, the same group
    assert group != tracking.wandb_group(tmp_path / "b" / "sweep")


def test_a_run_id_is_the_same_for_the_same_cell_of_the_same_group():
    run = tracking.wandb_run_id("sweep-0123abcd", "key")
    assert len(run) == 16 and run == tracking.wandb_run_id("sweep-0123abcd", "key")
    assert run not in {tracking.wandb_run_id("sweep-0123abcd", "study"), tracking.wandb_run_id("other", "key")}


def test_a_wandb_table_keeps_numbers_as_numbers():
    frame = pd.DataFrame({"speedup": pd.array([1.5, None], dtype="Float64"),
                          "gamma": pd.array([3, None], dtype="Int64"), "draft": ["1M", None], "done": [True, False]})
    logged = tracking.wandb_table(frame)
    assert logged.columns == ["speedup", "gamma", "draft", "done"]
    (speedup, gamma, draft, done), missing = logged.data
    assert (speedup, gamma, draft, bool(done)) == (1.5, 3.0, "1M", True) and isinstance(gamma, float)
    assert math.isnan(missing[0]) and math.isnan(missing[1]) and missing[2] == ""  # missing: NaN, or "" for text
    assert tracking.none_if_nan(float("nan")) is None and tracking.none_if_nan(0.0) == 0.0
