"""The study's pure functions on small tidy tables shaped like `aggregate.collect`'s: the edge cases a real
sweep reaches rarely (no drafting method, every job failed, merged duplicates, a table read back from CSV)."""

from __future__ import annotations

import io
import itertools

import pandas as pd
import pytest
from omegaconf import OmegaConf

from specsweep import record, theory
from specsweep.study import aggregate, plots
from specsweep.study import tables as study


def job(method: str = "speculative", draft: str | None = "1M", gamma: int | None = 3, status: str = "done",
        speedup: float | None = 1.5, **more) -> dict:
    """One row of the tidy table; a method that ignores draft and gamma has None there, as collect writes."""
    measured = status == "done"
    row = {
        "sweep": "/s", "job": f"{method}-{draft}-{gamma}-{len(more)}", "status": status, "same_as": None,
        "key": f"{method}/{draft}/{gamma}/{sorted(more.items())}", "time": "2026-11-22T00:00:00+00:00",
        "model_family": "fam", "dataset": "data", "method": method, "setting": "default",
        "sampling.temperature": 0.0, "hardware": "cpu", "bench.max_new_tokens": 8, "model_family.target": "t",
        "draft": draft, "gamma": gamma, "draft_params": {"1M": 1_000_000, "3M": 3_000_000}.get(draft),
        "target_params": 9_000_000,
        "speedup": speedup if measured else None, "speedup_low": speedup and speedup - 0.1,
        "speedup_high": speedup and speedup + 0.1, "control_speedup": 1.0, "control_speedup_low": 0.97,
        "control_speedup_high": 1.02, "alpha": 0.7 if draft else None, "acceptance_rate": 0.6,
        "c": 0.1 if draft else None, "predicted_speedup": 1.8 if draft and measured else None,
        "gamma_star": 4 if draft and measured else None, "ms_per_token": 3.0, "baseline_ms_per_token": 4.5,
        "exact_match": 1.0 if measured else None, "rougeL": 0.3, "baseline_rougeL": 0.3,
        "error": None if measured else "ValueError: boom",
    }
    return row | more


def table(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in aggregate.INTEGERS:
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def grid_of(rows: list[dict]) -> pd.DataFrame:
    ((_, frame),) = list(study.groups(table(rows)))
    return study.grid(frame)


def test_the_optimum_is_the_fastest_measured_cell_and_the_predicted_one_beside_it():
    rows = [job(draft=d, gamma=g, speedup=s) for (d, g), s in zip(itertools.product(["1M", "3M"], [1, 3]),
                                                                   [1.2, 1.9, 1.4, 1.1], strict=True)]
    rows[2]["alpha"] = 0.8  # 3M at γ=1: its pair α, and the best prediction at every γ
    best = study.optimum(table(rows)).iloc[0]
    assert (best["draft"], best["γ"], best[study.SPEEDUP]) == ("1M", 3, "1.90× [1.80, 2.00]")
    assert best["rank"] == "best" and len(study.optimum(table(rows))) == 1  # no other interval reaches 1.80
    gamma = theory.gamma_star(0.8, 0.1)
    assert (best["predicted best draft"], best["predicted best γ"], best["predicted speedup"]) == (
        "3M", gamma, f"{theory.predicted_speedup(0.8, gamma, 0.1):.2f}×")
    assert best["scaling"] == "9.0×"


def test_a_best_cell_slower_than_autoregressive_says_so():
    best = study.optimum(table([job(speedup=0.8)])).iloc[0]
    assert best[study.SPEEDUP].endswith("(slower than autoregressive)")


def test_cells_whose_interval_overlaps_the_best_ones_are_tied_for_best():
    rows = [job(draft=d, gamma=g, speedup=s) for (d, g), s in zip(itertools.product(["1M", "3M"], [1, 3]),
                                                                   [1.50, 1.45, 1.20, 1.31], strict=True)]
    found = study.optimum(table(rows))
    tie = "tied for best (intervals overlap)"
    assert found[["draft", "γ", "rank"]].values.tolist() == [["1M", 1, "best"], ["1M", 3, tie], ["3M", 3, tie]]
    assert (found["A/A noise floor"] == "1.00× [0.97, 1.02]").all()
    assert "tied for best" in study.markdown(table(rows))


def test_a_sweep_without_a_drafting_method():
    rows = [job(method="autoregressive", draft=None, gamma=None, speedup=1.0)]
    grid = grid_of(rows)
    assert list(grid[["draft", "γ", "status"]].iloc[0]) == [study.NO_DRAFT, 0, "done"]
    assert study.optimum(table(rows)).iloc[0]["predicted speedup"] == "—"
    assert "nan" not in study.markdown(table(rows))
    names = [stem.split("__")[1] for stem, _, _ in plots.figures(table(rows))]
    assert names == ["latency_vs_gamma", "speedup_heatmap"]  # no alpha, no prediction without a draft


def test_mixed_methods_are_separate_groups():
    rows = [job(), job(gamma=5), job(method="prompt_lookup", draft=None, gamma=3, speedup=1.1),
            job(method="autoregressive", draft=None, gamma=None, speedup=1.0),
            job(method="autoregressive", draft=None, gamma=None, speedup=1.0) | {"job": "copy", "same_as": "x"}]
    found = {labels["method"]: study.grid(frame) for labels, frame in study.groups(table(rows))}
    assert sorted(found) == ["autoregressive", "prompt_lookup", "speculative"]
    assert len(found["autoregressive"]) == 1  # the copy (same_as) is not a second row
    assert list(found["speculative"]["γ"]) == [3, 5]
    assert "nan" not in study.markdown(table(rows))


def test_every_job_failed():
    rows = [job(draft=d, status="failed") for d in ["1M", "3M"]]
    sections = dict(study.sections(table(rows)))
    assert sections["Jobs that did not finish"]["error"].tolist() == ["ValueError: boom"] * 2
    assert study.optimum(table(rows)).empty and plots.figures(table(rows)) == []
    assert list(grid_of(rows)["status"]) == ["failed", "failed"]


def test_an_empty_sweep(tmp_path):
    empty = aggregate.collect(tmp_path)
    assert empty.empty and {"status", "draft", "gamma", "speedup"} <= set(empty.columns)
    assert "(no finished cells)" in study.markdown(empty) and plots.figures(empty) == []


def test_another_varying_axis_splits_the_group_instead_of_dropping_jobs():
    rows = [job(**{"bench.max_new_tokens": n}) for n in (8, 16)]
    found = list(study.groups(table(rows)))
    assert len(found) == 2 and all(len(frame) == 1 for _, frame in found)
    assert study.title(found[1][0]).endswith("bench.max_new_tokens=16")


def test_the_same_cell_from_merged_sweeps_keeps_the_latest_finished_run():
    older = job(speedup=1.2) | {"sweep": "/a", "time": "2026-11-01T00:00:00+00:00"}
    newer = job(speedup=1.6) | {"sweep": "/b", "time": "2026-11-02T00:00:00+00:00"}
    failed = job(status="failed") | {"sweep": "/c", "time": "2026-11-03T00:00:00+00:00"}
    cells = study.measured_cells(table([newer, failed, older]))
    assert len(cells) == 1 and cells.iloc[0]["speedup"] == 1.6 and cells.iloc[0]["runs"] == 2
    other_machine = job(speedup=1.1) | {"sweep": "/d", "hardware": "gpu"}
    assert len(study.measured_cells(table([newer, other_machine]))) == 2


def test_a_table_read_back_from_csv_gives_the_same_study():
    rows = [job(draft=d, gamma=g) for d, g in itertools.product(["1M", "3M"], [1, 3])]
    rows.append(job(method="autoregressive", draft=None, gamma=None, speedup=1.0))
    rows.append(job(draft="9M", status="failed"))
    original = table(rows)
    read_back = pd.read_csv(io.StringIO(original.to_csv(index=False)))
    assert study.markdown(read_back) == study.markdown(original)


@pytest.mark.parametrize("speedup,predicted,exact,expected", [
    (1.0, 2.0, 0.5, "⚠ below prediction; ✗ greedy output differs from autoregressive"),
    (2.6, 2.0, 1.0, "⚠ above prediction"),
    (1.8, 2.0, 1.0, ""),  # within 1 +- 0.25, lossless
])
def test_the_flag_marks_measured_far_from_predicted_and_lossy_greedy_output(speedup, predicted, exact, expected):
    row = pd.Series({"speedup": speedup, "predicted_speedup": predicted, "sampling.temperature": 0.0,
                     "exact_match": exact})
    assert study.flags(row, 0.25) == expected


def test_the_combined_table_has_both_speedups_labelled_apart():
    """Hayashizaki et al. 2024, table 2: each method × KV cache × attention cell, with the paired speedup (same
    switches) and the speedup against the unoptimised reference row as two labelled columns."""
    rows = []
    for method, kv, attn in itertools.product(["autoregressive", "speculative"], [False, True], ["eager", "sdpa"]):
        drafting = method == "speculative"
        rows.append(job(method=method, draft="1M" if drafting else None, gamma=3 if drafting else None,
                        speedup=1.5 if drafting else 1.0, **{
                            "optimization.kv_cache": kv, "optimization.attn": attn,
                            "setting": "default" if kv and attn == "sdpa" else f"attn={attn}, kv_cache={kv}",
                            "reference_speedup": 2.0 if kv else 1.2, "reference_speedup_low": 1.0,
                            "reference_speedup_high": 3.0}))
    heading, combined = study.combined_sections(table(rows))[0]
    assert heading == ("Speculative decoding × optimisations (Hayashizaki et al. 2024, table 2) · fam · data · greedy"
                       " · cpu")
    assert len(combined) == 8
    best = combined.iloc[-1]
    assert (best["method"], best["KV cache"], best["attention"]) == ("speculative", "✓", "sdpa")
    assert best[study.PAIRED] == "1.50× [1.40, 1.60]" and best[study.AGAINST_REFERENCE] == "2.00× [1.00, 3.00]"
    assert study.PAIRED != study.AGAINST_REFERENCE
    assert [h for h, _ in study.sections(table(rows))][1] == heading  # right after the optimum
    assert study.combined_sections(table([job()])) == []  # no reference row timed: no such table
    longer = [row | {"bench.max_new_tokens": 16, "job": row["job"] + "-16", "key": row["key"] + "-16"} for row in rows]
    assert len(study.combined_sections(table(rows + longer))) == 2  # another varying axis: another table


def test_never_launched_cells_are_inferred_for_any_swept_axes(tmp_path):
    """A method x attention x draft sweep killed after two jobs: the cells it never launched are `missing` rows
    named by their overrides; autoregressive ignores the draft, so it misses once, not once per draft."""
    OmegaConf.save(OmegaConf.create({"hydra": {"sweeper": {"params": {}}, "overrides": {"task": [
        "method=autoregressive,speculative", "optimization.attn=eager,sdpa", "draft=1M,3M", "experiment=smoke"]}}}),
        tmp_path / "multirun.yaml")
    launched = [("speculative", "eager", "1M"), ("autoregressive", "sdpa", "1M")]
    for number, (method, attn, draft) in enumerate(launched):
        job_dir = tmp_path / f"{number}_method={method},optimization.attn={attn},draft={draft}"
        (job_dir / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create([f"method={method}", f"optimization.attn={attn}", f"draft={draft}"]),
                       job_dir / ".hydra" / "overrides.yaml")
        drafting = method == "speculative"
        cell = {"method": method, "method.name": method, "draft": draft if drafting else None,
                "gamma": 3 if drafting else None, "model_family": "fam", "dataset": "data",
                "optimization.name": "default", "optimization.attn": attn,
                "setting": f"attn={attn}", "sampling.temperature": 0.0}
        record.write_json(job_dir / record.STATUS, {"status": "failed", "key": str(number), "cell": cell,
                                                    "error": "ValueError: boom"})
    rows = aggregate.collect(tmp_path)
    never = rows[rows["job"].str.startswith("(never launched)")].set_index("job")
    assert sorted(never.index) == [
        "(never launched) method=autoregressive,optimization.attn=eager,draft=1M",
        "(never launched) method=speculative,optimization.attn=eager,draft=3M",
        "(never launched) method=speculative,optimization.attn=sdpa,draft=1M",
        "(never launched) method=speculative,optimization.attn=sdpa,draft=3M"]
    autoregressive = never.loc["(never launched) method=autoregressive,optimization.attn=eager,draft=1M"]
    assert pd.isna(autoregressive["draft"]) and autoregressive["setting"] == "attn=eager"
    assert never.loc["(never launched) method=speculative,optimization.attn=sdpa,draft=3M", "setting"] == "attn=sdpa"
    assert (never["status"] == "missing").all() and (never["gamma"].dropna() == 3).all()
    grids = {(labels["method"], labels["setting"]): study.grid(frame) for labels, frame in study.groups(rows)}
    assert sorted(grids) == [("autoregressive", "attn=eager"), ("autoregressive", "attn=sdpa"),
                             ("speculative", "attn=eager"), ("speculative", "attn=sdpa")]
    assert list(grids["speculative", "attn=sdpa"]["status"]) == ["missing", "missing"]
