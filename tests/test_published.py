"""Published tables in the study: the consistency diagnosis on Hayashizaki et al. 2024's table 1, whose drafts
after the first were conditioned on the wrong prefix, and the pair's α prediction beside each cell's own."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from specsweep.study import aggregate, tables
from tests.helpers import ROOT

XLSUM = ROOT / "experiments" / "xlsum_ja_study" / "published.csv"


def test_the_published_xlsum_table_is_flagged_at_every_lookahead_above_one():
    table = aggregate.collect(published=[XLSUM])
    ((labels, frame),) = list(tables.groups(table))
    assert labels["setting"] == "published"
    grid = tables.grid(frame)
    signature = grid["flag"].str.contains("drafts not conditioned on earlier drafts")
    assert signature[grid["γ"] >= 3].all() and signature.sum() == 24
    assert not grid.loc[grid["γ"] == 1, "flag"].str.contains("✗").any()
    row = grid[(grid["draft"] == "29M") & (grid["γ"] == 3)].iloc[0]
    assert (row["pair α"], row["S (pair α)"], row["γ* (pair α)"]) == ("0.593", "1.57", "3")  # not the paper's γ=1


def test_a_published_table_alone_aggregates_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "specsweep.aggregate", "--published", str(XLSUM), "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    study = (tmp_path / aggregate.STUDY_MD).read_text()
    flagged = [line for line in study.splitlines() if line.startswith("|") and "not conditioned on earlier" in line]
    assert len(flagged) == 24 and all(line.split("|")[3].strip() in ("3", "5", "7") for line in flagged)
    assert len(pd.read_csv(tmp_path / aggregate.RESULTS_CSV)) == 32


@pytest.mark.parametrize("columns,words", [
    ("draft,gamma,alpha\n1M,1,0.5\n", ["lacks speedup"]),
    ("draft,gamma,speedup\n1M,1,1.2\n", ["lacks alpha or acceptance_rate"]),
    ("draft,gamma,speedup,alpha,colour\n1M,1,1.2,0.5,red\n", ["unknown columns colour"]),
])
def test_a_bad_published_table_is_one_sentence(tmp_path, columns, words):
    bad = tmp_path / "bad.csv"
    bad.write_text(columns)
    done = subprocess.run([sys.executable, "-m", "specsweep.aggregate", "--published", str(bad), "--out",
                           str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert all(word in done.stderr for word in words), done.stderr
