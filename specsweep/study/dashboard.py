"""The study as a W&B run: when the jobs of a sweep were logged to W&B, one more run in their group holds the
study's tables and plots, so the dashboard shows the study and not only per-job runs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from specsweep.study import tables
from specsweep.study.cells import groups, title
from specsweep.tracking import none_if_nan, wandb_group, wandb_run_id, wandb_table

log = logging.getLogger(__name__)


def log_study(table: pd.DataFrame, images: list[Path], out: Path) -> None:
    """When the jobs were logged to W&B, one more run in their group holds the study: the tidy table, the optimum
    and each group's cells as numeric tables (the dashboard sorts and plots them; study.md and report.html hold
    the formatted ones), and the plots. Failures are reported, not raised."""
    if "wandb_mode" not in table:
        return
    logged = table[table["wandb_mode"].isin(["online", "offline"])]
    if logged.empty:
        return
    first = logged.iloc[0]
    mode = os.environ.get("WANDB_MODE") or first["wandb_mode"]  # as for a job: $WANDB_MODE wins where it is set
    if mode == "disabled":
        return
    try:
        import wandb

        group = none_if_nan(first.get("wandb_group")) or wandb_group(out)
        # One study run per group: aggregating the sweep again updates it (resumes it) instead of adding one.
        with wandb.init(project=none_if_nan(first.get("wandb_project")) or "specsweep", group=group,
                        entity=none_if_nan(first.get("wandb_entity")), job_type="study", name="study", dir=out,
                        id=wandb_run_id(group, "study"), resume="allow", mode=mode,
                        reinit="create_new") as run:
            found = list(groups(table))
            run.log({"results": wandb_table(table), "optimum": wandb_table(tables.best_rows(found))}
                    | {f"study/{title(labels)}": wandb_table(tables.values(frame)) for labels, frame in found}
                    | {f"plots/{path.stem}": wandb.Image(str(path)) for path in images})
        log.info("study logged to W&B run %s (%s) in group %s", run.id, mode, group)
    except Exception as error:  # W&B's own errors are many and version-dependent
        log.warning("W&B logging of the study failed; it is on disk only: %s", error)
