"""The draft-scale x lookahead optimality study of a sweep, as tables.

Input is the tidy table of `specsweep.study.aggregate.collect` (one row per job). A study *group* is everything a
speedup is comparable within: one target (model family), dataset, method, optimisation setting, sampling
temperature and machine. Per group, `grid` gives Hayashizaki et al. 2024's table 1 (draft x gamma) with
Leviathan's prediction beside the measurement; `optimum` gives Liu et al. 2024's table (the best draft and
gamma per target).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from specsweep import record, theory

# Measured and predicted speedup disagree when their ratio is outside 1 +- TOLERANCE. The prediction is S_v,
# which prices a (gamma+1)-token verification at its measured cost (1.1-1.6 one-token steps on a CPU; Leviathan's
# S prices it at one, and over-predicts by 15-25% there); a wrong implementation or a noisy machine shows beyond.
TOLERANCE = 0.15
SPEEDUP = f"speedup [{record.CONFIDENCE:.0%} CI]"
CONTROL = f"A/A [{record.CONFIDENCE:.0%} CI]"
MEMORY = "extra memory (MiB)"
GROUP = ["model_family", "dataset", "method", "setting", "sampling.temperature", "hardware"]
CELL = ["draft", "gamma"]
# Quality metrics the study shows beside their change against the baseline (scored in the same job); the
# others (ROUGE-1, ROUGE-2) are in results.csv.
QUALITY = {"rouge1": "ROUGE-1", "rougeL": "ROUGE-L", "pass_at_1": "pass@1"}
# A greedy, lossless method's quality equals the baseline's: a published change beyond rounding is a sign
# that its output was not the autoregressive output (where the paper did not report exact_match).
QUALITY_ROUNDING = 0.001 + 1e-9  # the last digit of a figure published to three decimals


NO_DRAFT, NO_LOOKAHEAD = "—", 0  # the draft and gamma of a method that has none (Liu et al. 2024 write K = 0)


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


def sampling_label(temperature: Any) -> str:
    return "greedy" if temperature == 0 else f"T={temperature}"


def title(labels: dict[str, Any]) -> str:
    shown = [labels.get("model_family"), labels.get("dataset"), labels.get("method"), labels.get("setting"),
             sampling_label(labels.get("sampling.temperature")), labels.get("hardware")]
    shown = [label for key, label in zip(GROUP, shown, strict=True) if key in labels]  # a table grouped by fewer
    shown += [f"{key}={value}" for key, value in labels.items() if key not in GROUP]
    return " · ".join(str(label) for label in shown)


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
    out = pd.DataFrame({
        "draft": frame["draft"],
        "draft params": frame.get("draft_params", pd.Series(index=frame.index)).map(params),
        "γ": frame["gamma"].astype(int),
        "status": frame["status"],
    })
    for column in ["alpha", "acceptance_rate", "c"]:
        out[column] = number(frame, column, ".3f")
    out["ms/token"] = number(frame, "ms_per_token", ".2f")
    for column, name in ((SPEEDUP, "speedup"), (CONTROL, "control_speedup")):
        out[column] = [interval(row, name) if ok else "" for ok, (_, row) in zip(done, frame.iterrows(), strict=True)]
    out[MEMORY] = mebibytes(frame)
    out["predicted"] = number(frame, "predicted_speedup", ".2f")
    out["γ*"] = number(frame, "gamma_star", ".0f")
    out["measured / predicted"] = number(frame.assign(ratio=ratio(frame)), "ratio", ".2f")
    frame = frame.assign(s_v=verify_priced(frame))
    out["S_v"] = number(frame, "s_v", ".2f")
    out["measured / S_v"] = number(frame.assign(ratio=ratio(frame, "s_v")), "ratio", ".2f")
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


PUBLISHED = "published:"  # the identity key of a published row starts with this (`specsweep.study.published`)


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


def sections(table: pd.DataFrame, tolerance: float = TOLERANCE) -> list[tuple[str, pd.DataFrame]]:
    """The study as (heading, formatted table) pairs: the optimum first, the optimisation table when the
    sweep timed the reference row, then one grid per group, then the jobs that did not finish."""
    found = list(groups(table))
    out = [("Optimal draft and γ per target (measured, with its ties, and predicted at every γ)", best_cells(found))]
    out += combined_sections(table)
    matched = beside_published(table)
    if not matched.empty:
        out.append(("Published beside measured (same target, method, draft and γ)", matched))
    from specsweep.study import pairs  # it builds on this module's helpers

    alphas = pairs.alpha_table(table)
    if not alphas.empty:
        out.append(("α per pair, in the shape of Leviathan et al.'s α table (M_p, M_q, sampling)", alphas))
    adaptive = pairs.adaptive_table(table)
    if not adaptive.empty:
        out.append(("Adaptive lookahead beside the best fixed γ of the same draft", adaptive))
    for labels, frame in found:
        out.append((title(labels), grid(frame, tolerance)))
        predicted = predicted_grid(frame)
        if not predicted.empty:
            out.append((f"Predicted speedup at every γ (S_v from the pair's α; ★ optimum, · not measured) · "
                        f"{title(labels)}", predicted))
    unfinished = table[~table["status"].eq("done")]
    if not unfinished.empty:
        columns = [c for c in ["job", "status", "method", "draft", "gamma", "error"] if c in unfinished]
        unfinished = unfinished[columns].assign(gamma=number(unfinished, "gamma", ".0f"))  # 3, even from CSV
        out.append(("Jobs that did not finish", unfinished.fillna("")))
    return out


def note(tolerance: float = TOLERANCE) -> str:
    return (f"Speedup is autoregressive decoding's ms per token over the method's, both from totals over every "
            f"prompt and repeat, measured in the same job on the same prompts, interleaved; the brackets hold its "
            f"{record.CONFIDENCE:.0%} confidence interval, a percentile bootstrap ({record.RESAMPLES} resamples) over "
            f"the (prompt, repeat) calls. A/A is autoregressive decoding timed against itself the same way "
            f"(bench.control): its interval is the noise floor, and the optimum table lists every cell whose interval "
            f"overlaps the fastest one's as tied for best. Predicted is Leviathan et "
            f"al.'s S = (1 − α^(γ+1)) / ((1 − α)(γc + 1)) from the cell's measured α and c; S_v is the same with the "
            f"verification priced at its measured cost, (1 − α^(γ+1)) / ((1 − α)(γc + verify_cost)). The pair's α "
            f"is the draft's α at its smallest γ: α does not depend on γ under correct speculative sampling, so a cell "
            f"whose α falls below it by more than chance is flagged (at α₁/(1+α₁), the signature of drafts not "
            f"conditioned on earlier drafts), and S (pair α) is the prediction a correct implementation would meet. "
            f"The flag also marks measured/S_v (S where the verification cost is unknown) outside 1 ± {tolerance:g}, "
            f"and greedy output that differs from autoregressive output. Quality deltas are the method's score minus "
            f"the baseline's on the same prompts. Where a sweep "
            f"set bench.reference, each cell was also timed, interleaved in the same job, against autoregressive "
            f"decoding with no optimisation (eager attention, no KV cache, float32): that is the 'reference row' "
            f"speedup, a different number from the paired one.")


def markdown(table: pd.DataFrame, tolerance: float = TOLERANCE) -> str:
    return render_markdown(sections(table, tolerance), tolerance)


def render_markdown(parts: list[tuple[str, pd.DataFrame]], tolerance: float = TOLERANCE) -> str:
    """study.md from the study's sections."""
    text = ["# specsweep study", note(tolerance)] + [f"## {heading}\n\n{table_markdown(frame)}"
                                                     for heading, frame in parts]
    return "\n\n".join(text) + "\n"


def table_markdown(frame: pd.DataFrame) -> str:
    """As formatted here: tabulate would reparse "1.000" as a number and print 1."""
    return frame.to_markdown(index=False, disable_numparse=True) if not frame.empty else "(no finished cells)"


def ordered_drafts(frame: pd.DataFrame) -> list[Any]:
    """Drafts from smallest to largest (by parameter count when known)."""
    sizes = frame.groupby("draft", dropna=False)["draft_params"].max() if "draft_params" in frame else None
    drafts = list(frame["draft"].drop_duplicates())
    return sorted(drafts, key=lambda d: (sizes is None or pd.isna(sizes.get(d)), 0 if sizes is None
                                         else sizes.get(d, 0), str(d)))


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


def flags(row: pd.Series, tolerance: float) -> str:
    """Measured speedup outside 1 ± tolerance of the prediction (S_v where the verification cost was measured,
    else S), and greedy output that differs from autoregressive output."""
    marks = []
    measured = row.get("speedup")
    predicted = row["s_v"] if pd.notna(row.get("s_v")) else row.get("predicted_speedup")
    if pd.notna(measured) and pd.notna(predicted) and abs(measured / predicted - 1) > tolerance:
        marks.append("⚠ below prediction" if measured < predicted else "⚠ above prediction")
    if row.get("sampling.temperature") == 0 and pd.notna(row.get("exact_match")) and row["exact_match"] < 1:
        marks.append(divergence(row))
    return "; ".join(marks)


# The largest top-1 − top-2 logit margin that a dtype's rounding can flip between a one-token step and a (γ+1)-token
# verification of the same position (half precision is not batch-invariant: the two reduce in different orders).
NEAR_TIE = {"float32": 1e-3, "float16": 0.05, "bfloat16": 0.25}


def divergence(row: pd.Series) -> str:
    """Greedy output that left autoregressive output: at a near-tie of the target's dtype (explained by rounding,
    not a flag), or not explained by rounding (a flag: a bug until shown otherwise)."""
    margin, dtype = row.get("divergence_margin"), row.get("target_dtype")
    tie = NEAR_TIE.get(dtype) if isinstance(dtype, str) else None
    if pd.isna(margin) or tie is None:
        return "✗ greedy output differs from autoregressive"
    if margin <= tie:
        return f"≈ diverged at a near-tie (margin {margin:.3g} ≤ {tie:g} in {dtype})"
    return f"✗ diverged: not explained by rounding (margin {margin:.3g} > {tie:g} in {dtype})"


# α belongs to a draft-target pair on a dataset and does not depend on γ under correct speculative sampling
# (Leviathan et al. 2023). Without counts (a published table), α is known to about this much.
PUBLISHED_ALPHA_NOISE = 0.02


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


def alpha_noise(row: pd.Series) -> float:
    """Three standard errors of a measured α (a binomial over accepted + rejections), or the rounding of a
    published one."""
    alpha, accepted, rejections = row.get("alpha"), row.get("accepted"), row.get("rejections")
    if pd.isna(alpha) or pd.isna(accepted) or pd.isna(rejections) or accepted + rejections == 0:
        return PUBLISHED_ALPHA_NOISE
    return max(0.01, 3 * (alpha * (1 - alpha) / (accepted + rejections)) ** 0.5)


def consistency(row: pd.Series, pair: pd.Series) -> str:
    """A cell whose α falls below its pair's by more than chance; in words that name the cause when the drop
    is to α₁ / (1 + α₁), what a drafter that never conditions on its own earlier drafts accepts."""
    alpha = row.get("alpha")
    if pd.isna(alpha) or pd.isna(pair["alpha"]) or row.get("gamma") == pair["first_gamma"]:
        return ""
    if row.get("drafts_conditioned") is False or row.get("drafts_conditioned") == 0:
        return ""  # a method that never conditions its drafts on each other (Medusa's heads) by design
    if alpha >= pair["alpha"] - 1.5 * pair["noise"]:  # 1.5 x 3 standard errors of one: ~3 of the difference
        return ""
    unconditioned = pair["alpha"] / (1 + pair["alpha"])
    if abs(alpha - unconditioned) <= 1.5 * pair["noise"]:
        return (f"✗ α {alpha:.3f} is the pair's α₁/(1+α₁) = {unconditioned:.3f}: drafts not conditioned on "
                f"earlier drafts")
    return f"✗ α {alpha:.3f} below the pair's {pair['alpha']:.3f}: α should not depend on γ"


def quality_changed(frame: pd.DataFrame) -> pd.Series:
    """Greedy cells with no exact_match whose quality differs from the baseline's: not the autoregressive output."""
    marks = pd.Series("", index=frame.index)
    unknown = frame["exact_match"].isna() if "exact_match" in frame else pd.Series(True, index=frame.index)
    greedy = frame["sampling.temperature"].eq(0) & unknown
    for name, delta in quality_deltas(frame).items():
        lossy = greedy & delta.abs().gt(QUALITY_ROUNDING)
        marks[lossy] = [f"✗ greedy {QUALITY[name]} differs from autoregressive ({value:+.3f}): not lossless"
                        for value in delta[lossy]]
    return marks


def quality_deltas(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Quality metric minus the baseline's, for the metrics both have."""
    return {name: frame[name] - frame[f"baseline_{name}"] for name in QUALITY
            if name in frame and f"baseline_{name}" in frame and frame[name].notna().any()}


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
