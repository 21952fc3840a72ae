"""The study's plots, one set per study group (see specsweep.study.cells): PNG files for the sweep directory and
the report, and the same figures for the notebook.

- latency per token against gamma, points per draft with the predicted curve, the autoregressive baseline dashed
  (Liu et al. 2024's figure);
- speedup against gamma, measured with its interval, the predicted curve at every gamma and the predicted optimum;
- speedup heatmap, draft x gamma;
- alpha and c against draft parameters, on a log axis;
- measured against predicted speedup, with the diagonal and the study's tolerance band;
- per target with a ladder of drafts (`specsweep.study.scale`): α against size and held-out perplexity, with fits.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure  # not pyplot: no GUI backend, no global figure registry for a sweep to fill

from specsweep.study import scale
from specsweep.study.cells import groups, ordered_drafts, title
from specsweep.study.diagnose import TOLERANCE
from specsweep.study.predict import curves


def latency_vs_gamma(frame: pd.DataFrame, heading: str, tolerance: float = TOLERANCE) -> Figure:
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    done = finished(frame)
    baseline = done["baseline_ms_per_token"].median() if "baseline_ms_per_token" in done else float("nan")

    def measured(cells: pd.DataFrame, label: str) -> str:
        (line,) = ax.plot(cells["gamma"], cells["ms_per_token"], marker="o", linestyle="", label=label)
        return line.get_color()

    # predicted latency: the baseline's over the predicted speedup
    predicted = curves(frame) if pd.notna(baseline) else None
    by_draft(ax, done, measured, predicted, lambda curve: baseline / curve["predicted"])
    if pd.notna(baseline):
        ax.axhline(baseline, color="black", linestyle="--", label="autoregressive (median over jobs)")
    return against_gamma(fig, ax, "latency per token (ms)", titled("Latency per token: measured and predicted",
                                                                   heading))


def speedup_vs_gamma(frame: pd.DataFrame, heading: str, tolerance: float = TOLERANCE) -> Figure | None:
    """Measured speedup with its interval beside the predicted curve of each draft at every γ; ★ the predicted
    optimum."""
    done = finished(frame).dropna(subset=["speedup"])
    predicted = curves(frame)
    if predicted.empty:  # nothing to predict for a method without a draft model
        return None
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()

    def measured(cells: pd.DataFrame, label: str) -> str:
        errors = None
        if "speedup_low" in cells and cells["speedup_low"].notna().all():
            errors = [cells["speedup"] - cells["speedup_low"], cells["speedup_high"] - cells["speedup"]]
        bars = ax.errorbar(cells["gamma"], cells["speedup"], yerr=errors, marker="o", linestyle="", capsize=3,
                           label=label)
        return bars.lines[0].get_color()

    by_draft(ax, done, measured, predicted, lambda curve: curve["predicted"])
    best = predicted[predicted["best"]]
    ax.plot(best["gamma"], best["predicted"], marker="*", markersize=14, color="black", linestyle="",
            label="predicted optimum")
    ax.axhline(1, color="black", linestyle="--", linewidth=1)
    return against_gamma(fig, ax, "speedup over autoregressive (×)",
                         titled("Speedup: measured (95% CI) and predicted at every γ", heading))


def by_draft(ax: Any, done: pd.DataFrame, measured: Callable[[pd.DataFrame, str], str],
             predicted: pd.DataFrame | None, expected: Callable[[pd.DataFrame], pd.Series]) -> None:
    """Per draft, its measured cells (`measured` draws them and returns their colour) and, in that colour, dotted,
    its predicted curve at every γ: `expected` maps the draft's rows of `curves` to the plotted quantity."""
    for draft in ordered_drafts(done):
        colour = measured(done[done["draft"] == draft].sort_values("gamma"), f"draft {draft}")
        curve = predicted[predicted["draft"] == draft] if predicted is not None else pd.DataFrame()
        if not curve.empty:
            ax.plot(curve["gamma"], expected(curve), color=colour, linestyle=":", label=f"draft {draft}, predicted")


def against_gamma(fig: Figure, ax: Any, ylabel: str, caption: str) -> Figure:
    ax.set(xlabel="lookahead γ (draft tokens per verification)", ylabel=ylabel, title=caption)
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    return tight(fig)


def speedup_heatmap(frame: pd.DataFrame, heading: str, tolerance: float = TOLERANCE) -> Figure | None:
    done = finished(frame)
    pivot = done.pivot_table(index="draft", columns="gamma", values="speedup", aggfunc="median")
    pivot = pivot.reindex([d for d in ordered_drafts(done) if d in pivot.index])
    if pivot.empty:  # a published table of α alone
        return None
    fig = Figure(figsize=(6.4, 1.6 + 0.5 * max(1, len(pivot))))
    ax = fig.subplots()
    span = max(0.05, float((pivot - 1).abs().max().max())) if not pivot.empty else 1.0
    image = ax.imshow(pivot.to_numpy(dtype=float), cmap="RdYlGn", vmin=1 - span, vmax=1 + span, aspect="auto")
    ax.set_xticks(range(len(pivot.columns)), [str(int(g)) for g in pivot.columns])
    ax.set_yticks(range(len(pivot.index)), list(pivot.index))
    for (i, j), value in pd.DataFrame(pivot.to_numpy()).stack().dropna().items():
        ax.text(j, i, f"{value:.2f}×", ha="center", va="center", fontsize="small")
    ax.set(xlabel="lookahead γ", ylabel="draft", title=titled("Speedup over autoregressive decoding", heading))
    fig.colorbar(image, ax=ax, label="speedup (×)")
    return tight(fig)


def alpha_c_vs_params(frame: pd.DataFrame, heading: str, tolerance: float = TOLERANCE) -> Figure | None:
    """alpha does not depend on gamma for a correct implementation, so each draft's points over gamma should
    coincide; they are drawn separately so that a drift with gamma is visible."""
    done = finished(frame).dropna(subset=["draft_params", "alpha"])
    if done.empty:  # a method without a draft model
        return None
    fig = Figure(figsize=(9.6, 4.0))
    left, right = fig.subplots(1, 2)
    for gamma, cells in done.groupby("gamma"):
        cells = cells.sort_values("draft_params")
        left.plot(cells["draft_params"], cells["alpha"], marker="o", label=f"γ={int(gamma)}")
        right.plot(cells["draft_params"], cells["c"], marker="o", label=f"γ={int(gamma)}")
    left.set(xscale="log", xlabel="draft parameters", ylabel="α (acceptance, MLE)", ylim=(0, 1.02),
             title="Acceptance α")
    right.set(xscale="log", xlabel="draft parameters", ylabel="c (draft / target time per token)", ylim=(0, None),
              title="Cost ratio c")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:  # no points when the jobs did not record parameter counts
            ax.legend(fontsize="small")
    fig.suptitle(textwrap.fill(heading, 90), fontsize="medium")
    return tight(fig)


def measured_vs_predicted(frame: pd.DataFrame, heading: str, tolerance: float = TOLERANCE) -> Figure | None:
    done = finished(frame).dropna(subset=["predicted_speedup", "speedup"])
    if done.empty:  # nothing to predict for a method without a draft model
        return None
    fig = Figure(figsize=(5.2, 5.0))
    ax = fig.subplots()
    for draft in ordered_drafts(done):
        cells = done[done["draft"] == draft]
        ax.scatter(cells["predicted_speedup"], cells["speedup"], label=f"draft {draft}")
        for _, row in cells.iterrows():
            ax.annotate(f"γ{int(row['gamma'])}", (row["predicted_speedup"], row["speedup"]), fontsize="x-small",
                        xytext=(3, 3), textcoords="offset points")
    values = pd.concat([done["predicted_speedup"], done["speedup"]])
    low, high = (min(0.8, values.min() * 0.95), max(1.2, values.max() * 1.05)) if not values.empty else (0.5, 2)
    line = pd.Series([low, high])
    ax.plot(line, line, color="black", linewidth=1, label="measured = predicted")
    ax.fill_between(line, line * (1 - tolerance), line * (1 + tolerance), color="grey", alpha=0.15,
                    label=f"±{tolerance:g} tolerance")
    ax.set(xlim=(low, high), ylim=(low, high), xlabel="predicted speedup S (Leviathan et al.)",
           ylabel="measured speedup", title=titled("Measured against predicted speedup", heading))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return tight(fig)


PLOTS = {"latency_vs_gamma": latency_vs_gamma, "speedup_vs_gamma": speedup_vs_gamma,
         "speedup_heatmap": speedup_heatmap,
         "alpha_c_vs_params": alpha_c_vs_params, "measured_vs_predicted": measured_vs_predicted}


def figures(table: pd.DataFrame, tolerance: float = TOLERANCE) -> list[tuple[str, str, Figure]]:
    """(file stem, heading, figure) for every plot of every study group with a finished cell; a plot with
    nothing to show for its group (alpha of a method without a draft) is left out."""
    out = []
    for labels, frame in groups(table):
        if finished(frame).empty:
            continue
        heading = title(labels)
        for name, plot in PLOTS.items():
            fig = plot(frame, heading, tolerance)
            if fig is not None:
                out.append((f"{slug(heading)}__{name}", heading, fig))
    for group, found in itertools.groupby(scale.ladders(table), key=lambda ladder: ladder.group):
        out.append((f"{slug(group)}__draft_scale", group, draft_scale(list(found), group)))
    return out


def draft_scale(found: list[scale.Ladder], heading: str) -> Figure:
    """α against draft parameters (log axis, Scylla's fit) and against held-out perplexity (SDSL's fit), a colour
    per ladder, deep drafts drawn as squares."""
    fig = Figure(figsize=(10.5, 4.2))
    axes = fig.subplots(1, 2)
    for ladder in found:
        drafts = ladder.drafts
        fits = scale.fits(drafts)
        colour = None
        for ax, (law, (column, _)) in zip(axes, scale.LAWS.items(), strict=True):
            if drafts[column].isna().all():
                continue
            deep = drafts["layers"].fillna(1).astype(int).gt(1)
            (points,) = ax.plot(drafts.loc[~deep, column], drafts.loc[~deep, "alpha"], "o", color=colour,
                                label=ladder.heading)
            colour = points.get_color()
            ax.plot(drafts.loc[deep, column], drafts.loc[deep, "alpha"], "s", color=colour)
            if fits[law] is not None:
                line = drafts.sort_values(column)
                ax.plot(line[column], scale.fitted(line, law, fits[law]), "-", color=colour, alpha=0.6,
                        label=f"{law.split(':')[0]} fit, R² {fits[law]['r2']:.2f}")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("draft parameters (log)")
    axes[1].set_xlabel("draft held-out perplexity")
    for ax in axes:
        ax.set_ylabel("α (pooled over γ)")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a ladder without perplexities leaves its right panel empty
            ax.legend(fontsize=7)
    fig.suptitle(titled("α against draft scale (squares: deeper than one layer)", heading), fontsize=9)
    return tight(fig)


def save(table: pd.DataFrame, directory: Path, tolerance: float = TOLERANCE) -> list[Path]:
    """Write every figure as a PNG under `directory`, replacing an earlier aggregation's; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.png"):
        stale.unlink()
    paths = []
    for stem, _, fig in figures(table, tolerance):
        path = directory / f"{stem}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


def finished(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"].eq("done")]


def titled(what: str, heading: str) -> str:
    return f"{what}\n{textwrap.fill(heading, 60)}"


def tight(fig: Figure) -> Figure:
    fig.tight_layout()
    return fig


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=]+", "-", text).strip("-")
