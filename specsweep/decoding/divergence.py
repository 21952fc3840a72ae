"""Where greedy output leaves the autoregressive output, and how close the target's choice was there: what tells
a near-tie broken by rounding from a bug."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from specsweep.decoding.engine import autoregressive


def first_divergence(tokens: list[int], reference: list[int]) -> int | None:
    """The first position where `tokens` leaves `reference` (None when identical); a stop that one makes
    and the other does not counts at the shorter one's end."""
    for position, (mine, theirs) in enumerate(zip(tokens, reference, strict=False)):
        if mine != theirs:
            return position
    return None if len(tokens) == len(reference) else min(len(tokens), len(reference))


def divergence_margin(target: PreTrainedModel, input_ids: torch.Tensor, position: int, **kwargs) -> float | None:
    """The target's top-1 minus top-2 logit where greedy autoregressive decoding chose the token at `position`:
    a margin within the dtype's rounding is a near-tie that a (γ+1)-token verification may break the other way
    (half precision is not batch-invariant). From the baseline's own step-by-step forwards, recomputed untimed."""
    out = autoregressive(target, input_ids, max_new_tokens=position + 1, margins=True, instrumented=False, **kwargs)
    return float(out.margins[position]) if out.margins.numel() > position else None
