"""The study as a document: its sections (the tables of `specsweep.study.tables` and `specsweep.study.pairs`, in
order), the note that says how to read them, and study.md."""

from __future__ import annotations

import pandas as pd

from specsweep import record
from specsweep.study import pairs, scale
from specsweep.study.cells import groups, title
from specsweep.study.diagnose import TOLERANCE
from specsweep.study.format import number, table_markdown
from specsweep.study.predict import predicted_grid
from specsweep.study.tables import (
    beside_published,
    best_cells,
    combined_sections,
    grid,
    planned_sweeps,
    prediction_held,
    skipped_cells,
)


def sections(table: pd.DataFrame, tolerance: float = TOLERANCE) -> list[tuple[str, pd.DataFrame]]:
    """The study as (heading, formatted table) pairs: the optimum first, the optimisation table when the
    sweep timed the reference row, then one grid per group, then the jobs that did not finish."""
    found = list(groups(table))
    out = [("Optimal draft and γ per target (measured, with its ties, and predicted at every γ)", best_cells(found))]
    out += combined_sections(table)
    matched = beside_published(table)
    if not matched.empty:
        out.append(("Published beside measured (same target, method, draft and γ)", matched))
    alphas = pairs.alpha_table(table)
    if not alphas.empty:
        out.append(("α per pair, in the shape of Leviathan et al.'s α table (M_p, M_q, sampling)", alphas))
    adaptive = pairs.adaptive_table(table)
    if not adaptive.empty:
        out.append(("Adaptive lookahead beside the best fixed γ of the same draft", adaptive))
    out += scale.sections(table)
    held = prediction_held(found)
    if not held.empty:
        out.append(("How often the prediction from traces and a latency profile held", held))
    planned = planned_sweeps(table)
    if not planned.empty:
        out.append(("Planned sweeps: what the planner measured", planned))
        skipped = skipped_cells(table)
        if not skipped.empty:
            out.append(("Cells the planner skipped, and why", skipped))
    for labels, frame in found:
        out.append((title(labels), grid(frame, tolerance)))
        predicted = predicted_grid(frame)
        if not predicted.empty:
            out.append((f"Predicted speedup at every γ (S_v from the pair's α; ★ optimum, · not measured) · "
                        f"{title(labels)}", predicted))
    unfinished = table[~table["status"].isin(["done", "skipped"])]
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
