"""What the study predicts for a cell: Leviathan et al.'s (2023) speedup S from its measured α and c, S_v with the
verification priced at its measured cost, the pair's α prediction, and the curves at every γ."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from specsweep import theory
from specsweep.study.cells import ordered_drafts
from specsweep.study.diagnose import alpha_noise


def ratio(frame: pd.DataFrame, predicted: str = "predicted_speedup") -> pd.Series:
    """Measured over predicted speedup."""
    if predicted not in frame or "speedup" not in frame:
        return pd.Series(float("nan"), index=frame.index)
    return frame["speedup"] / frame[predicted]


def predict(alpha: Any, gamma: Any, c: Any, verify_cost: Any = 1.0) -> float:
    """Leviathan et al.'s S (`theory.predicted_speedup`), NaN where an input is unknown or there is no lookahead."""
    if any(pd.isna(value) for value in (alpha, gamma, c, verify_cost)) or gamma <= 0:
        return float("nan")
    return theory.predicted_speedup(alpha, int(gamma), c, verify_cost)


def verify_priced(frame: pd.DataFrame) -> pd.Series:
    """S_v: Leviathan's S with the verification priced at its measured cost (a (γ+1)-token forward costs
    `verify_cost` one-token steps, not one), the prediction that fits the machine that measured c."""
    if "verify_cost" not in frame:
        return pd.Series(float("nan"), index=frame.index)
    return pd.Series([predict(row.get("alpha"), row.get("gamma"), row.get("c"), row["verify_cost"])
                      for _, row in frame.iterrows()], index=frame.index, dtype=float)


def pair_prediction(frame: pd.DataFrame) -> pd.DataFrame:
    """Per row: the pair's α (its draft's α at the smallest γ measured), how far α can move by chance, and
    Leviathan's S and best γ from the pair's α and the row's c."""
    measured = frame[frame["alpha"].notna()].sort_values("gamma", kind="stable")
    firsts = {draft: row for draft, row in measured.drop_duplicates("draft").set_index("draft").iterrows()}
    unknown = {"alpha": float("nan"), "noise": float("nan"), "first_gamma": None, "predicted": float("nan"),
               "gamma_star": float("nan")}
    rows = []
    for _, row in frame.iterrows():
        first = firsts.get(row["draft"])
        if first is None:
            rows.append(unknown)
            continue
        predicted = predict(first["alpha"], row.get("gamma"), row.get("c"))
        best = theory.gamma_star(first["alpha"], row["c"]) if pd.notna(predicted) else float("nan")
        rows.append({"alpha": first["alpha"], "noise": max(alpha_noise(first), alpha_noise(row)),
                     "first_gamma": first["gamma"], "predicted": predicted, "gamma_star": best})
    return pd.DataFrame(rows, index=frame.index)


def curves(frame: pd.DataFrame) -> pd.DataFrame:
    """The prediction for every draft of a group at every γ in 1..7, measured or not: from the draft's pair α (its
    α at its smallest γ), its median c, and the verification cost of a (γ+1)-token forward, a property of the target:
    the group's median at each measured γ, interpolated between them and held beyond them (it grows, then levels
    off, as the forward stops being bound by reading the weights); S where none was measured (a published table). A row
    per (draft, γ): alpha, c, verify_cost, predicted, and `best` on the group's predicted optimum."""
    done = frame[frame["status"].eq("done") & frame["alpha"].notna() & frame["c"].notna()]
    if done.empty:
        return pd.DataFrame(columns=["draft", "gamma", "alpha", "c", "verify_cost", "predicted", "best"])
    costs = done.groupby("gamma")["verify_cost"].median().dropna() if "verify_cost" in done else pd.Series()
    if costs.empty:  # none measured (a published table): Leviathan's S, which prices a verification at one step
        costs = pd.Series([1.0], index=[1])
    pair = pair_prediction(done)
    rows = []
    for draft in ordered_drafts(done):
        mine = done["draft"] == draft
        alpha, c = pair.loc[mine, "alpha"].iloc[0], done.loc[mine, "c"].median()
        for gamma in theory.GAMMAS:
            cost = float(np.interp(gamma, costs.index.astype(float), costs.to_numpy(float)))
            rows.append({"draft": draft, "gamma": gamma, "alpha": alpha, "c": c, "verify_cost": cost,
                         "predicted": predict(alpha, gamma, c, cost)})
    out = pd.DataFrame(rows)
    out["best"] = out.index == out["predicted"].idxmax() if out["predicted"].notna().any() else False
    return out


def predicted_grid(frame: pd.DataFrame) -> pd.DataFrame:
    """`curves` as a table, a row per draft and a column per γ; ★ marks the predicted optimum, · a γ not measured."""
    found = curves(frame)
    if found.empty:
        return pd.DataFrame()
    done = frame[frame["status"].eq("done")]
    measured = set(zip(done["draft"], done["gamma"], strict=True))
    rows = []
    for draft, cells in found.groupby("draft", sort=False):
        first = cells.iloc[0]
        row = {"draft": draft, "pair α": f"{first['alpha']:.3f}", "c": f"{first['c']:.3f}"}
        for _, cell in cells.iterrows():
            mark = "★" if cell["best"] else ("" if (draft, cell["gamma"]) in measured else "·")
            row[f"γ={cell['gamma']}"] = f"{cell['predicted']:.2f}{mark}" if pd.notna(cell["predicted"]) else ""
        rows.append(row)
    return pd.DataFrame(rows)
