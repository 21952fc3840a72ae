"""W&B: one run per job, grouped per sweep, with the resolved config, summary metrics and a table of samples.
Every run is finished before the job returns, so the jobs of a multirun never share a run."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

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


def log_job(cfg: DictConfig, record: dict[str, Any], samples: list[dict[str, Any]], job_dir: Path
            ) -> dict[str, str] | None:
    """Log one finished job; return where the run went (its mode, id and directory), or None when off.
    A logging failure is reported, not raised: the measurement is on disk either way."""
    if cfg.logger.name == "none":
        return None
    try:
        return _log(cfg, record, samples, job_dir)
    except Exception as error:  # W&B's own errors are many and version-dependent
        log.warning("W&B logging failed, results are on disk only: %s", error)
        return {"error": f"{type(error).__name__}: {error}"}


def _log(cfg: DictConfig, record: dict[str, Any], samples: list[dict[str, Any]], job_dir: Path) -> dict[str, str]:
    import pandas as pd
    import wandb

    cell = record["cell"]
    name = "-".join(str(v) for v in (cell["method"], cell["draft"], cell["gamma"] and f"g{cell['gamma']}") if v)
    with wandb.init(
        project=cfg.logger.project, entity=cfg.logger.entity, group=cfg.logger.group or job_dir.parent.name,
        job_type=cell["method"], name=name, tags=list(cfg.logger.tags), dir=job_dir, mode=mode(cfg.logger.mode),
        config=record["config"], reinit="create_new",
    ) as run:
        run.summary.update(flat("", record["metrics"]) | flat("cell/", cell))
        table = pd.DataFrame(samples).drop(columns=["quality", "accepted_per_position"], errors="ignore")
        run.log({"samples": wandb.Table(dataframe=table.astype(str))})
        where = {"mode": run.settings.mode, "id": run.id, "dir": str(Path(run.dir).parent)}
    return where
