"""The study's tables on small tidy tables shaped like `aggregate.collect`'s: the optimum with its ties and the
predicted optimum beside it, a sweep without a drafting method, and Hayashizaki et al. 2024's table 2."""

from __future__ import annotations

import itertools

from specsweep import theory
from specsweep.study import cells, document, plots, tables
from specsweep.study.format import SPEEDUP
from tests.study.rows import grid_of, job, table


def test_the_optimum_is_the_fastest_measured_cell_and_the_predicted_one_beside_it():
    rows = [job(draft=d, gamma=g, speedup=s) for (d, g), s in zip(itertools.product(["1M", "3M"], [1, 3]),
                                                                   [1.2, 1.9, 1.4, 1.1], strict=True)]
    rows[2]["alpha"] = 0.8  # 3M at γ=1: its pair α, and the best prediction at every γ
    best = tables.optimum(table(rows)).iloc[0]
    assert (best["draft"], best["γ"], best[SPEEDUP]) == ("1M", 3, "1.90× [1.80, 2.00]")
    assert best["rank"] == "best" and len(tables.optimum(table(rows))) == 1  # no other interval reaches 1.80
    gamma = theory.gamma_star(0.8, 0.1)
    assert (best["predicted best draft"], best["predicted best γ"], best["predicted speedup"]) == (
        "3M", gamma, f"{theory.predicted_speedup(0.8, gamma, 0.1):.2f}×")
    assert best["scaling"] == "9.0×"


def test_a_best_cell_slower_than_autoregressive_says_so():
    best = tables.optimum(table([job(speedup=0.8)])).iloc[0]
    assert best[SPEEDUP].endswith("(slower than autoregressive)")


def test_cells_whose_interval_overlaps_the_best_ones_are_tied_for_best():
    rows = [job(draft=d, gamma=g, speedup=s) for (d, g), s in zip(itertools.product(["1M", "3M"], [1, 3]),
                                                                   [1.50, 1.45, 1.20, 1.31], strict=True)]
    found = tables.optimum(table(rows))
    tie = "tied for best (intervals overlap)"
    assert found[["draft", "γ", "rank"]].values.tolist() == [["1M", 1, "best"], ["1M", 3, tie], ["3M", 3, tie]]
    assert (found["A/A noise floor"] == "1.00× [0.97, 1.02]").all()
    assert "tied for best" in document.markdown(table(rows))


def test_a_sweep_without_a_drafting_method():
    rows = [job(method="autoregressive", draft=None, gamma=None, speedup=1.0)]
    grid = grid_of(rows)
    assert list(grid[["draft", "γ", "status"]].iloc[0]) == [cells.NO_DRAFT, 0, "done"]
    assert tables.optimum(table(rows)).iloc[0]["predicted speedup"] == "—"
    assert "nan" not in document.markdown(table(rows))
    names = [stem.split("__")[1] for stem, _, _ in plots.figures(table(rows))]
    assert names == ["latency_vs_gamma", "speedup_heatmap"]  # no alpha, no prediction without a draft


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
    heading, combined = tables.combined_sections(table(rows))[0]
    assert heading == ("Speculative decoding × optimisations (Hayashizaki et al. 2024, table 2) · fam · data · greedy"
                       " · cpu")
    assert len(combined) == 8
    best = combined.iloc[-1]
    assert (best["method"], best["KV cache"], best["attention"]) == ("speculative", "✓", "sdpa")
    assert best[tables.PAIRED] == "1.50× [1.40, 1.60]" and best[tables.AGAINST_REFERENCE] == "2.00× [1.00, 3.00]"
    assert tables.PAIRED != tables.AGAINST_REFERENCE
    assert [h for h, _ in document.sections(table(rows))][1] == heading  # right after the optimum
    assert tables.combined_sections(table([job()])) == []  # no reference row timed: no such table
    longer = [row | {"bench.max_new_tokens": 16, "job": row["job"] + "-16", "key": row["key"] + "-16"} for row in rows]
    assert len(tables.combined_sections(table(rows + longer))) == 2  # another varying axis: another table
