"""W&B: one run per job, grouped per sweep, with the resolved config, summary metrics and a table of samples.
Every run is finished before the job returns, so the jobs of a multirun never share a run."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from specsweep.record import MetricsRecord, Sample
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
    import wandb

    cell = record["cell"]
    with wandb.init(
        project=logger.project, entity=logger.entity, group=logger.group or job_dir.parent.name,
        job_type=cell["method"], name=name, tags=list(logger.tags), dir=job_dir, mode=mode(logger.mode),
        config=record["config"], reinit="create_new",
    ) as run:
        run.summary.update(flat("", record["metrics"]) | flat("cell/", cell))
        table = pd.DataFrame(samples).drop(columns=["quality", "accepted_per_position"], errors="ignore")
        quality = pd.DataFrame([sample["quality"] for sample in samples], index=table.index)
        run.log({"samples": wandb_table(table.join(quality))})
        where = {"mode": run.settings.mode, "id": run.id, "dir": str(Path(run.dir).parent),
                 "project": run.project, "entity": logger.entity, "group": run.group}
    return where
