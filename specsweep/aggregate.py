"""Turn a sweep directory into one table: a row per cell, measured speedup beside Leviathan's prediction.

    python -m specsweep.aggregate outputs/multirun/<date>/<time>

The same function runs at the end of every multirun (AggregateCallback), and reads only the jobs' files on
disk, so it works on a sweep that crashed, was resumed, or ran on another machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from specsweep import results

log = logging.getLogger(__name__)
RESULTS_CSV = "results.csv"
CELL = ["method", "draft", "gamma", "model_family", "dataset", "optimization"]
COLUMNS = ["speedup", "speedup_min", "speedup_max", "predicted_speedup", "gamma_star", "alpha", "acceptance_rate",
           "tokens_per_round", "c", "ms_per_token", "baseline_ms_per_token", "exact_match", "rougeL", "pass_at_1"]


def launch_order(job_dir: Path) -> tuple[int, str]:
    """Job directories start with Hydra's job number ("3_draft=1.2M,gamma=7"): sort 2 before 10."""
    number = job_dir.name.split("_", 1)[0]
    return (int(number) if number.isdigit() else 1 << 30, job_dir.name)


def collect(sweep_dir: Path) -> pd.DataFrame:
    """One row per job directory: its cell, status and metrics; failed jobs keep their error."""
    rows: list[dict[str, Any]] = []
    for job_dir in sorted((p for p in Path(sweep_dir).iterdir() if p.is_dir()), key=launch_order):
        status = results.read_status(job_dir)
        if status is None:
            continue
        row: dict[str, Any] = {"job": job_dir.name, "status": status["status"], "same_as": status.get("same_as")}
        if status["status"] == "done":
            record = json.loads((job_dir / results.METRICS).read_text())
            row |= record["cell"] | {k: v for k, v in record["metrics"].items() if not isinstance(v, list)}
        else:
            row["error"] = status.get("error")
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(sweep_dir: Path) -> pd.DataFrame:
    """Write results.csv into the sweep directory and print the study table; return the table."""
    table = collect(sweep_dir)
    if table.empty:
        print(f"no jobs in {sweep_dir}")
        return table
    results.write_atomic(Path(sweep_dir) / RESULTS_CSV, table.to_csv(index=False))
    done = table[table["status"] == "done"]
    if "same_as" in done:
        done = done[done["same_as"].isna()]  # an identical cell is one row
    shown = done[[c for c in CELL + COLUMNS if c in done and done[c].notna().any()]]
    print(shown.to_markdown(index=False, floatfmt=".3f"))
    failed = table[table["status"] != "done"]
    for _, row in failed.iterrows():
        print(f"{row['job']}: {row['status']}: {row.get('error')}")
    print(f"{len(table) - len(failed)} of {len(table)} jobs done; table: {Path(sweep_dir) / RESULTS_CSV}")
    return table


class AggregateCallback(Callback):
    """Hydra calls this once a multirun ends. Jobs never raise (they record failures), so it always runs."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        table = summarize(Path(config.hydra.sweep.dir))
        if not table.empty and (table["status"] != "done").any():
            sys.exit(1)  # the sweep finished, but not every cell: the exit code says so


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Aggregate a sweep directory into results.csv and a table.")
    parser.add_argument("sweep_dir", type=Path)
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"sweep_dir={args.sweep_dir} is not a directory")
    summarize(args.sweep_dir)


if __name__ == "__main__":
    main()
