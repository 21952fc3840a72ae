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
                    | {f"plots/{path.stem}": wandb.Image(str(path)) for path in images}
                    | {f"charts/{title(labels)}": wandb.plot.line_series(*series, title=f"speedup · {title(labels)}",
                                                                       xname="γ")
                       for labels, frame in found if (series := speedup_series(frame))})
        log.info("study logged to W&B run %s (%s) in group %s", run.id, mode, group)
    except Exception as error:  # W&B's own errors are many and version-dependent
        log.warning("W&B logging of the study failed; it is on disk only: %s", error)


def speedup_series(frame: pd.DataFrame) -> tuple[list[int], list[list[float]], list[str]] | None:
    """A group's speedup against γ, one line per draft measured and (where the sweep was predicted) one per draft
    predicted, for `wandb.plot.line_series`: (γs, ys per line, line names); None when nothing was measured. A γ a
    line lacks is NaN."""
    done = frame[frame["status"].eq("done") & frame["gamma"].gt(0)]
    if done.empty:
        return None
    gammas = sorted(int(g) for g in frame["gamma"].dropna().unique() if g > 0)
    xs, ys, keys = gammas, [], []
    for draft, cells in frame.groupby("draft", sort=False):
        by_gamma = cells.set_index(cells["gamma"].astype(int))
        for column, kind, rows in (("speedup", "measured", done["draft"].eq(draft)),
                                   ("replay_speedup", "predicted", cells["gamma"].notna())):
            if column not in by_gamma or not rows.any() or by_gamma[column].isna().all():
                continue
            values = by_gamma[column].where(by_gamma["status"].eq("done")) if kind == "measured" \
                else by_gamma[column]
            ys.append([float(values.get(g, float("nan"))) for g in gammas])
            keys.append(f"{draft} {kind}")
    return xs, ys, keys

