"""The grid priced from traces and a profile (`specsweep.study.forecast`), on hand-made files: what it predicts, the
profiles it refuses, and how a plan's cells join a sweep's rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from specsweep.errors import ConfigError
from specsweep.study import dashboard, forecast


def costs(step: float, contexts=(0, 400)) -> dict:
    return {"contexts": list(contexts), "forward_ms": {str(k): [step * (1 + 0.1 * k)] * len(contexts)
                                                      for k in range(1, 9)},
            "prefill_lengths": [1, 200], "prefill_ms": [5 * step, 5 * step]}


def profile(**changes) -> dict:
    found = {"kind": "profile", "greedy": True, "threads": 2, "provenance": {"cpu": "test CPU"},
             "models": {"target": {"params": 100, "dtype": "float32", "quantized": []},
                        "good": {"params": 10, "dtype": "float32", "quantized": []},
                        "bad": {"params": 10, "dtype": "float32", "quantized": []}},
             "costs": {"target": costs(10.0), "good": costs(1.0), "bad": costs(1.0)},
             "overhead_ms": {"round_ms": 0.1, "draft_step_ms": 0.01, "token_ms": 0.05}}
    return found | changes


def traces(prompts: int = 6) -> dict:
    models = profile()["models"]
    rows = [{"prompt_tokens": 20 + i, "new_tokens": 40,
             "drafts": {"good": {"matches": "11110" * 8}, "bad": {"matches": "01000" * 8}}}
            for i in range(prompts)]
    return {"kind": "traces", "greedy": True, "max_new_tokens": 40, "models": models, "prompts": rows,
            "labels": {"model_family": "toy"}}


def test_a_draft_that_matches_is_predicted_faster_than_one_that_does_not_and_the_oracle_bounds_both():
    found = forecast.predict(traces(), profile())
    assert len(found) == 14 and set(found.columns) == set(forecast.COLUMNS)
    best = found.loc[found["replay_speedup"].idxmax()]
    assert best["draft"] == "good" and best["replay_speedup"] > 1.5
    by_draft = found.pivot(index="gamma", columns="draft", values="replay_speedup")
    assert (by_draft["bad"] < by_draft["good"]).all() and (by_draft["bad"].iloc[2:] < 1).all()
    assert (found["oracle_speedup"] >= found.groupby("draft")["replay_speedup"].transform("max") - 1e-9).all()
    assert found["p_best"].sum() == pytest.approx(1.0)
    assert (found["replay_speedup_low"] <= found["replay_speedup"]).all()
    assert (found["replay_speedup"] <= found["replay_speedup_high"]).all()
    good = found[(found["draft"] == "good") & (found["gamma"] == 4)].iloc[0]
    assert good["replay_tokens_per_round"] == pytest.approx(40 / 8)  # 4 kept + the target's token a round


@pytest.mark.parametrize(("changes", "sentence"), [
    ({"greedy": False}, "the loop's own costs differ between greedy and sampled"),
    ({"models": {"target": {"params": 101, "dtype": "float32"}}}, "target with params=101"),
    ({"costs": {"target": costs(10.0, (0, 30)), "good": costs(1.0), "bad": costs(1.0)}}, "contexts up to 30"),
])
def test_a_profile_that_cannot_price_the_traces_is_refused_with_one_sentence(changes, sentence):
    with pytest.raises(ConfigError, match=sentence):
        forecast.check(traces(), profile(**changes))


def test_a_plan_joins_its_sweeps_rows_and_marks_the_cells_it_skipped(tmp_path):
    plan = {"kind": "plan", "fraction_of_grid": 0.25, "cells": [
        {"draft": "good", "gamma": 3, "replay_speedup": 2.0, "p_best": 0.9, "skipped": None},
        {"draft": "bad", "gamma": 3, "replay_speedup": 0.5, "p_best": 0.1, "skipped": "its upper bound is below"}]}
    (tmp_path / forecast.PLAN_JSON).write_text(json.dumps(plan))
    rows = [{"sweep": str(tmp_path), "draft": "good", "gamma": 3, "status": "done"},
            {"sweep": str(tmp_path), "draft": "bad", "gamma": 3, "status": "missing"}]
    joined = forecast.attach(rows, tmp_path)
    assert joined[0]["replay_speedup"] == 2.0 and joined[0]["plan_fraction"] == 0.25
    assert joined[1]["status"] == "skipped" and "upper bound" in joined[1]["error"]


def test_the_predicted_rows_are_a_study_of_the_profiled_machine():
    rows = forecast.predicted_rows(forecast.predict(traces(), profile()), traces(), profile())
    assert rows["predicted"].all() and (rows["status"] == "done").all()
    assert set(rows["hardware"]) == {"test CPU, 2 threads (predicted)"} and set(rows["model_family"]) == {"toy"}


def test_the_wandb_series_hold_measured_and_predicted_speedup_against_gamma():
    frame = pd.DataFrame({"draft": ["a", "a", "b"], "gamma": [1, 3, 1], "status": ["done", "done", "skipped"],
                          "speedup": [1.5, 1.8, None], "replay_speedup": [1.4, 1.9, 1.1]})
    xs, ys, keys = dashboard.speedup_series(frame)
    assert xs == [1, 3] and keys == ["a measured", "a predicted", "b predicted"]
    assert ys[0] == [1.5, 1.8] and ys[2][0] == 1.1 and pd.isna(ys[2][1])
