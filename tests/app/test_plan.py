"""The published-study presets: each composes, passes every check and plans its sweep without loading anything, and
the plan's count is what its header says (tests/e2e/test_presets.py runs each end to end)."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from specsweep.app import plan
from tests.helpers import CONF

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
    with initialize_config_module(version_base="1.3", config_module="specsweep.conf"):
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
    ours = {"quickstart", "combined", "int8", "compile", "bf16", "leviathan_alpha", "adaptive", "medusa",
            "fast_path", "prediction", "draft_scale"}
    studies = {p.stem for p in (CONF / "experiment").glob("*.yaml")} - ours
    assert studies == set(PRESETS)
