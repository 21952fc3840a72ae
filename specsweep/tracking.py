"""W&B: one run per job, grouped per sweep, with the resolved config, summary metrics and a table of samples; a
failed job is a failed run with its error. A run's id comes from the sweep and the cell's key, so a job run again
resumes its run. Every run is finished before the job returns, so the jobs of a multirun never share a run.

The group, run id and table helpers here are also those of the study's run (`specsweep.study.dashboard`). wandb itself
is imported only where a run is made: this module imports neither torch nor the study."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from specsweep.record import MetricsRecord, Sample, Status, short_hash
from specsweep.schema import LoggerConfig

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


def wandb_group(sweep_dir: Path) -> str:
    """A sweep's W&B group: its directory's name and a short hash of its full path, so that sweeps of the same name
    (outputs/multirun/<date>/<time> on two days, two checkouts) never share a group."""
    return f"{sweep_dir.name}-{short_hash(str(sweep_dir.resolve()))}"


def wandb_run_id(group: str, name: str) -> str:
    """A run id that is the same for the same cell (`name`: its key, or "study") of the same group, so a job run
    again (killed after logging, resumed, retried after failing) resumes its run instead of adding one."""
    return short_hash(f"{group}/{name}", 16)


def wandb_table(frame: pd.DataFrame) -> Any:
    """A W&B table of `frame` that keeps numbers as numbers (NaN where missing), so the dashboard can sort and
    plot them; only text, lists and mixed columns become strings."""
    import wandb

    columns = {}
    for name, column in frame.items():
        if pd.api.types.is_bool_dtype(column):
            columns[name] = column
        elif pd.api.types.is_numeric_dtype(column):
            columns[name] = column.astype(float)
        else:
            columns[name] = column.map(lambda v: "" if none_if_nan(v) is None else str(v))
    return wandb.Table(dataframe=pd.DataFrame(columns, index=frame.index))


def none_if_nan(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and value != value) else value
