"""The study's diagnosis of a cell: measured far from predicted, greedy output that left autoregressive output, α
that depends on γ, and quality that changed where it should not."""

from __future__ import annotations

import pandas as pd

# Measured and predicted speedup disagree when their ratio is outside 1 +- TOLERANCE. The prediction is S_v,
# which prices a (gamma+1)-token verification at its measured cost (1.1-1.6 one-token steps on a CPU; Leviathan's
# S prices it at one, and over-predicts by 15-25% there); a wrong implementation or a noisy machine shows beyond.
TOLERANCE = 0.15
# Quality metrics the study shows beside their change against the baseline (scored in the same job); the
# others (ROUGE-1, ROUGE-2) are in results.csv.
QUALITY = {"rouge1": "ROUGE-1", "rougeL": "ROUGE-L", "pass_at_1": "pass@1"}
# A greedy, lossless method's quality equals the baseline's: a published change beyond rounding is a sign
# that its output was not the autoregressive output (where the paper did not report exact_match).
QUALITY_ROUNDING = 0.001 + 1e-9  # the last digit of a figure published to three decimals


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
