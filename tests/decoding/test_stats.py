"""Derived metrics follow their definitions in specsweep.record, and a call's counts and timings add up."""

from __future__ import annotations

import pytest

from specsweep import theory
from specsweep.decoding import DecodeStats, autoregressive, derive, speculative


def test_derived_metrics_from_counts():
    stats = DecodeStats(new_tokens=10, rounds=4, drafted=12, accepted=6, rejections=3,
                        accepted_per_position=[3, 2, 1], draft_forwards=12, draft_seconds=0.012,
                        target_forwards=3, target_seconds=0.013, verify_forwards=2, verify_seconds=0.010,
                        seconds=0.05)
    baseline = DecodeStats(new_tokens=10, target_forwards=9, target_seconds=0.036, seconds=0.04)
    m = derive(stats, baseline)
    assert m["acceptance_rate"] == 0.5  # 6 / 12
    assert m["alpha"] == pytest.approx(6 / 9)  # accepted / (accepted + rejections)
    assert m["tokens_per_round"] == 2.5
    assert m["c"] == pytest.approx(1.0 / 4.0)  # 1 ms per draft step / 4 ms per target step
    assert m["verify_cost"] == pytest.approx(5.0 / 4.0)  # 5 ms per full verification / 4 ms per step
    assert m["ms_per_token"] == pytest.approx(5.0) and m["tokens_per_s"] == pytest.approx(200)
    assert m["predicted_speedup"] == pytest.approx(theory.predicted_speedup(6 / 9, 3, 0.25))
    assert m["gamma_star"] == theory.gamma_star(6 / 9, 0.25)
    assert derive(DecodeStats())["alpha"] is None  # undefined, not zero


def test_stats_add_up_over_calls(target, near_draft, prompts):
    total = DecodeStats()
    for prompt in prompts[:3]:
        out = speculative(target, near_draft, prompt, gamma=3, max_new_tokens=12)
        total = total + out.stats
        assert sum(out.stats.accepted_per_position) == out.stats.accepted
        assert out.stats.drafted == out.stats.draft_forwards + 1  # the first draft forward is the prefill
        assert out.stats.rounds == out.stats.target_forwards + 1
    assert total.new_tokens == 36 and sum(total.accepted_per_position) == total.accepted


def test_timings_are_positive_and_consistent(target, near_draft, prompts):
    ar = autoregressive(target, prompts[0], max_new_tokens=16)
    sd = speculative(target, near_draft, prompts[0], gamma=2, max_new_tokens=16)
    assert ar.stats.target_forwards == 15 and ar.stats.prefill_seconds > 0
    for stats in (ar.stats, sd.stats):
        forwards = stats.target_seconds + stats.draft_seconds + stats.prefill_seconds
        assert 0 < forwards <= stats.seconds
    m = derive(sd.stats, ar.stats)
    assert 0 < m["c"] and 0 < m["verify_cost"] and 0 <= m["overhead_fraction"] < 1
