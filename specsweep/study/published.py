"""Published results as rows of the study's tidy table, so a paper's table gets the same grid, prediction and
diagnosis as a sweep of ours, and can be set beside one.

A published CSV has the columns `draft`, `gamma`, `speedup`, and `alpha` or `acceptance_rate` (what the paper
calls its acceptance; Leviathan et al.'s α when it is the per-token MLE); a value the paper did not publish is left
blank. Optional: `c`, `draft_params`, `target`, `method`, `dataset`, `temperature` (default 0: greedy), `setting`
(what tells rows of one draft and γ apart, e.g. the optimisations), `note` (the citation and the machine), and any
other metric of the results schema (`target_params`, `reference_speedup`, `rouge1`, `baseline_rouge1`, `pass_at_1`,
...) or config axis (`optimization.kv_cache`, ...), under its own name."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from specsweep import record, theory
from specsweep.errors import ConfigError
from specsweep.study.cells import PUBLISHED
from specsweep.study.predict import predict

REQUIRED = ("draft", "gamma", "speedup")
OPTIONAL = ("alpha", "acceptance_rate", "c", "draft_params", "target", "method", "dataset", "temperature", "setting",
            "note")
# Taken as they are: what a paper published under the name our results schema gives it.
AS_IS = ("target_params", *record.metric_keys())


def known(column: str) -> bool:
    return column in REQUIRED or column in OPTIONAL or column in AS_IS or column.startswith("optimization.")


def read(path: Path) -> pd.DataFrame:
    """The published table at `path` as study rows (status done, setting "published")."""
    try:
        table = pd.read_csv(path, dtype={"draft": str})
    except (OSError, ValueError) as error:
        raise ConfigError(f"--published {path} could not be read as CSV ({error}).") from None
    missing = [c for c in REQUIRED if c not in table] + ([] if {"alpha", "acceptance_rate"} & set(table)
                                                         else ["alpha or acceptance_rate"])
    unknown = sorted(column for column in table if not known(column))
    if missing or unknown:
        raise ConfigError(f"--published {path} lacks {', '.join(missing) or 'nothing'} and has unknown columns "
                          f"{', '.join(unknown) or 'none'}; its columns must be {', '.join(REQUIRED)}, alpha or "
                          f"acceptance_rate, and optionally {', '.join(OPTIONAL[2:])}, a metric of the results "
                          f"schema or an optimization.* axis.")
    rows = []
    for i, row in table.iterrows():
        alpha = row.get("alpha") if pd.notna(row.get("alpha")) else row.get("acceptance_rate")
        gamma, c = row["gamma"], row.get("c")  # gamma blank: the paper did not say
        predicted = predict(alpha, gamma, c)
        label = f"γ={int(gamma)}" if pd.notna(gamma) else "γ unpublished"
        draft = str(row["draft"]) if pd.notna(row["draft"]) else None  # None: a method without a draft
        rows.append({column: row[column] for column in table if column in AS_IS or column.startswith("optimization.")}
                    | {
            "sweep": str(path), "job": f"published {draft or 'no draft'} {label}", "status": "done",
            "key": f"{PUBLISHED}{path}:{i}", "same_as": None, "time": None,
            "model_family": text(row, "target", "published"), "dataset": text(row, "dataset", "—"),
            "method": text(row, "method", "speculative"), "setting": text(row, "setting", "published"),
            "sampling.temperature": float(row["temperature"]) if pd.notna(row.get("temperature")) else 0.0,
            "hardware": text(row, "note", str(path)), "draft": draft,
            "gamma": int(gamma) if pd.notna(gamma) else None, "draft_params": row.get("draft_params"),
            "speedup": row["speedup"], "alpha": alpha, "acceptance_rate": row.get("acceptance_rate"), "c": c,
            "predicted_speedup": predicted,
            "gamma_star": theory.gamma_star(alpha, c) if pd.notna(predicted) else None,
        })
    return pd.DataFrame(rows)


def text(row: pd.Series, column: str, default: str) -> str:
    value = row.get(column)
    return default if value is None or pd.isna(value) else str(value)
