"""W&B: one run per job, grouped per sweep, with the resolved config, summary metrics and a table of samples; a
failed job is a failed run with its error. A run's id comes from the sweep and the cell's key, so a job run again
resumes its run. Every run is finished before the job returns, so the jobs of a multirun never share a run."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from specsweep.record import MetricsRecord, Sample, Status, wandb_group, wandb_run_id
from specsweep.schema import LoggerConfig
from specsweep.study.dashboard import wandb_table

log = logging.getLogger(__name__)


def mode(requested: str | None) -> str:
    """The logger's `mode` if set, else $WANDB_MODE, else online when logged in, else offline."""
    if requested:
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    import wandb

    return "online" if wandb.login(prompt=False, verify=False) else "offline"


def flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    """Scalars only, W&B-style keys: {"metrics": {"alpha": 0.8}} -> {"metrics/alpha": 0.8}."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= flat(f"{prefix}{key}/", value)
        elif isinstance(value, int | float | str | bool) or value is None:
            out[f"{prefix}{key}"] = value
    return out


def log_job(logger: LoggerConfig, name: str, record: MetricsRecord, samples: list[Sample], job_dir: Path
            ) -> dict[str, str] | None:
    """Log one finished job as the run `name`; return where the run went (its mode, id and directory), or None
    when off. A logging failure is reported, not raised: the measurement is on disk either way."""
    if logger.name == "none":
        return None
    try:
        return _log(logger, name, record, samples, job_dir)
    except Exception as error:  # W&B's own errors are many and version-dependent
        log.warning("W&B logging failed, results are on disk only: %s", error)
        return {"error": f"{type(error).__name__}: {error}"}


def _log(logger: LoggerConfig, name: str, record: MetricsRecord, samples: list[Sample], job_dir: Path
         ) -> dict[str, str]:
    with _init(logger, name, record["key"], record["cell"], job_dir, record["config"]) as run:
        run.summary.update(flat("", record["metrics"]) | flat("cell/", record["cell"]))
        table = pd.DataFrame(samples).drop(columns=["quality", "accepted_per_position"], errors="ignore")
        quality = pd.DataFrame([sample["quality"] for sample in samples], index=table.index)
        run.log({"samples": wandb_table(table.join(quality))})
        where = {"mode": run.settings.mode, "id": run.id, "dir": str(Path(run.dir).parent),
                 "project": run.project, "entity": logger.entity, "group": run.group}
    return where


def log_failure(logger: LoggerConfig, name: str, status: Status, job_dir: Path, config: dict[str, Any]) -> None:
    """The failed job as a failed run (exit code 1) with its error in the summary. Reported, never raised."""
    if logger.name == "none":
        return
    try:
        run = _init(logger, name, status["key"], status["cell"], job_dir, config)
        run.summary.update({"status": "failed", "error": status["error"]} | flat("cell/", status["cell"]))
        run.finish(exit_code=1)
    except Exception as error:  # W&B's own errors are many and version-dependent
        log.warning("W&B logging of the failure failed; it is on disk only: %s", error)


def _init(logger: LoggerConfig, name: str, key: str, cell: dict[str, Any], job_dir: Path, config: dict[str, Any]):
    import wandb

    group = logger.group or wandb_group(job_dir.parent)
    return wandb.init(project=logger.project, entity=logger.entity, group=group, job_type=cell["method"], name=name,
                      id=wandb_run_id(group, key), resume="allow", tags=list(logger.tags), dir=job_dir,
                      mode=mode(logger.mode), config=config, reinit="create_new")
