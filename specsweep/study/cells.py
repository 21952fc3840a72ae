"""Selecting and grouping the study's cells in the tidy table of `specsweep.study.aggregate.collect` (one row per
job). A study *group* is everything a speedup is comparable within: one target (model family), dataset, method,
optimisation setting, sampling temperature and machine; a *cell* is a (draft, gamma) inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from specsweep.study.format import sampling_label

GROUP = ["model_family", "dataset", "method", "setting", "sampling.temperature", "hardware"]
CELL = ["draft", "gamma"]
NO_DRAFT, NO_LOOKAHEAD = "—", 0  # the draft and gamma of a method that has none (Liu et al. 2024 write K = 0)
PUBLISHED = "published:"  # the identity key of a published row starts with this (`specsweep.study.published`)


def measured_cells(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and machine. Jobs that copy another (`same_as`) are dropped; where merged sweeps
    measured the same cell (the job's identity key) on the same machine more than once, the latest finished
    run is kept and `runs` counts the finished ones."""
    rows = table[table["same_as"].isna()].copy()
    rows["draft"] = rows["draft"].astype(object).where(rows["draft"].notna(), NO_DRAFT)
    rows["gamma"] = rows["gamma"].fillna(NO_LOOKAHEAD).astype(int)
    job = rows["sweep"].astype(str) + "/" + rows["job"].astype(str)  # for a job that never got an identity key
    identity = rows["key"].astype(object).where(rows["key"].notna(), job)
    rows = rows.assign(_identity=identity, _done=rows["status"].eq("done"))
    rows["runs"] = rows.groupby(["_identity", "hardware"], dropna=False)["_done"].transform("sum").astype(int)
    rows = rows.sort_values(["_done", "time"], na_position="first", kind="stable")
    return rows.drop_duplicates(["_identity", "hardware"], keep="last").drop(columns=["_identity", "_done"])


def axis_columns(frame: pd.DataFrame) -> list[str]:
    """The config axes of the tidy table: dotted config keys (sampling.temperature, ...), seed and device."""
    return [c for c in frame.columns if "." in c or c in ("seed", "device")]


def groups(table: pd.DataFrame, group: list[str] = GROUP, free: tuple[str, ...] = ()
           ) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """(the group's labels, its cells) for each study group: `group`, and any other config axis that takes more
    than one value inside it (bench.max_new_tokens, a second target of the same family name, ...), so a
    group never holds two runs of one (draft, gamma). Axes that start with a prefix in `free` may vary inside it."""
    cells = measured_cells(table)
    keys = [c for c in group if c in cells]
    for labels, frame in cells.groupby(keys, dropna=False, sort=True):
        labels = dict(zip(keys, labels, strict=True))
        varying = [c for c in axis_columns(frame)
                   if c not in keys and not c.startswith(free) and frame[c].nunique() > 1]
        if not varying:
            yield labels, frame
            continue
        for more, part in frame.groupby(varying, dropna=False, sort=True):
            yield labels | dict(zip(varying, more, strict=True)), part


def title(labels: dict[str, Any]) -> str:
    shown = [labels.get("model_family"), labels.get("dataset"), labels.get("method"), labels.get("setting"),
             sampling_label(labels.get("sampling.temperature")), labels.get("hardware")]
    shown = [label for key, label in zip(GROUP, shown, strict=True) if key in labels]  # a table grouped by fewer
    shown += [f"{key}={value}" for key, value in labels.items() if key not in GROUP]
    return " · ".join(str(label) for label in shown)


def ordered_drafts(frame: pd.DataFrame) -> list[Any]:
    """Drafts from smallest to largest (by parameter count when known)."""
    sizes = frame.groupby("draft", dropna=False)["draft_params"].max() if "draft_params" in frame else None
    drafts = list(frame["draft"].drop_duplicates())
    return sorted(drafts, key=lambda d: (sizes is None or pd.isna(sizes.get(d)), 0 if sizes is None
                                         else sizes.get(d, 0), str(d)))
