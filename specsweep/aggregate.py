"""Turn sweep directories into the study: results.csv, study.md, plots/ and report.html.

    python -m specsweep.aggregate outputs/multirun/<date>/<time>             # written into that directory
    python -m specsweep.aggregate <sweep> <another sweep> --out <directory>  # merged

The same function runs at the end of every multirun (AggregateCallback). It reads only the jobs' files on disk,
so it works on a sweep that crashed, was resumed, or ran on another machine.
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
from omegaconf import DictConfig, OmegaConf

from specsweep import job, plots, report, results, study, tracking

log = logging.getLogger(__name__)
RESULTS_CSV, STUDY_MD, REPORT_HTML, PLOTS_DIR = "results.csv", "study.md", "report.html", "plots"
# Config keys that are not axes of a study: paths, switches of the run itself, and the family's whole draft map.
NOT_AXES = ("output_dir", "fail_fast", "logger.", "model_family.drafts.")
STUDY_COLUMNS = [*study.GROUP, *study.CELL, "same_as", "error", "time", "draft_params", "target_params", "speedup",
                 "speedup_min", "speedup_max", "predicted_speedup", "gamma_star", "alpha", "acceptance_rate", "c",
                 "ms_per_token", "baseline_ms_per_token", "exact_match"]


def collect(*sweep_dirs: Path) -> pd.DataFrame:
    """One tidy row per job of every sweep directory: its config axes, status, metrics and provenance.
    Jobs that failed, never finished, or left an unreadable metrics.json are rows too, with their status."""
    rows = [read_job(job_dir) for sweep_dir in sweep_dirs for job_dir in job_dirs(Path(sweep_dir))]
    table = pd.DataFrame(rows)
    # Columns the study reads exist even when no job wrote them (all failed, or written by an older version).
    table = table.reindex(columns=list(table.columns) + [c for c in STUDY_COLUMNS if c not in table])
    if not table.empty:
        # A job that failed measured nothing, but it belongs to its sweep's machine, so to the same study group.
        table["hardware"] = table.groupby("sweep")["hardware"].transform(
            lambda machine: machine.fillna(machine.mode().iloc[0]) if machine.notna().any() else machine)
    return table


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The directories Hydra made for jobs (they hold .hydra/) or that hold a job status, in launch order."""
    found = [p for p in sweep_dir.iterdir()
             if p.is_dir() and ((p / ".hydra").is_dir() or (p / results.STATUS).exists())]
    return sorted(found, key=launch_order)


def launch_order(job_dir: Path) -> tuple[int, str]:
    """Job directories start with Hydra's job number ("3_draft=1.2M,gamma=7"): sort 2 before 10."""
    number = job_dir.name.split("_", 1)[0]
    return (int(number) if number.isdigit() else 1 << 30, job_dir.name)


def read_job(job_dir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"sweep": str(job_dir.parent), "job": job_dir.name}
    status = results.read_status(job_dir)
    row["status"] = status["status"] if status else "missing"
    row["same_as"] = status.get("same_as") if status else None
    if row["status"] == "done":
        try:
            return row | flatten(json.loads((job_dir / results.METRICS).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("%s is unreadable and left out of the study: %s", job_dir / results.METRICS, error)
            row |= {"status": "corrupt", "error": f"{job_dir / results.METRICS} is unreadable: {error}"}
    else:
        row["error"] = status.get("error") if status else "the job left no status (killed before it started?)"
    return row | axes_of(hydra_config(job_dir))


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: v for k, v in record["metrics"].items() if not isinstance(v, list | dict)}
    provenance = record.get("provenance", {})
    return (axes(record["config"]) | record["cell"] | metrics
            | {f"{role}_params": count for role, count in record.get("params", {}).items()}
            | {"num_samples": record.get("num_samples"), "load_seconds": record.get("load_seconds"),
               "hardware": provenance.get("gpu") or provenance.get("cpu"), "threads": provenance.get("threads"),
               "git_commit": provenance.get("git_commit"), "time": provenance.get("time"),
               **{f"wandb_{k}": v for k, v in (record.get("wandb") or {}).items() if k != "dir"}})


def axes(config: dict[str, Any]) -> dict[str, Any]:
    """The resolved config as dotted columns (sampling.temperature, optimization.kv_cache, ...), and `setting`:
    the optimisation switches as one label, so each combination is its own study group."""
    flat = pd.json_normalize(config, sep=".").iloc[0].to_dict()
    flat = {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in flat.items()
            if not any(k == skip or k.startswith(skip) for skip in NOT_AXES)}
    switches = {k.removeprefix("optimization."): v for k, v in flat.items()
                if k.startswith("optimization.") and k != "optimization.name"}
    return flat | {"setting": ", ".join(f"{k}={v}" for k, v in sorted(switches.items())) or "default"}


def hydra_config(job_dir: Path) -> DictConfig | None:
    """The config Hydra saved before the job ran: the cell of a job that failed or never finished."""
    try:
        cfg = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
    except (OSError, ValueError):
        return None
    cfg.output_dir = str(job_dir)  # was ${hydra:...}, which only resolves inside Hydra
    return cfg


def axes_of(cfg: DictConfig | None) -> dict[str, Any]:
    if cfg is None:
        return {}
    try:
        return axes(OmegaConf.to_container(cfg, resolve=True)) | job.cell(cfg)
    except Exception as error:  # a config that failed for being wrong may not resolve either
        log.warning("the config of %s does not resolve: %s", cfg.output_dir, error)
        return {}


def summarize(sweep_dirs: list[Path], out: Path, tolerance: float = study.TOLERANCE) -> pd.DataFrame:
    """Write the study of `sweep_dirs` into `out`, print its tables, log it to W&B when the jobs were logged
    there, and return the tidy table."""
    table = collect(*sweep_dirs)
    if table.empty:
        print(f"no jobs in {', '.join(map(str, sweep_dirs))}")
        return table
    out.mkdir(parents=True, exist_ok=True)
    results.write_atomic(out / RESULTS_CSV, table.to_csv(index=False))
    results.write_atomic(out / STUDY_MD, study.markdown(table, tolerance))
    sections = study.sections(table, tolerance)
    images = plots.save(table, out / PLOTS_DIR)
    done = int(table["status"].eq("done").sum())
    line = f"{done} of {len(table)} jobs done"
    results.write_atomic(out / REPORT_HTML, report.render(sections, images, sweep_dirs, study.note(tolerance), line))
    tracking.log_study(table, sections, images, out)

    for heading, frame in sections:
        print(f"\n## {heading}\n\n{study.table_markdown(frame)}")
    print(f"\n{line}; table: {out / RESULTS_CSV}; study: {out / STUDY_MD}; report: {out / REPORT_HTML}")
    return table


class AggregateCallback(Callback):
    """Hydra calls this once a multirun ends. Jobs never raise (they record failures), so it always runs."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            table = summarize([sweep_dir], sweep_dir)
        except Exception:  # Hydra turns a callback's exception into a warning and exits 0: say it, and exit 1
            log.exception("aggregating %s failed; the jobs' results are on disk, retry with "
                          "python -m specsweep.aggregate %s", sweep_dir, sweep_dir)
            sys.exit(1)
        if not table.empty and (table["status"] != "done").any():
            sys.exit(1)  # the sweep finished, but not every cell: the exit code says so


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Aggregate sweep directories into results.csv, study.md, plots "
                                                 "and report.html.")
    parser.add_argument("sweep_dirs", type=Path, nargs="+", help="one or more sweep directories (merged)")
    parser.add_argument("--out", type=Path, help="where to write (default: the sweep directory, if only one)")
    parser.add_argument("--tolerance", type=float, default=study.TOLERANCE,
                        help="flag cells whose measured/predicted speedup is outside 1 +- this (default %(default)s)")
    args = parser.parse_args(argv)
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            parser.error(f"sweep_dirs: {sweep_dir} is not a directory.")
    if args.out is None and len(args.sweep_dirs) > 1:
        parser.error(f"--out is required when merging {len(args.sweep_dirs)} sweeps; name a directory for the "
                     f"merged study.")
    if not 0 < args.tolerance < 1:
        parser.error(f"--tolerance={args.tolerance} is invalid; it must be between 0 and 1.")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    table = summarize(args.sweep_dirs, args.out or args.sweep_dirs[0], args.tolerance)
    if table.empty or (table["status"] != "done").any():
        sys.exit(1)


if __name__ == "__main__":
    main()
