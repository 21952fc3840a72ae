"""The published-study presets: each composes, passes every check and plans its sweep without loading anything;
the plan's count is what its header says; and each runs end to end on stand-ins of its architecture."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from specsweep.app import plan
from specsweep.study import tables
from tests.helpers import CONF, ROOT, compose_config, sweep

# experiment -> (cells, tokens to generate), as each file's header states them
PRESETS = {
    "xlsum_ja_study": (56, 95_585_280),
    "xlsum_ja_combined": (8, 18_206_720),
    "gpt_neo_xsum_study": (7, 80_640),
    "deepseek_humaneval": (4, 921_600),
    "pythia_study": (70, 2_580_480),
    "bloom_study": (56, 2_064_384),
    "cerebras_gpt_study": (70, 2_580_480),
    "gpt2_study": (56, 2_064_384),
    "llama_study": (14, 516_096),
}


def planned(experiment: str, *overrides: str) -> plan.Plan:
    """What `python -m specsweep -m experiment=<name>` would plan, composed in-process (device=cpu: this
    machine has no GPU, and the plan does not depend on it)."""
    arguments = [f"experiment={experiment}", "device=cpu", *overrides]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        master = compose("config", overrides=arguments, return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        swept = [f"{key}={value}" for key, value in master.hydra.sweeper.params.items()] + arguments
        (cells,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(swept), None)
        return plan.plan(master, cells, loader)


@pytest.mark.parametrize("experiment", PRESETS)
def test_a_preset_composes_checks_and_plans_what_its_header_says(experiment):
    found = planned(experiment)
    assert not found.problems, found.problems
    cells, tokens = PRESETS[experiment]
    assert (found.cells, found.tokens()) == (cells, tokens)
    header = (CONF / "experiment" / f"{experiment}.yaml").read_text()
    assert re.search(rf"Plan: .*{tokens:,} tokens", header), f"{experiment}'s header does not state {tokens:,}"


def test_every_published_study_has_a_preset():
    # the embedded family's, measured here
    ours = {"quickstart", "smoke", "combined", "int8", "compile", "bf16", "leviathan_alpha", "adaptive", "medusa",
            "fast_path"}
    studies = {p.stem for p in (CONF / "experiment").glob("*.yaml")} - ours
    assert studies == set(PRESETS)


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
    published = table["key"].str.startswith(tables.PUBLISHED)  # the paper's table the experiment names, beside ours
    named = compose_config([f"experiment={experiment}"]).published
    assert published.sum() == (len(pd.read_csv(ROOT / named)) if named else 0)
    ours = table[~published]
    assert (ours["status"] == "done").all() and (ours["exact_match"] == 1.0).all()
