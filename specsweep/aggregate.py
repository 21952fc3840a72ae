"""Turn sweep directories into the study: results.csv, study.md, plots/ and report.html.

    python -m specsweep.aggregate outputs/multirun/<date>/<time>             # written into that directory
    python -m specsweep.aggregate <sweep> <another sweep> --out <directory>  # merged

The same function runs at the end of every multirun (AggregateCallback). It reads only the jobs' files on disk,
so it works on a sweep that crashed, was resumed, or ran on another machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from specsweep import job, plots, report, results, study, tracking
from specsweep.schema import OptimizationConfig

log = logging.getLogger(__name__)
RESULTS_CSV, STUDY_MD, REPORT_HTML, PLOTS_DIR = "results.csv", "study.md", "report.html", "plots"
# Config keys that are not axes of a study: paths, switches of the run itself, and the family's whole draft map.
NOT_AXES = ("output_dir", "fail_fast", "logger.", "model_family.drafts.")
INTEGERS = ["gamma", "gamma_star", "draft_params", "target_params", "num_samples", "threads"]
STUDY_COLUMNS = ["sweep", "job", "status", "key", *study.GROUP, *study.CELL, "same_as", "error", "time",
                 "draft_params", "target_params", "speedup",
                 "speedup_min", "speedup_max", "predicted_speedup", "gamma_star", "alpha", "acceptance_rate", "c",
                 "ms_per_token", "baseline_ms_per_token", "exact_match"]


def collect(*sweep_dirs: Path) -> pd.DataFrame:
    """One tidy row per job of every sweep directory: its config axes, status, metrics and provenance.
    Jobs that failed, never finished, or left an unreadable metrics.json are rows too, with their status."""
    rows = []
    for sweep_dir in dict.fromkeys(Path(d).resolve() for d in sweep_dirs):  # a sweep named twice counts once
        jobs = [read_job(job_dir) for job_dir in job_dirs(sweep_dir)]
        rows += jobs + unlaunched(sweep_dir, jobs)
    table = pd.DataFrame(rows)
    # Columns the study reads exist even when no job wrote them (all failed, or written by an older version).
    table = table.reindex(columns=list(table.columns) + [c for c in STUDY_COLUMNS + INTEGERS if c not in table])
    for column in INTEGERS:
        table[column] = table[column].astype("Int64")  # not float because some rows lack it: gamma 3, not 3.0
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
    if status:
        row |= {k: status.get(k) for k in ("same_as", "key", "time")}
    if row["status"] == "done":
        try:
            return row | flatten(json.loads((job_dir / results.METRICS).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("%s is unreadable and left out of the study: %s", job_dir / results.METRICS, error)
            row |= {"status": "corrupt", "error": f"{job_dir / results.METRICS} is unreadable: {error}"}
    elif status:
        row["error"] = status.get("error")
    elif (job_dir / results.STATUS).exists():
        row["error"] = f"{job_dir / results.STATUS} is unreadable"
    else:
        row["error"] = "the job left no status (killed before it started?)"
    return row | axes_of(hydra_config(job_dir))


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in record["metrics"].items()}
    counts = {k: json.dumps(v) if isinstance(v, list) else v for k, v in record.get("counts", {}).items()
              if k not in metrics}  # rounds, drafted, accepted, rejections, new_tokens, ...: the brief's counts
    provenance = record.get("provenance", {})
    return (axes(record["config"]) | record["cell"] | metrics | counts | {"key": record.get("key")}
            | {f"{role}_params": count for role, count in record.get("params", {}).items()}
            | {"num_samples": record.get("num_samples"), "load_seconds": record.get("load_seconds"),
               "hardware": provenance.get("gpu") or provenance.get("cpu"), "threads": provenance.get("threads"),
               "git_commit": provenance.get("git_commit"), "git_dirty": provenance.get("git_dirty"),
               "time": provenance.get("time"),
               **{f"wandb_{k}": v for k, v in (record.get("wandb") or {}).items() if k != "dir"}})


def dotted(config: dict[str, Any]) -> dict[str, Any]:
    flat = pd.json_normalize(config, sep=".").iloc[0].to_dict()
    return {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in flat.items()}


# The schema's defaults of optimization.*: a setting label names only the switches that differ from them.
DEFAULT_SWITCHES = dotted({"optimization": dataclasses.asdict(OptimizationConfig(name="default"))})


def axes(config: dict[str, Any]) -> dict[str, Any]:
    """The resolved config as dotted columns (sampling.temperature, optimization.kv_cache, ...), and `setting`:
    the optimisation switches that differ from the defaults as one label, so each combination is its own
    study group."""
    flat = {k: v for k, v in dotted(config).items() if not any(k == skip or k.startswith(skip) for skip in NOT_AXES)}
    switches = {k.removeprefix("optimization."): v for k, v in flat.items()
                if k.startswith("optimization.") and k != "optimization.name" and v != DEFAULT_SWITCHES.get(k)}
    return flat | {"setting": ", ".join(f"{k}={v}" for k, v in sorted(switches.items())) or "default"}


def hydra_config(job_dir: Path) -> DictConfig | None:
    """The config Hydra saved before the job ran: the cell of a job that failed or never finished."""
    cfg = load_yaml(job_dir / ".hydra" / "config.yaml")
    if cfg is None:  # the row keeps its job name, which names its overrides
        log.warning("%s has no readable .hydra/config.yaml (missing, or not YAML)", job_dir)
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


def unlaunched(sweep_dir: Path, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with status `missing` for the cells of a draft x gamma sweep that have no job directory (a sweep
    killed before it launched them). The planned grid is read from the sweep's multirun.yaml; a sweep over
    other axes too is left alone (its cells would need Hydra's composition to name)."""
    planned = planned_sweep(sweep_dir)
    launched = [job_overrides(Path(job["sweep"]) / job["job"]) for job in jobs]
    if not planned or not set(planned) <= {"draft", "gamma"} or not jobs or None in launched:
        return []
    seen = {tuple(values.get(key, [None])[0] for key in planned) for values in launched}
    template = {k: v for k, v in jobs[0].items() if "." in k or k in study.GROUP or k in ("seed", "device")}
    rows = []
    for cell in itertools.product(*planned.values()):
        if cell not in seen:
            named = dict(zip(planned, cell, strict=True))
            label = ",".join(f"{key}={value}" for key, value in named.items())
            rows.append(template | {"sweep": str(sweep_dir), "job": f"(never launched) {label}", "status": "missing",
                                    "error": "the sweep ended before launching this job"}
                        | {key: int(value) if key == "gamma" else value for key, value in named.items()})
    return rows


def planned_sweep(sweep_dir: Path) -> dict[str, list[str]] | None:
    """The swept keys of a multirun and their values: the sweeper's params, then the command line's, which win."""
    saved = load_yaml(sweep_dir / "multirun.yaml")
    if saved is None:
        return None
    params = OmegaConf.select(saved, "hydra.sweeper.params") or {}
    task = OmegaConf.select(saved, "hydra.overrides.task") or []
    values = override_values([f"{k}={v}" for k, v in params.items()] + list(task))
    return {key: choices for key, choices in values.items() if len(choices) > 1}


def job_overrides(job_dir: Path) -> dict[str, list[str]] | None:
    """The overrides one job of a multirun ran with (one value each), from Hydra's .hydra/overrides.yaml."""
    saved = load_yaml(job_dir / ".hydra" / "overrides.yaml")
    return None if saved is None else override_values(list(saved))


def override_values(overrides: list[str]) -> dict[str, list[str]]:
    """key -> its values, by Hydra's own override parser ("gamma=1,3" -> ["1", "3"])."""
    values = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        values[override.get_key_element()] = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                                              else [override.get_value_element_as_str()])
    return values


def load_yaml(path: Path) -> Any:
    try:
        return OmegaConf.load(path)
    except Exception:  # missing or not YAML: the caller falls back
        return None


def summarize(sweep_dirs: list[Path], out: Path, tolerance: float = study.TOLERANCE) -> pd.DataFrame:
    """Write the study of `sweep_dirs` into `out`, print its tables, log it to W&B when the jobs were logged
    there, and return the tidy table."""
    table = collect(*sweep_dirs)
    if table.empty:
        print(f"no jobs in {', '.join(map(str, sweep_dirs))}")
        return table
    out.mkdir(parents=True, exist_ok=True)
    results.write_atomic(out / RESULTS_CSV, table.to_csv(index=False))
    sections = study.sections(table, tolerance)
    results.write_atomic(out / STUDY_MD, study.render_markdown(sections, tolerance))
    images = plots.save(table, out / PLOTS_DIR, tolerance)
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
