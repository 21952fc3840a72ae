"""Two views of a sweep across its drafts: α per (target, draft) in the shape of Leviathan et al.'s (2023) α table,
with the paper's values for the same kind of draft beside ours, and each adaptive-lookahead cell beside the best
fixed γ of the same draft."""

from __future__ import annotations

from typing import Any

import pandas as pd

from specsweep.study.cells import GROUP, NO_DRAFT, PUBLISHED, measured_cells, ordered_drafts
from specsweep.study.format import LEVIATHAN_WORDS, SPEEDUP, interval, number, params, sampling_label

NGRAMS = ("unigram", "bigram")
MEDUSA = "medusa"  # the method whose drafts come from heads on the target
HEADS = "Medusa heads"
KINDS = (*NGRAMS, "transformer", HEADS)  # the α table's order: Leviathan et al.'s, then heads on the target
# How a cell's lookahead adapts, by the method options that make it (0, "constant" or absent: a fixed γ).
ADAPTIVE = {"method.options.stop_below": 0.0, "method.options.schedule": "constant",
            "method.options.confidence_threshold": 0.0}


def kind(draft: Any, method: Any) -> str:
    """What drafts: an n-gram table, Medusa heads, or a smaller transformer (any other named draft)."""
    if method == MEDUSA:
        return HEADS
    name = str(draft).lower()
    return name if name in NGRAMS else "transformer"


def alpha_table(table: pd.DataFrame) -> pd.DataFrame:
    """Leviathan et al.'s table 3 (M_p, M_q, sampling, α) for a sweep with n-gram or Medusa drafts: a row per
    (target, draft, sampling), α at the draft's smallest γ measured (α does not depend on γ for a draft that
    conditions on its earlier drafts), with τ, and the paper's α for the same kind of draft at the same sampling
    (its range over the pairs it measured). Empty when no cell drafts with an n-gram or Medusa heads."""
    cells = measured_cells(table)
    cells = cells[cells["status"].eq("done") & cells["alpha"].notna()].copy()
    if cells.empty:
        return pd.DataFrame()
    cells["kind"] = [kind(d, m) for d, m in zip(cells["draft"], cells["method"], strict=True)]
    published = cells["key"].astype(str).str.startswith(PUBLISHED)
    ours, theirs = cells[~published], cells[published]
    # A pair the paper published in two tables counts once; rows at c = 0 are its expected-speed table, not a pair.
    theirs = theirs[theirs["c"].ne(0)].drop_duplicates(["model_family", "dataset", "draft", "sampling.temperature"])
    if not ours["kind"].isin([*NGRAMS, HEADS]).any():
        return pd.DataFrame()
    rows = []
    for (family, temperature), group in ours.groupby(["model_family", "sampling.temperature"], sort=True):
        group = group.sort_values("gamma", kind="stable").drop_duplicates(["method", "draft"])
        order = {d: i for i, d in enumerate(ordered_drafts(group[group["draft"] != NO_DRAFT]))}
        rank = [(KINDS.index(k), order.get(d, 0))
                for k, d in zip(group["kind"], group["draft"], strict=True)]
        group = group.assign(_rank=rank).sort_values("_rank", kind="stable")
        for _, row in group.iterrows():
            same = theirs[theirs["kind"].eq(row["kind"]) & theirs["sampling.temperature"].eq(temperature)]
            rows.append({
                "M_p": f"{family} ({params(row.get('target_params'))})",
                "M_q": m_q(row), "sampling": sampling_label(temperature, **LEVIATHAN_WORDS), "γ": int(row["gamma"]),
                "α": f"{row['alpha']:.3f}", "τ": f"{row['tokens_per_round']:.2f}",
                "α, published (same kind)": published_range(same),
            })
    return pd.DataFrame(rows)


def m_q(row: pd.Series) -> str:
    """The draft as the α table names it: a transformer by its size name, an n-gram or the heads by kind and size."""
    if row["kind"] == "transformer":
        return str(row["draft"])
    count = row.get("heads_params" if row["kind"] == HEADS else "draft_params")
    return row["kind"] if pd.isna(count) else f"{row['kind']} ({params(count)})"


def published_range(rows: pd.DataFrame) -> str:
    """The paper's α for this kind of draft: each target's where there are a few ("GPT-LIKE (97M) 0.03, T5-XXL ENDE
    0.08"), else the range over the pairs ("0.53–0.89 over 16 pairs")."""
    if rows.empty:
        return ""
    if len(rows) <= 3:
        return ", ".join(f"{target}{'' if dataset == '—' else f' {dataset}'} {alpha:.2f}" for target, dataset, alpha
                         in zip(rows["model_family"], rows["dataset"], rows["alpha"], strict=True))
    return f"{rows['alpha'].min():.2f}–{rows['alpha'].max():.2f} over {len(rows)} pairs"


def adaptive(row: pd.Series) -> str:
    """The options that make a cell's lookahead adaptive, as a label ("stop_below=0.5"); "" for a fixed γ."""
    return ", ".join(f"{name.rsplit('.', 1)[-1]}={row[name]}" for name, fixed in ADAPTIVE.items()
                     if name in row and pd.notna(row[name]) and row[name] != fixed)


def adaptive_table(table: pd.DataFrame) -> pd.DataFrame:
    """Each adaptive cell beside the fastest fixed-γ cell of the same draft, method and group in the same sweep,
    with both speedups' intervals and the mean drafts per round; "tied" where the intervals overlap."""
    cells = measured_cells(table)
    cells = cells[cells["status"].eq("done") & ~cells["key"].astype(str).str.startswith(PUBLISHED)].copy()
    if cells.empty:
        return pd.DataFrame()
    # A rule that stops drafting early changes nothing where a round drafts one token at most.
    cells["adaptive"] = cells.apply(adaptive, axis=1).where(cells["gamma"] > 1, "")
    if not cells["adaptive"].astype(bool).any():
        return pd.DataFrame()
    keys = [c for c in [*GROUP, "draft"] if c in cells]
    rows = []
    for _, row in cells[cells["adaptive"].astype(bool)].iterrows():
        same = (cells[keys].eq(row[keys]) | (cells[keys].isna() & row[keys].isna())).all(axis=1)
        fixed = cells[same & ~cells["adaptive"].astype(bool)].sort_values("speedup", ascending=False)
        best = fixed.iloc[0] if not fixed.empty else None
        rows.append({
            "method": row["method"], "draft": row["draft"],
            "temperature": sampling_label(row["sampling.temperature"], **LEVIATHAN_WORDS),
            "adaptive": row["adaptive"], "γ max": int(row["gamma"]),
            "drafts/round": f"{row['drafts_per_round']:.2f}", "α": f"{row['alpha']:.3f}",
            SPEEDUP: interval(row),
            "best fixed γ": "" if best is None else int(best["gamma"]),
            "its drafts/round": "" if best is None else number(best.to_frame().T, "drafts_per_round", ".2f").iloc[0],
            f"its {SPEEDUP}": "" if best is None else interval(best),
            "verdict": "" if best is None else verdict(row, best),
        })
    return pd.DataFrame(rows)


def verdict(row: pd.Series, best: pd.Series) -> str:
    if row["speedup_low"] > best["speedup_high"]:
        return "faster"
    if row["speedup_high"] < best["speedup_low"]:
        return "slower"
    return "tied (intervals overlap)"
