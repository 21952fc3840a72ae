"""How the study writes its numbers in a table: figures with their confidence interval, parameter counts, MiB,
sampling temperatures, and a formatted table as markdown."""

from __future__ import annotations

from typing import Any

import pandas as pd

from specsweep import record

SPEEDUP = f"speedup [{record.CONFIDENCE:.0%} CI]"  # the heading of a speedup column that `interval` fills
# Leviathan et al. (2023) call temperature 0 "argmax" and write a temperature as T=1: the tables of
# `specsweep.study.pairs` use their words; the rest of the study says "greedy" and T=1.0.
LEVIATHAN_WORDS = {"zero": "argmax", "spec": "g"}


def sampling_label(temperature: Any, zero: str = "greedy", spec: str = "") -> str:
    """How a table names a sampling temperature: `zero` at 0, else "T=" and the temperature in the format `spec`
    ("" writes it as recorded)."""
    return zero if temperature == 0 else f"T={temperature:{spec}}"


def table_markdown(frame: pd.DataFrame) -> str:
    """As formatted here: tabulate would reparse "1.000" as a number and print 1."""
    return frame.to_markdown(index=False, disable_numparse=True) if not frame.empty else "(no finished cells)"


def interval(row: pd.Series, name: str = "speedup") -> str:
    if pd.isna(row.get(name)):
        return ""
    if pd.isna(row.get(f"{name}_low")):  # a published figure: no interval
        return f"{row[name]:.2f}×"
    return record.spread_text(row[name], row[f"{name}_low"], row[f"{name}_high"])


def scaling(row: pd.Series) -> str:
    target, draft = row.get("target_params"), row.get("draft_params")
    return f"{target / draft:.1f}×" if pd.notna(target) and pd.notna(draft) and draft else "—"


def params(count: Any) -> str:
    return "" if count is None or pd.isna(count) else record.count_label(float(count))


def mebibytes(frame: pd.DataFrame) -> pd.Series:
    """The method's extra memory (`extra_memory_bytes`) in MiB."""
    if "extra_memory_bytes" not in frame:
        return pd.Series("", index=frame.index)
    return number(frame.assign(mib=pd.to_numeric(frame["extra_memory_bytes"]) / 2**20), "mib", ".1f")


def number(frame: pd.DataFrame, column: str, spec: str) -> pd.Series:
    if column not in frame:
        return pd.Series("", index=frame.index)
    return frame[column].map(lambda v: "" if pd.isna(v) else format(v, spec))
