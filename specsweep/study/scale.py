"""Where the border in draft scale lies (Liu et al. 2024 leave it open): α fitted against a draft's size and its
held-out perplexity, the optimum the fit predicts beside the one measured, deep against wide drafts at equal
parameters, and distilled against plain-trained drafts of the same shape.

A *ladder* is the drafts of one target trained one way (one `draft_loss`, or one model family where the drafts carry
no card): a draft's α is pooled over every γ measured (α does not depend on γ; a paper's rows, which carry no counts,
give the pair's α, at the smallest γ), its c is the median over them. Two laws:

- Scylla's log-linear law, α = a + b · log10(N) (N the draft's parameters);
- SDSL's affine law, α = a + b · PPL (the draft's held-out perplexity; one target, so its own perplexity is fixed).

The predicted optimum prices every (draft, γ) of a ladder with Leviathan et al.'s S_v from the fitted α and the
draft's measured c and verification cost, and takes the best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from specsweep.study.cells import GROUP, groups, title
from specsweep.study.format import interval, params
from specsweep.study.predict import predict

SCALE_GROUP = [c for c in GROUP if c != "model_family"] + ["target_params"]  # ladders of one target side by side
SAME_SIZE = 0.05  # drafts within 5% of each other's parameters are "equal" (deep against wide)
LEAST = 3  # drafts a ladder needs for a fit
LAWS = {"Scylla: α = a + b·log10(N)": ("params", np.log10),
        "SDSL: α = a + b·PPL": ("perplexity", lambda x: x)}
TRAINING = {"fkl": "distilled (forward KL)", "tvd": "distilled (total variation)", "rkl": "distilled (reverse KL)",
            "nll": "plain (next-token loss)"}


@dataclass
class Ladder:
    family: str  # the model family its drafts came from
    training: str  # how they were trained (TRAINING's words), "" where the drafts carry no card
    group: str  # the rest of the study group: target, dataset, method, setting, sampling, machine
    drafts: pd.DataFrame  # one row per draft, by size (`per_draft`)

    @property
    def heading(self) -> str:
        return " · ".join(filter(None, [self.family, self.training]))


def ladders(table: pd.DataFrame) -> list[Ladder]:
    """Every ladder of at least LEAST drafts of known size and α, in every group of SCALE_GROUP."""
    out = []
    if "draft_params" not in table:
        return out
    rows = table[table["status"].eq("done") & table["draft_params"].notna() & table["gamma"].gt(0)]
    for labels, frame in groups(rows, SCALE_GROUP, free=("model_family.",)):
        loss = frame["draft_loss"] if "draft_loss" in frame else pd.Series(None, index=frame.index, dtype=object)
        frame = frame.assign(training=loss.map(lambda x: TRAINING.get(x, x) if pd.notna(x) else ""))
        for (family, training), cells in frame.groupby(["model_family", "training"], sort=True):
            drafts = per_draft(cells)
            if len(drafts) >= LEAST and drafts["alpha"].notna().sum() >= LEAST:
                out.append(Ladder(str(family), training, title(labels), drafts))
    return out


def per_draft(cells: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for draft, part in cells.groupby("draft", sort=False):
        best = part.loc[part["speedup"].idxmax()] if part["speedup"].notna().any() else None
        accepted, rejected = (part[c].sum() if c in part else 0 for c in ("accepted", "rejections"))
        rows.append({"draft": draft, "shape": first(part, "draft_shape"), "layers": first(part, "draft_layers"),
                     "params": part["draft_params"].max(), "target_params": first(part, "target_params"),
                     "perplexity": first(part, "draft_heldout_perplexity"),
                     "agreement": first(part, "draft_agreement"),
                     # pooled over the draft's cells where their counts are known; a paper's rows: α at the
                     # smallest γ, the pair's α, which a drafting bug that lowers α with γ leaves alone
                     "alpha": accepted / (accepted + rejected) if accepted + rejected
                     else part.sort_values("gamma")["alpha"].iloc[0],
                     "c": part["c"].median() if "c" in part else float("nan"),
                     "verify_cost": part["verify_cost"].median() if "verify_cost" in part else 1.0,
                     "best_gamma": None if best is None else int(best["gamma"]), "best": best,
                     "gammas": sorted(part["gamma"].astype(int).unique())})
    return pd.DataFrame(rows).sort_values("params", kind="stable").reset_index(drop=True)


def first(frame: pd.DataFrame, column: str) -> Any:
    if column not in frame or frame[column].isna().all():
        return None
    return frame[column].dropna().iloc[0]


def fit(x: pd.Series, alpha: pd.Series) -> dict[str, float] | None:
    """Least squares α = a + b·x, with R² and the points it used; None with fewer than LEAST points."""
    keep = x.notna() & alpha.notna() & np.isfinite(x.astype(float))
    x, y = x[keep].astype(float).to_numpy(), alpha[keep].astype(float).to_numpy()
    if len(x) < LEAST or np.ptp(x) == 0:
        return None
    b, a = np.polyfit(x, y, 1)
    residual, total = ((y - (a + b * x)) ** 2).sum(), ((y - y.mean()) ** 2).sum()
    return {"a": a, "b": b, "r2": 1 - residual / total if total else float("nan"), "n": len(x)}


def fits(drafts: pd.DataFrame) -> dict[str, dict[str, float] | None]:
    return {law: fit(transform(drafts[column].astype(float)), drafts["alpha"]) if column in drafts
            and drafts[column].notna().any() else None for law, (column, transform) in LAWS.items()}


def fitted(drafts: pd.DataFrame, law: str, found: dict[str, float] | None) -> pd.Series:
    column, transform = LAWS[law]
    if found is None:
        return pd.Series(float("nan"), index=drafts.index)
    return (found["a"] + found["b"] * transform(drafts[column].astype(float))).clip(upper=1.0)


def fit_table(found: list[Ladder]) -> pd.DataFrame:
    """Per ladder and law: the fitted a and b, R² and the number of points."""
    rows = []
    for ladder in found:
        for law, result in fits(ladder.drafts).items():
            if result is not None:
                rows.append({"ladder": ladder.heading, "law": law, "a": f"{result['a']:.3f}",
                             "b": f"{result['b']:+.4f}", "R²": f"{result['r2']:.3f}", "points": result["n"]})
    return pd.DataFrame(rows)


def points_table(found: list[Ladder]) -> pd.DataFrame:
    """Per ladder and draft: what the fits read (size, perplexity, α) and what they give back."""
    rows = []
    for ladder in found:
        drafts, heading = ladder.drafts, ladder.heading
        found_fits = fits(drafts)
        laws = {law: fitted(drafts, law, result) for law, result in found_fits.items()}
        for i, row in drafts.iterrows():
            best = row["best"]
            rows.append({"ladder": heading, "draft": row["draft"], "shape": row["shape"] or "",
                         "params": params(row["params"]), "target ÷ draft": ratio_text(row),
                         "held-out PPL": "" if pd.isna(row["perplexity"]) else f"{row['perplexity']:.2f}",
                         "α (pooled over γ)": f"{row['alpha']:.3f}",
                         "α Scylla fit": text(laws[next(iter(LAWS))][i]), "α SDSL fit": text(laws[list(LAWS)[1]][i]),
                         "c": f"{row['c']:.3f}", "best γ": row["best_gamma"],
                         "best speedup": "" if best is None else interval(best)})
    return pd.DataFrame(rows)


def text(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.3f}"


def ratio_text(row: pd.Series) -> str:
    target = row.get("target_params")
    return f"{target / row['params']:.0f}×" if target is not None and pd.notna(target) and row["params"] else ""


def predicted_optimum(drafts: pd.DataFrame, law: str) -> dict[str, Any] | None:
    """The (draft, γ) with the highest S_v from the law's fitted α and the draft's measured c and verification cost,
    over the γ the ladder measured."""
    result = fits(drafts)[law]
    if result is None:
        return None
    alphas = fitted(drafts, law, result)
    priced = [(predict(min(alphas[i], 1 - 1e-9), gamma, row["c"], row["verify_cost"]), i, gamma)
              for i, row in drafts.iterrows() for gamma in row["gammas"]]
    priced = [p for p in priced if not math.isnan(p[0])]
    if not priced:
        return None
    value, i, gamma = max(priced)
    return {"index": i, "draft": drafts.loc[i, "draft"], "gamma": gamma, "speedup": value}


def measured_optimum(drafts: pd.DataFrame) -> dict[str, Any] | None:
    best = [(row["best"]["speedup"], i) for i, row in drafts.iterrows() if row["best"] is not None]
    if not best:
        return None
    _, i = max(best)
    cell = drafts.loc[i, "best"]
    tied = [drafts.loc[j, "draft"] for j, row in drafts.iterrows() if row["best"] is not None
            and row["best"]["speedup_high"] >= cell["speedup_low"] and j != i] if "speedup_low" in cell else []
    return {"index": i, "draft": drafts.loc[i, "draft"], "gamma": int(cell["gamma"]), "cell": cell, "tied": tied}


def border_table(found: list[Ladder]) -> pd.DataFrame:
    """Per ladder: the optimum each law predicts beside the measured optimum, and how many ladder steps apart."""
    rows = []
    for ladder in found:
        drafts, heading = ladder.drafts, ladder.heading
        measured = measured_optimum(drafts)
        if measured is None:
            continue
        for law in LAWS:
            predicted = predicted_optimum(drafts, law)
            if predicted is None:
                continue
            steps = abs(predicted["index"] - measured["index"])
            rows.append({"ladder": heading, "law": law,
                         "predicted optimum": f"{predicted['draft']} γ={predicted['gamma']} "
                                              f"(S_v {predicted['speedup']:.2f}×)",
                         "measured optimum": f"{measured['draft']} γ={measured['gamma']} "
                                             f"({interval(measured['cell'])})",
                         "tied (interval overlaps)": ", ".join(map(str, measured["tied"])) or "—",
                         "ladder steps apart": steps,
                         "target ÷ measured optimum": ratio_text(drafts.loc[measured["index"]])})
    return pd.DataFrame(rows)


def depth_width_table(found: list[Ladder]) -> pd.DataFrame:
    """Pairs of drafts within SAME_SIZE of each other's parameters but of different depth: α, c and best speedup."""
    rows = []
    for ladder in found:
        drafts, heading = ladder.drafts, ladder.heading
        if drafts["layers"].isna().all():
            continue
        for _, deep in drafts.iterrows():
            for _, wide in drafts.iterrows():
                if deep["layers"] is None or wide["layers"] is None or deep["layers"] <= wide["layers"]:
                    continue
                if abs(deep["params"] / wide["params"] - 1) > SAME_SIZE:
                    continue
                for role, row in (("deep", deep), ("wide", wide)):
                    rows.append({"ladder": heading, "pair": f"{params(deep['params'])} ≈ {params(wide['params'])}",
                                 "kind": role, "draft": row["draft"], "shape": row["shape"],
                                 "params": params(row["params"]), "α": f"{row['alpha']:.3f}", "c": f"{row['c']:.3f}",
                                 "best γ": row["best_gamma"],
                                 "best speedup": "" if row["best"] is None else interval(row["best"])})
    return pd.DataFrame(rows)


def training_table(found: list[Ladder]) -> pd.DataFrame:
    """Drafts of the same shape and target, in the same study group, trained two ways (distilled, plain): α and
    best speedup side by side, and α's relative gain."""
    plain = {(ladder.group, row["shape"]): row for ladder in found if ladder.training == TRAINING["nll"]
             for _, row in ladder.drafts.iterrows() if row["shape"]}
    rows = []
    for ladder in found:
        if ladder.training in ("", TRAINING["nll"]):
            continue
        for _, row in ladder.drafts.iterrows():
            base = plain.get((ladder.group, row["shape"]))
            if base is None:
                continue
            rows.append({"shape": row["shape"], "params": params(row["params"]), "training": ladder.training,
                         "α": f"{row['alpha']:.3f}", "α plain": f"{base['alpha']:.3f}",
                         "α gain": f"{row['alpha'] / base['alpha'] - 1:+.1%}",
                         "PPL": text(row["perplexity"]), "PPL plain": text(base["perplexity"]),
                         "best speedup": "" if row["best"] is None else interval(row["best"]),
                         "best speedup plain": "" if base["best"] is None else interval(base["best"])})
    return pd.DataFrame(rows)


def sections(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    found = ladders(table)
    if not found:
        return []
    out = [("Draft scale: α fitted against draft parameters (Scylla) and held-out perplexity (SDSL)", fit_table(found)),
           ("Draft scale: the points the fits read", points_table(found)),
           ("The border in draft scale: the optimum the fit predicts beside the measured one", border_table(found))]
    pairs = depth_width_table(found)
    if not pairs.empty:
        out.append(("Deep against wide drafts at equal parameters", pairs))
    trained = training_table(found)
    if not trained.empty:
        out.append(("Distilled against plain-trained drafts of the same shape", trained))
    return [(heading, frame) for heading, frame in out if not frame.empty]


