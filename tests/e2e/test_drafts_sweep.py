"""The new draft kinds and the adaptive stop rule through the real sweep command on the micro family: n-gram drafts
and Medusa heads (trained on first use) are exact at temperature 0, the study shows the α table in Leviathan et
al.'s shape and each adaptive cell beside the best fixed γ, and a bad option is refused before any job."""

from __future__ import annotations

import json

import pandas as pd

from specsweep.study import aggregate, tables
from specsweep.study.cells import groups, measured_cells
from tests.helpers import sweep


def test_ngram_and_medusa_cells_run_exactly_and_fill_the_alpha_table(micro_env, tmp_path):
    done = sweep(tmp_path / "s", micro_env, "method=speculative,medusa", "draft=unigram,bigram", "gamma=1,2",
                 "dataset.num_samples=2", "bench.max_new_tokens=12")
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "s" / aggregate.RESULTS_CSV)
    assert table["status"].eq("done").all(), table[["job", "status", "error"]]
    cells = measured_cells(table)
    assert len(cells) == 2 * 2 + 2  # 2 drafts x 2 gammas, and Medusa at 2 gammas (it takes no draft)
    assert cells["exact_match"].eq(1.0).all()  # greedy
    medusa = cells[cells["method"].eq("medusa")]
    assert medusa["heads_params"].gt(0).all() and medusa["draft_params"].isna().all()
    assert medusa["drafts_conditioned"].eq(False).all()
    assert not any("α" in flag for labels, frame in groups(table) if labels["method"] == "medusa"
                   for flag in tables.grid(frame)["flag"])  # α falls with γ for heads by design
    study = (tmp_path / "s" / aggregate.STUDY_MD).read_text()
    assert "shape of Leviathan et al.'s α table" in study
    job = next((tmp_path / "s").glob("*draft=bigram,gamma=1,method=speculative"))
    ngram = json.loads((job / "metrics.json").read_text())
    assert ngram["params"]["draft"] > 0 and ngram["applied"]["draft"]["kv_cache"] is None  # a table: no cache


def test_the_stop_rule_is_compared_with_the_best_fixed_gamma(micro_env, tmp_path):
    done = sweep(tmp_path / "s", micro_env, "draft=37K", "gamma=1,3", "method.options.stop_below=0,0.9",
                 "dataset.num_samples=2", "bench.max_new_tokens=12")
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "s" / aggregate.RESULTS_CSV)
    adaptive = table[table["method.options.stop_below"].gt(0)]
    assert adaptive["exact_match"].eq(1.0).all()
    assert (adaptive["drafts_per_round"] <= adaptive["gamma"]).all()
    study = (tmp_path / "s" / aggregate.STUDY_MD).read_text()
    assert "Adaptive lookahead beside the best fixed γ of the same draft" in study
    assert "stop_below=0.9" in study


def test_an_option_the_method_lacks_is_refused_before_any_job(micro_env, tmp_path):
    done = sweep(tmp_path / "s", micro_env, "method=medusa", "+method.options.stop_below=0.5")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "method.options.stop_below is not an option of method medusa" in output
    assert "Traceback" not in output
