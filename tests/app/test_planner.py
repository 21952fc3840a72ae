"""The planner's rule (`specsweep.app.planner.decide`) on hand-made predictions and measurements, and the grids it
refuses, composed from the real config tree."""

from __future__ import annotations

import pytest

from specsweep.app import cell, planner
from specsweep.errors import ConfigError
from tests.helpers import compose_config


def predicted(speedup: float, half: float = 0.05) -> dict[str, float]:
    return {"replay_speedup": speedup, "replay_speedup_low": speedup - half, "replay_speedup_high": speedup + half,
            "decode_seconds": 1.0}


def measured(speedup: float, half: float = 0.05) -> planner.Measured:
    return planner.Measured(speedup, speedup - half, speedup + half, 1.0, ([1.0], [1.0 / speedup]))


GRID = {("A", 1): predicted(2.0), ("A", 3): predicted(1.6), ("B", 1): predicted(1.3), ("B", 3): predicted(1.95)}


def test_the_first_cell_measured_is_the_one_predicted_fastest():
    assert planner.decide(GRID, {}, []).next == ("A", 1)


def test_a_measured_best_whose_lower_bound_no_other_cell_reaches_stops_the_plan_with_reasons():
    decision = planner.decide(GRID, {("A", 1): measured(2.0), ("B", 3): measured(1.94)}, [("A", 1), ("B", 3)])
    assert decision.next is None and not decision.misses
    assert set(decision.reasons) == {("A", 3), ("B", 1)}
    assert "below the measured best's lower bound, 1.95× (A γ=1)" in decision.reasons[("A", 3)]


def test_a_cell_whose_upper_bound_reaches_the_best_is_measured_next():
    decision = planner.decide(GRID, {("A", 1): measured(2.0)}, [("A", 1)])
    assert decision.next == ("B", 3)  # 1.95 + 0.05 reaches 2.0 - 0.05


def test_a_miss_is_reported_and_scales_every_upper_bound():
    # A γ=3 measured 40% above its prediction: B γ=1 (1.35 at most, x 1.4 = 1.89) can now reach the best.
    found = {("A", 1): measured(2.0), ("B", 3): measured(1.94), ("A", 3): measured(1.6 * 1.4)}
    decision = planner.decide(GRID, found, [("A", 1), ("B", 3), ("A", 3)])
    assert len(decision.misses) == 1 and decision.misses[0].startswith("A γ=3: measured 2.24×")
    assert decision.scale == pytest.approx(1.4)
    assert decision.next == ("B", 1)


@pytest.mark.parametrize(("overrides", "sentence"), [
    (["method=autoregressive"], "method=autoregressive has no draft"),
    (["method.options.stop_below=0.5"], "its rounds do not follow from the draft's choices"),
    (["optimization.cache=static"], "profiles forwards on a dynamic KV cache"),
])
def test_a_grid_the_planner_cannot_predict_is_refused_with_one_sentence(overrides, sentence, tmp_path):
    spec = cell.typed(compose_config(["model_family=embedded_micro", *overrides], tmp_path))
    with pytest.raises(ConfigError, match=sentence):
        planner.grid_of([spec])


def test_a_grid_that_varies_more_than_draft_and_gamma_is_refused(tmp_path):
    specs = [cell.typed(compose_config(["model_family=embedded_micro", f"bench.max_new_tokens={n}"], tmp_path))
             for n in (8, 16)]
    with pytest.raises(ConfigError, match="also varies bench"):
        planner.grid_of(specs)
    first, grid = planner.grid_of([specs[0], None])
    assert grid == {("37K", 3): 0} and first.draft == "37K"
