"""Published tables in the study: the consistency diagnosis on Hayashizaki et al. 2024's table 1, whose drafts
after the first were conditioned on the wrong prefix, and the pair's α prediction beside each cell's own."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from specsweep.study import aggregate, cells, tables
from tests.helpers import ROOT

XLSUM = ROOT / "experiments" / "xlsum_ja_study" / "published.csv"


def test_the_published_xlsum_table_is_flagged_at_every_lookahead_above_one():
    table = aggregate.collect(published=[XLSUM])
    ((labels, frame),) = list(cells.groups(table))
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


def published_grid(name: str) -> pd.DataFrame:
    table = aggregate.collect(published=[ROOT / "experiments" / name / "published.csv"])
    return pd.concat([tables.grid(frame) for _, frame in cells.groups(table)], ignore_index=True)


def test_our_prediction_reproduces_leviathans_expected_speedups():
    grid = published_grid("leviathan_2023")
    expected = grid[grid["draft"].str.startswith("α=")]
    assert len(expected) == 6 and (expected["measured / predicted"] == "1.00").all()


def test_a_greedy_quality_change_beyond_rounding_is_flagged_as_not_lossless():
    assert published_grid("deepseek_humaneval")["flag"].iloc[0] == (
        "✗ greedy pass@1 differs from autoregressive (+0.050): not lossless")
    assert published_grid("gpt_neo_xsum_study")["flag"].iloc[0] == ""  # 0.160 -> 0.159: within rounding


def test_a_published_table_of_another_shape_reads_as_its_columns_say():
    """Liu et al. give no α; the reproduction gives no γ; Hayashizaki et al.'s table 2 only a speedup against the
    reference row: blanks stay blank, schema metrics keep their names."""
    liu = aggregate.collect(published=[ROOT / "experiments" / "liu_optimum" / "published.csv"])
    assert liu["alpha"].isna().all() and (liu["target_params"] / liu["draft_params"]).round(2).tolist()[0] == 40.0
    optimum = tables.optimum(liu)
    assert len(optimum) == 10 and set(optimum["scaling"]) >= {"40.0×", "6.5×", "60.4×", "12.1×", "18.3×", "11.8×"}
    combined = aggregate.collect(published=[ROOT / "experiments" / "xlsum_ja_combined" / "published.csv"])
    ((heading, frame),) = tables.combined_sections(combined)
    assert len(frame) == 7 and "1.77×" in frame[tables.AGAINST_REFERENCE].tolist()
