"""Small tidy tables shaped like `aggregate.collect`'s, for the study's unit tests."""

from __future__ import annotations

import pandas as pd

from specsweep.study import aggregate, cells, tables


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
    ((_, frame),) = list(cells.groups(table(rows)))
    return tables.grid(frame)
