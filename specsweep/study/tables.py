"""The draft-scale x lookahead optimality study of a sweep, as tables.

Per study group (`specsweep.study.cells`), `grid` gives Hayashizaki et al. 2024's table 1 (draft x gamma) with
Leviathan's prediction beside the measurement; `optimum` gives Liu et al. 2024's table (the best draft and gamma per
target); `combined` gives Hayashizaki et al. 2024's table 2 (the methods under each optimisation).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from specsweep import record
from specsweep.study.cells import CELL, GROUP, PUBLISHED, groups, measured_cells, ordered_drafts, title
from specsweep.study.diagnose import QUALITY, TOLERANCE, consistency, flags, quality_changed, quality_deltas
from specsweep.study.format import SPEEDUP, interval, mebibytes, number, params, sampling_label, scaling
from specsweep.study.predict import curves, pair_prediction, ratio, verify_priced

CONTROL_COLUMN = f"A/A [{record.CONFIDENCE:.0%} CI]"
MEMORY = "extra memory (MiB)"


def grid(frame: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Hayashizaki et al. 2024, table 1, for one group: a row per draft x gamma, drafts by size. Cells of the
    grid (every draft of the group at every gamma of the group) that no job measured are rows with status
    `missing`."""
    frame = frame.copy()
    drafts = ordered_drafts(frame)
    gammas = sorted(frame["gamma"].unique())
    full = pd.MultiIndex.from_product([drafts, gammas], names=CELL)
    if frame["key"].astype(str).str.startswith(PUBLISHED).all():  # a paper's rows: only the cells it published
        rank = frame["draft"].map(drafts.index)
        full = pd.MultiIndex.from_frame(frame.assign(_rank=rank).sort_values(["_rank", "gamma"])[CELL])
    frame = frame.set_index(CELL).reindex(full).reset_index()
    frame["status"] = frame["status"].fillna("missing")
    done = frame["status"].eq("done")
    predicted = frame["predicted"].eq(True) if "predicted" in frame else pd.Series(False, index=frame.index)
    out = pd.DataFrame({
        "draft": frame["draft"],
        "draft params": frame.get("draft_params", pd.Series(index=frame.index)).map(params),
        "γ": frame["gamma"].astype(int),
        "status": frame["status"].where(~predicted, "predicted"),
    })
    for column in ["alpha", "acceptance_rate", "c"]:
        out[column] = number(frame, column, ".3f")
    out["ms/token"] = number(frame, "ms_per_token", ".2f")
    for column, name in ((SPEEDUP, "speedup"), (CONTROL_COLUMN, "control_speedup")):
        out[column] = [interval(row, name) if ok else "" for ok, (_, row) in zip(done, frame.iterrows(), strict=True)]
    out[MEMORY] = mebibytes(frame)
    out["predicted"] = number(frame, "predicted_speedup", ".2f")
    out["γ*"] = number(frame, "gamma_star", ".0f")
    out["measured / predicted"] = number(frame.assign(ratio=ratio(frame)), "ratio", ".2f")
    frame = frame.assign(s_v=verify_priced(frame))
    out["S_v"] = number(frame, "s_v", ".2f")
    out["measured / S_v"] = number(frame.assign(ratio=ratio(frame, "s_v")), "ratio", ".2f")
    out = out.join(replayed(frame, predicted))
    pair = pair_prediction(frame)
    out["pair α"] = number(pair, "alpha", ".3f")
    out["S (pair α)"] = number(pair, "predicted", ".2f")
    out["γ* (pair α)"] = number(pair, "gamma_star", ".0f")
    changed = quality_changed(frame)
    out["flag"] = ["; ".join(filter(None, [flags(row, tolerance), consistency(row, pair.loc[i]), changed[i]]))
                   for i, row in frame.iterrows()]
    out["runs"] = number(frame, "runs", ".0f")
    out["exact_match"] = number(frame, "exact_match", ".3f")
    for name, delta in quality_deltas(frame).items():
        out[QUALITY[name]] = number(frame, name, ".3f")
        out[f"Δ{QUALITY[name]}"] = number(frame.assign(delta=delta), "delta", "+.3f")
    return out


def replayed(frame: pd.DataFrame, predicted: pd.Series) -> pd.DataFrame:
    """The grid's columns from traces (where the sweep kept them): τ measured and replayed, and (a planned or
    predicted sweep) the speedup predicted from traces and a profile, measured over it, and p(best)."""
    out = pd.DataFrame(index=frame.index)
    if "replay_tokens_per_round" in frame and frame["replay_tokens_per_round"].notna().any():
        out["τ"] = number(frame, "tokens_per_round", ".3f")
        out["replay τ"] = number(frame, "replay_tokens_per_round", ".3f")
    if "replay_speedup" in frame and frame["replay_speedup"].notna().any():
        out["replay [95% CI]"] = [interval(row, "replay_speedup") for _, row in frame.iterrows()]
        measured = frame.assign(ratio=ratio(frame, "replay_speedup").where(~predicted))
        out["measured / replay"] = number(measured, "ratio", ".2f")
        out["p(best)"] = number(frame, "p_best", ".2f")
    return out


def optimum(table: pd.DataFrame) -> pd.DataFrame:
    """Liu et al. 2024's table: per target, setting and method, the measured best (draft, gamma) and every cell
    tied with it, the best cell by Leviathan's prediction, and the target/draft parameter ratio ("scaling")."""
    return best_cells(list(groups(table)))


def best_rows(found: list[tuple[dict[str, Any], pd.DataFrame]]) -> pd.DataFrame:
    """Per group with a finished cell, the measured best cell and every cell tied with it (its interval overlaps
    the best one's), best first: their columns, numbers as numbers; `tied` (False for the best); the group's
    labels as `group.<key>`; the predicted optimum over every draft and γ in 1..7 (`curves`) as `predicted_draft`,
    `predicted_gamma`, `predicted_best`; and the group's A/A control as `noise`, `noise_low`, `noise_high`."""
    rows = []
    for labels, frame in found:
        done = frame[frame["status"].eq("done") & frame["speedup"].notna()]
        if done.empty:
            continue
        best = done.loc[done["speedup"].idxmax()]
        predicted = curves(done)
        predicted = predicted[predicted["best"]].iloc[0] if predicted["best"].any() else pd.Series(dtype=object)
        shared = ({f"group.{key}": value for key, value in labels.items()}
                  | {"predicted_draft": predicted.get("draft"), "predicted_gamma": predicted.get("gamma"),
                     "predicted_best": predicted.get("predicted")} | noise_floor(done))
        rows.append(best.to_dict() | shared | {"tied": False})
        rows += [row.to_dict() | shared | {"tied": True} for _, row in tied(done, best).iterrows()]
    return pd.DataFrame(rows)


def tied(done: pd.DataFrame, best: pd.Series) -> pd.DataFrame:
    """The cells other than `best` whose interval overlaps the best one's, fastest first: noise cannot rank them."""
    if "speedup_low" not in done or pd.isna(best.get("speedup_low")):
        return done.iloc[:0]  # a published table: no intervals, so no ties can be told
    others = done.drop(index=best.name)
    return others[others["speedup_high"] >= best["speedup_low"]].sort_values("speedup", ascending=False)


def noise_floor(done: pd.DataFrame) -> dict[str, float]:
    """The group's A/A control: the median of its cells' control speedups, and the widest of their intervals."""
    if "control_speedup" not in done or done["control_speedup"].isna().all():
        return {"noise": float("nan"), "noise_low": float("nan"), "noise_high": float("nan")}
    return {"noise": done["control_speedup"].median(), "noise_low": done["control_speedup_low"].min(),
            "noise_high": done["control_speedup_high"].max()}


def best_cells(found: list[tuple[dict[str, Any], pd.DataFrame]]) -> pd.DataFrame:
    rows = []
    for _, best in best_rows(found).iterrows():
        labels = {key.removeprefix("group."): value for key, value in best.items() if key.startswith("group.")}
        known = pd.notna(best["predicted_best"])
        slower = " (slower than autoregressive)" if best["speedup"] < 1 else ""
        rows.append({
            "target": labels.get("model_family"), "dataset": labels.get("dataset"),
            "setting": labels.get("setting"), "sampling": sampling_label(labels.get("sampling.temperature")),
            "machine": labels.get("hardware"),
            **{key: value for key, value in labels.items() if key not in GROUP},
            "method": labels.get("method"),
            "rank": "tied for best (intervals overlap)" if best["tied"] else "best",
            "draft": best["draft"], "γ": int(best["gamma"]),
            SPEEDUP: interval(best) + slower,
            MEMORY: mebibytes(best.to_frame().T).iloc[0],
            "A/A noise floor": interval(best, "noise"),
            "scaling": scaling(best),
            "predicted best draft": best["predicted_draft"] if known else "—",
            "predicted best γ": int(best["predicted_gamma"]) if known else "—",
            "predicted speedup": f"{best['predicted_best']:.2f}×" if known else "—",
            "γ* of measured best": number(best.to_frame().T, "gamma_star", ".0f").iloc[0],
        })
    return pd.DataFrame(rows)


# bench.reference: the columns of Hayashizaki et al. 2024, table 2, where every cell is also timed against the
# unoptimised autoregressive reference row (eager attention, no KV cache). Its grouping leaves out method and setting.
COMBINED_GROUP = ["model_family", "dataset", "sampling.temperature", "hardware"]
PAIRED = "speedup vs autoregressive, same switches (paired)"
AGAINST_REFERENCE = "speedup vs unoptimised autoregressive (reference row)"


def combined(frame: pd.DataFrame) -> pd.DataFrame:
    """Hayashizaki et al. 2024, table 2, for one target: a row per method and optimisation setting, with the
    paired speedup (against autoregressive decoding under the same switches) and the speedup against the
    reference row."""
    frame = frame.sort_values(["method", "optimization.kv_cache", "optimization.attn", "setting", "draft", "gamma"],
                              kind="stable")
    mark = {True: "✓", False: "—"}
    return pd.DataFrame({
        "method": frame["method"],
        "draft": frame["draft"],
        "γ": number(frame, "gamma", ".0f").replace("0", "—"),
        "KV cache": frame["optimization.kv_cache"].map(mark),
        "attention": frame["optimization.attn"],
        "setting": frame["setting"],
        "ms/token": number(frame, "ms_per_token", ".2f"),
        PAIRED: [interval(row) for _, row in frame.iterrows()],
        AGAINST_REFERENCE: [interval(row, "reference_speedup") for _, row in frame.iterrows()],
    })


def combined_sections(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    if "reference_speedup" not in table:
        return []
    timed = table[table["status"].eq("done") & table["reference_speedup"].notna()]
    heading = "Speculative decoding × optimisations (Hayashizaki et al. 2024, table 2) · "
    return [(heading + title(labels), combined(frame))
            for labels, frame in groups(timed, COMBINED_GROUP, free=("optimization.", "method."))]


def beside_published(table: pd.DataFrame) -> pd.DataFrame:
    """Published cells beside ours: a row per published row whose target (our family's name), method, draft and γ
    a finished cell of ours also has, with both speedups, α and c side by side."""
    cells = measured_cells(table)
    cells = cells[cells["status"].eq("done")]
    published = cells["key"].astype(str).str.startswith(PUBLISHED)
    match = ["model_family", "method", "draft", "gamma"]
    pairs = cells[published].merge(cells[~published], on=match, suffixes=(" published", ""))
    if pairs.empty:
        return pd.DataFrame()

    def figure(column: str, spec: str) -> pd.Series:
        return number(pairs, column, spec)

    return pd.DataFrame({
        "target": pairs["model_family"], "method": pairs["method"], "draft": pairs["draft"],
        "γ": pairs["gamma"].astype(int),
        "speedup, published": figure("speedup published", ".2f"), SPEEDUP: [interval(row) for _, row in
                                                                             pairs.iterrows()],
        "α, published": figure("alpha published", ".3f"), "α": figure("alpha", ".3f"),
        "c, published": figure("c published", ".3f"), "c": figure("c", ".3f"),
        "published in": pairs["hardware published"], "measured on": pairs["hardware"],
    })


# The measured columns of a group, as numbers: what the W&B study run logs beside the formatted tables.
VALUES = ["draft", "gamma", "status", "draft_params", "target_params", "alpha", "acceptance_rate", "c", "verify_cost",
          "ms_per_token", "baseline_ms_per_token", "speedup", "speedup_low", "speedup_high", "control_speedup",
          "control_speedup_low", "control_speedup_high", "extra_memory_bytes", "predicted_speedup", "gamma_star",
          "runs", "exact_match",
          *QUALITY, *(f"baseline_{name}" for name in QUALITY), "reference_speedup", "reference_speedup_low",
          "reference_speedup_high"]


def values(frame: pd.DataFrame) -> pd.DataFrame:
    """A group's cells with the study's measured columns, numbers left as numbers."""
    return frame[[column for column in VALUES if column in frame]].reset_index(drop=True)


def prediction_held(found: list[tuple[dict[str, Any], pd.DataFrame]], within: tuple[float, ...] = (0.05, 0.10)
                    ) -> pd.DataFrame:
    """Per group whose cells were both predicted from traces and measured: how often the prediction held (within
    each of `within` of the measurement, and intervals that meet), the spread of measured / predicted, the best
    fixed γ measured, and the oracle bound (the best γ per round in hindsight, greedy)."""
    rows = []
    for labels, frame in found:
        if "replay_speedup" not in frame:
            continue
        both = frame[frame["status"].eq("done") & frame["speedup"].notna() & frame["replay_speedup"].notna()
                     & ~frame.get("predicted", pd.Series(False, index=frame.index)).eq(True)]
        if both.empty:
            continue
        r = both["speedup"] / both["replay_speedup"]
        meet = ((both["speedup_low"] <= both["replay_speedup_high"])
                & (both["replay_speedup_low"] <= both["speedup_high"]))
        best = both.loc[both["speedup"].idxmax()]
        # The oracle beside the draft's best fixed γ on the same footing: both predicted, from the same profile.
        per_draft = frame.groupby("draft")[["oracle_speedup", "replay_speedup"]].max() if "oracle_speedup" in frame \
            else pd.DataFrame(columns=["oracle_speedup", "replay_speedup"])
        per_draft = per_draft.dropna()
        close = {f"within ±{w:.0%}": abs(r - 1) <= w for w in within}
        rows.append({"group": title(labels), "cells": len(both),
                     **{name: f"{int(c.sum())} ({c.mean():.0%})" for name, c in close.items()},
                     "intervals meet": f"{int(meet.sum())} ({meet.mean():.0%})",
                     "measured / replay: min · median · max": f"{r.min():.3f} · {r.median():.3f} · {r.max():.3f}",
                     "best fixed γ (measured)": f"{best['draft']} γ={int(best['gamma'])}: {interval(best)}",
                     "oracle (best γ per round, hindsight) / best fixed γ, both predicted": "; ".join(
                         f"{d}: {row['oracle_speedup']:.2f}× / {row['replay_speedup']:.2f}×"
                         for d, row in per_draft.iterrows())})
    return pd.DataFrame(rows)


def skipped_cells(table: pd.DataFrame) -> pd.DataFrame:
    """The cells a planned sweep did not measure, with their prediction and why they were skipped."""
    if "plan_fraction" not in table:
        return pd.DataFrame()
    skipped = table[table["status"].eq("skipped")]
    return pd.DataFrame({"sweep": skipped["sweep"], "draft": skipped["draft"],
                         "γ": number(skipped, "gamma", ".0f"),
                         "replay [95% CI]": [interval(row, "replay_speedup") for _, row in skipped.iterrows()],
                         "p(best)": number(skipped, "p_best", ".2f"), "why": skipped["error"]})


def planned_sweeps(table: pd.DataFrame) -> pd.DataFrame:
    """Per planned sweep: cells measured of the grid, and the share of the full grid's decode time it spent."""
    if "plan_fraction" not in table or table["plan_fraction"].isna().all():
        return pd.DataFrame()
    rows = []
    for sweep, frame in table[table["plan_fraction"].notna()].groupby("sweep"):
        rows.append({"sweep": sweep, "cells measured": f"{int(frame['status'].eq('done').sum())} of {len(frame)}",
                     "decode time, share of the full grid's": f"{frame['plan_fraction'].iloc[0]:.0%}",
                     "most likely best (p)": "; ".join(f"{r['draft']} γ={int(r['gamma'])} ({r['p_best']:.2f})"
                                                      for _, r in frame.nlargest(3, "p_best").iterrows())})
    return pd.DataFrame(rows)
