"""Greedy output that leaves autoregressive output: where it leaves, and the target's top-1 − top-2 logit margin
there, so that the study can tell a half-precision near-tie (rounding) from a bug."""

from __future__ import annotations

import copy

import pandas as pd
import torch

from specsweep.decoding import autoregressive
from specsweep.decoding.divergence import divergence_margin, first_divergence
from specsweep.study import diagnose


def test_first_divergence():
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 4], [1, 2, 3]) == 2
    assert first_divergence([1, 2], [1, 2, 3]) == 2  # one stopped (EOS) where the other went on


def test_margins_are_the_gap_between_the_two_best_logits_at_each_step(target, prompts):
    out = autoregressive(target, prompts[0], max_new_tokens=6, margins=True, instrumented=False)
    seq = torch.cat([prompts[0], out.tokens[None, :-1]], dim=1)
    with torch.no_grad():
        top = target(seq).logits[0, -6:].topk(2, dim=-1).values
    assert torch.allclose(out.margins, top[:, 0] - top[:, 1], atol=1e-4)


def test_a_constructed_near_tie_is_measured_as_one(target, prompts):
    """A target whose output embedding has a near-copy of the row of the token it chooses at step 3: the runner-up
    trails by a rounding error there, and a divergence at that step is a near-tie of float32."""
    chosen = autoregressive(target, prompts[0], max_new_tokens=4).tokens.tolist()[3]
    tied = copy.deepcopy(target)
    with torch.no_grad():
        head = tied.get_output_embeddings().weight
        twin = (chosen + 1) % head.shape[0]
        head[twin] = head[chosen] * (1 - 1e-6)
    assert autoregressive(tied, prompts[0], max_new_tokens=4).tokens.tolist()[3] == chosen
    assert divergence_margin(tied, prompts[0], 3) <= diagnose.NEAR_TIE["float32"]
    assert divergence_margin(target, prompts[0], 3) > diagnose.NEAR_TIE["float32"]  # the unmodified target: no tie


def row(margin: float | None, dtype: str = "bfloat16") -> pd.Series:
    return pd.Series({"sampling.temperature": 0.0, "exact_match": 0.9, "divergence_margin": margin,
                      "target_dtype": dtype, "speedup": float("nan")})


def test_the_study_tells_a_near_tie_from_a_divergence_rounding_cannot_explain():
    assert diagnose.flags(row(0.0625), 0.15) == "≈ diverged at a near-tie (margin 0.0625 ≤ 0.25 in bfloat16)"
    assert diagnose.flags(row(1.5), 0.15).startswith("✗ diverged: not explained by rounding (margin 1.5")
    assert diagnose.flags(row(0.0625, "float32"), 0.15).startswith("✗ diverged: not explained by rounding")
    assert diagnose.flags(row(None), 0.15) == "✗ greedy output differs from autoregressive"  # margin unknown
