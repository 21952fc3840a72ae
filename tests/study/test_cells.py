"""Which cells the study compares: a group per method, another varying axis splits a group, and the same cell from
merged sweeps counts once."""

from __future__ import annotations

from specsweep.study import document, tables
from specsweep.study.cells import groups, measured_cells, title
from tests.study.rows import job, table


def test_mixed_methods_are_separate_groups():
    rows = [job(), job(gamma=5), job(method="prompt_lookup", draft=None, gamma=3, speedup=1.1),
            job(method="autoregressive", draft=None, gamma=None, speedup=1.0),
            job(method="autoregressive", draft=None, gamma=None, speedup=1.0) | {"job": "copy", "same_as": "x"}]
    found = {labels["method"]: tables.grid(frame) for labels, frame in groups(table(rows))}
    assert sorted(found) == ["autoregressive", "prompt_lookup", "speculative"]
    assert len(found["autoregressive"]) == 1  # the copy (same_as) is not a second row
    assert list(found["speculative"]["γ"]) == [3, 5]
    assert "nan" not in document.markdown(table(rows))


def test_another_varying_axis_splits_the_group_instead_of_dropping_jobs():
    rows = [job(**{"bench.max_new_tokens": n}) for n in (8, 16)]
    found = list(groups(table(rows)))
    assert len(found) == 2 and all(len(frame) == 1 for _, frame in found)
    assert title(found[1][0]).endswith("bench.max_new_tokens=16")


def test_the_same_cell_from_merged_sweeps_keeps_the_latest_finished_run():
    older = job(speedup=1.2) | {"sweep": "/a", "time": "2026-11-01T00:00:00+00:00"}
    newer = job(speedup=1.6) | {"sweep": "/b", "time": "2026-11-02T00:00:00+00:00"}
    failed = job(status="failed") | {"sweep": "/c", "time": "2026-11-03T00:00:00+00:00"}
    cells = measured_cells(table([newer, failed, older]))
    assert len(cells) == 1 and cells.iloc[0]["speedup"] == 1.6 and cells.iloc[0]["runs"] == 2
    other_machine = job(speedup=1.1) | {"sweep": "/d", "hardware": "gpu"}
    assert len(measured_cells(table([newer, other_machine]))) == 2
