"""A sweep over the micro family's two ladders (distilled and plain-trained, built on first use): every distilled
draft decodes losslessly through the sweep, each job records its draft's card, and the study fits and compares
them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.helpers import sweep

pytestmark = pytest.mark.slow


def test_a_sweep_over_two_ladders_is_lossless_and_studied(tmp_path, micro_env):
    done = sweep(tmp_path, micro_env, "model_family=embedded_ladder_micro,embedded_ladder_micro_plain",
                 "draft=7K,16K,19K", "gamma=2")
    assert done.returncode == 0, done.stderr[-3000:]
    results = pd.read_csv(tmp_path / "results.csv", dtype={"draft": str})
    assert len(results) == 6 and results["status"].eq("done").all()
    assert results["exact_match"].eq(1.0).all()  # greedy: every draft's output is the target's own
    assert set(results["draft_loss"]) == {"fkl", "nll"}
    assert results.groupby("draft")["draft_shape"].first().to_dict() == {"7K": "1x8", "16K": "1x16", "19K": "2x16"}
    job = next(p for p in tmp_path.iterdir() if p.name.startswith("0_"))
    card = json.loads((job / "metrics.json").read_text())["cards"]["draft"]
    assert card["training"]["loss"] == "fkl" and card["params"] == results.loc[0, "draft_params"]
    study = (tmp_path / "study.md").read_text()
    for heading in ("Draft scale: α fitted", "The border in draft scale", "Distilled against plain-trained"):
        assert heading in study
    assert any(p.name.endswith("__draft_scale.png") for p in (tmp_path / "plots").iterdir())
