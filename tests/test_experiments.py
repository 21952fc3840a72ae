"""The lab notebook: every committed study.md is what the aggregation makes of its committed results.csv, byte
for byte, and every experiment folder says how it was made."""

from __future__ import annotations

import pytest

from specsweep.study import aggregate, published
from tests.helpers import ROOT

EXPERIMENTS = sorted(p for p in (ROOT / "experiments").iterdir() if p.is_dir())


def test_there_are_experiments():
    assert {p.name for p in EXPERIMENTS} >= {"quickstart", "xlsum_ja_study"}


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda p: p.name)
def test_a_committed_study_regenerates_from_its_results(experiment, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    aggregate.summarize([experiment / aggregate.RESULTS_CSV], tmp_path)
    assert (tmp_path / aggregate.STUDY_MD).read_text() == (experiment / aggregate.STUDY_MD).read_text()


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda p: p.name)
def test_an_experiment_says_how_it_was_made(experiment):
    readme = (experiment / "README.md").read_text()
    for heading in ("## Question", "## Command", "## Machine, commit, date"):
        assert heading in readme, f"{experiment.name}/README.md lacks {heading}"
    if (experiment / "published.csv").exists():
        assert not published.read(experiment / "published.csv").empty and "## Published" in readme
