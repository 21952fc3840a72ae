"""The planner's rule (`specsweep.app.planner.decide`) on hand-made predictions and measurements, and the grids it
refuses, composed from the real config tree."""

from __future__ import annotations

import numpy as np
import pytest

from specsweep import record
from specsweep.app import cell, planner
from specsweep.errors import ConfigError
from tests.helpers import compose_config


def predicted(speedup: float, half: float = 0.05) -> dict[str, float]:
    return {"replay_speedup": speedup, "replay_speedup_low": speedup - half, "replay_speedup_high": speedup + half,
            "decode_seconds": 1.0}


def measured(speedup: float, half: float = 0.05) -> planner.Measured:
    return planner.Measured(speedup, speedup - half, speedup + half, 1.0, ([1.0], [1.0 / speedup]))


GRID = {("A", 1): predicted(2.0), ("A", 3): predicted(1.6), ("B", 1): predicted(1.3), ("B", 3): predicted(1.95)}
# The prompts move every cell's speedup together (±20% across resamples), and each cell by ±1% of its own.
PROMPTS = 1 + 0.2 * np.sin(np.arange(record.RESAMPLES))


def own(seed: int) -> np.ndarray:
    return 1 + 0.01 * np.random.default_rng(seed).standard_normal(record.RESAMPLES)


def decide(found: dict, order: list):
    guessed = {c: p["replay_speedup"] * PROMPTS * own(i) for i, (c, p) in enumerate(GRID.items())}
    seen = {c: m.speedup * PROMPTS * own(10 + i) for i, (c, m) in enumerate(found.items())}
    return planner.decide(GRID, found, order, guessed, seen)


def test_the_first_cell_measured_is_the_one_predicted_fastest():
    assert decide({}, []).next == ("A", 1)


def test_a_measured_best_no_cell_left_can_reach_on_the_same_prompts_stops_the_plan_with_reasons():
    # Each cell's marginal interval is ±20% wide and they all overlap, but on the same prompts A γ=3 and B γ=1 stay
    # far below A γ=1: a paired comparison skips them.
    decision = decide({("A", 1): measured(2.0), ("B", 3): measured(1.94)}, [("A", 1), ("B", 3)])
    assert decision.next is None and not decision.misses
    assert set(decision.reasons) == {("A", 3), ("B", 1)}
    assert "of the measured best, A γ=1 (2.00×)" in decision.reasons[("A", 3)]


def test_a_cell_that_can_reach_the_best_on_the_same_prompts_is_measured_next():
    assert decide({("A", 1): measured(2.0)}, [("A", 1)]).next == ("B", 3)  # 1.95 against 2.0, ±1% each


def test_a_miss_is_reported_and_scales_every_upper_bound():
    # A γ=3 measured 40% above its prediction: the prediction missed the last cell measured, so the planner measures
    # the next one, B γ=1, although even scaled by 1.4 (1.82×) it would not reach A γ=3's 2.24×.
    found = {("A", 1): measured(2.0), ("B", 3): measured(1.94), ("A", 3): measured(1.6 * 1.4)}
    decision = decide(found, [("A", 1), ("B", 3), ("A", 3)])
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
