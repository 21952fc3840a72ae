"""W&B: one run per job, grouped per sweep, with the resolved config, summary metrics and a table of samples.
Every run is finished before the job returns, so the jobs of a multirun never share a run."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
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
        where = {"mode": run.settings.mode, "id": run.id, "dir": str(Path(run.dir).parent),
                 "project": run.project, "entity": cfg.logger.entity, "group": run.group}
    return where


def log_study(table: pd.DataFrame, sections: list[tuple[str, pd.DataFrame]], images: list[Path], out: Path) -> None:
    """When the jobs were logged to W&B, one more run in their group holds the study: its tables and plots, so
    the dashboard shows the study and not only per-job runs. Failures are reported, not raised."""
    if "wandb_mode" not in table:
        return
    logged = table[table["wandb_mode"].isin(["online", "offline"])]
    if logged.empty:
        return
    first = logged.iloc[0]
    try:
        import wandb

        group = none_if_nan(first.get("wandb_group")) or out.name
        with wandb.init(project=none_if_nan(first.get("wandb_project")) or "specsweep", group=group,
                        entity=none_if_nan(first.get("wandb_entity")), job_type="study", name="study", dir=out,
                        mode=first["wandb_mode"], reinit="create_new") as run:
            run.log({"results": wandb.Table(dataframe=table.astype(str))}
                    | {f"study/{heading}": wandb.Table(dataframe=frame.astype(str))
                       for heading, frame in sections if not frame.empty}
                    | {f"plots/{path.stem}": wandb.Image(str(path)) for path in images})
        log.info("study logged to W&B run %s (%s) in group %s", run.id, first["wandb_mode"], group)
    except Exception as error:  # W&B's own errors are many and version-dependent
        log.warning("W&B logging of the study failed; it is on disk only: %s", error)


def none_if_nan(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and value != value) else value
