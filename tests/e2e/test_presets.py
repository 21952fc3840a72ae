"""The published-study presets, each run end to end on stand-ins of its architecture (tests/app/test_plan.py checks
their plans)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from specsweep.study.cells import PUBLISHED
from tests.app.test_plan import PRESETS
from tests.helpers import ROOT, compose_config, sweep

# A few rows with the fields of each preset's dataset, standing in for the Hub's copy.
ROWS = {
    "xlsum_ja": [{"id": str(i), "title": f"見出し{i}", "text": "東京で新しい駅が開業した。" * (i + 2),
                  "summary": "新しい駅が開業した。"} for i in range(3)],
    "xsum": [{"id": str(i), "document": "The council met on Monday to discuss the new bridge. " * (i + 2),
              "summary": "The council discussed a bridge."} for i in range(3)],
    "cnn_dailymail": [{"id": str(i), "article": "A storm closed schools across the region on Tuesday. " * (i + 2),
                       "highlights": "Storm closes schools."} for i in range(3)],
}


@pytest.mark.slow
@pytest.mark.parametrize("experiment", PRESETS)
def test_a_preset_runs_end_to_end_on_stand_ins(experiment, hub_cache, micro_env, tmp_path):
    """Every cell of the preset's grid at two lookaheads, on tiny random models of its architecture and a local
    file of its dataset's fields: the study is written and every cell is lossless."""
    dataset = compose_config([f"experiment={experiment}"]).dataset.name
    overrides = ["device=cpu", "logger=none", "gamma=1,2", "dataset.num_samples=2", "bench.max_new_tokens=4",
                 "bench.repeats=1"]
    if dataset in ROWS:
        data = tmp_path / f"{dataset}.jsonl"
        data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS[dataset]))
        overrides += [f"dataset.path={data}", "dataset.subset=null", "dataset.revision=null"]
    env = micro_env | {"HF_HOME": str(hub_cache), "HF_HUB_OFFLINE": "1"}
    done = sweep(tmp_path / "sweep", env, *overrides, experiment=experiment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "sweep" / "results.csv")
    published = table["key"].str.startswith(PUBLISHED)  # the paper's table the experiment names, beside ours
    named = compose_config([f"experiment={experiment}"]).published
    assert published.sum() == (len(pd.read_csv(ROOT / named)) if named else 0)
    ours = table[~published]
    assert (ours["status"] == "done").all() and (ours["exact_match"] == 1.0).all()
