"""The results schema: every metric declared once, the table of metrics in docs/metrics.md the same as the
schema's, and what a job writes made of declared names only."""

from __future__ import annotations

import random
import re

import pytest

from specsweep import record
from specsweep.decoding import DecodeStats, derive
from tests.helpers import ROOT


def documented_metrics() -> list[str]:
    """The first column of the table of metrics in docs/metrics.md (its section "## The metrics"; the counts
    below it are not metrics)."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    section = text[text.index("\n## The metrics\n"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"^\| `([A-Za-z_0-9]+)` \|", section, flags=re.MULTILINE)


def test_the_docs_list_exactly_the_metrics_of_the_schema():
    listed = documented_metrics()
    assert len(listed) == len(set(listed)), "a metric is listed twice"
    assert set(listed) == set(record.METRICS), (set(listed) ^ set(record.METRICS))


def test_every_metric_declares_a_definition_and_scores_declare_a_direction():
    for metric in record.METRICS.values():
        assert metric.definition, metric.name
    assert set(record.higher_is_better()) >= {"speedup", "alpha", "c", "verify_cost", "reference_speedup"}
    assert "gamma_star" not in record.higher_is_better() and "accepted_per_position" not in record.higher_is_better()


def test_derive_writes_only_declared_metrics():
    stats = DecodeStats(new_tokens=10, rounds=4, drafted=8, accepted=6, rejections=2, accepted_per_position=[3, 3],
                        target_forwards=4, target_seconds=0.4, draft_forwards=8, draft_seconds=0.08, seconds=0.6,
                        verify_forwards=4, verify_seconds=0.4)
    baseline = DecodeStats(new_tokens=10, target_forwards=9, target_seconds=0.9, seconds=1.0)
    assert set(derive(stats, baseline)) <= set(record.metric_keys())


def mean(units):
    return sum(u[0] for u in units) / len(units)


def test_the_bootstrap_interval_holds_the_estimate_and_is_seeded():
    units = [(x,) for x in [1.4, 1.5, 1.9, 1.6, 1.45, 1.55]]
    figures = record.bootstrap("speedup", units, mean)
    assert set(figures) == {"speedup", "speedup_low", "speedup_high"} <= set(record.metric_keys())
    assert figures["speedup"] == pytest.approx(mean(units))
    assert 1.4 <= figures["speedup_low"] < figures["speedup"] < figures["speedup_high"] <= 1.9
    assert record.bootstrap("speedup", units, mean) == figures  # seeded: the same job gives the same interval
    assert record.bootstrap("x", [(2.0,)] * 5, mean) == {"x": 2.0, "x_low": 2.0, "x_high": 2.0}
    assert record.spread_text(1.5, 1.4, 1.9) == "1.50× [1.40, 1.90]"


def test_the_bootstrap_interval_covers_the_true_value_about_as_often_as_it_says():
    draw = random.Random(1)
    covered = 0
    for trial in range(100):
        units = [(draw.gauss(1.0, 0.2),) for _ in range(24)]
        figures = record.bootstrap("x", units, mean, seed=trial)
        covered += figures["x_low"] <= 1.0 <= figures["x_high"]
    assert 85 <= covered <= 100  # 95% nominal; the percentile bootstrap runs a little short at 24 units


def test_count_labels_name_sizes_as_papers_do():
    assert [record.count_label(n) for n in (6_911_616, 2_000_000, 574_400, 274_912, 16_000, 7.1e9, 999)] == [
        "6.9M", "2M", "574K", "275K", "16K", "7.1B", "999"]
