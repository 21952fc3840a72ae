"""What a decoding call counts, and the metrics derived from those counts (defined in `specsweep.record`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from specsweep import theory


@dataclass
class DecodeStats:
    """Raw counts and timings of one or more decoding calls. Add two with `+`."""

    new_tokens: int = 0
    rounds: int = 0  # target verification forwards (speculative methods only)
    drafted: int = 0  # draft tokens proposed
    accepted: int = 0  # draft tokens accepted; the bonus or resampled token is not counted
    rejections: int = 0  # rounds that ended in a rejection
    accepted_per_position: list[int] = field(default_factory=list)  # index i: accepted at draft position i+1
    trace: list[list[int]] = field(default_factory=list)  # per round, in order: [drafted, accepted] (then one
    # token from the target); two stats added keep both traces, one after the other
    target_forwards: int = 0  # target forwards after the first (the prefill is timed apart)
    target_seconds: float = 0.0
    verify_forwards: int = 0  # of those, the ones that verified a whole lookahead (gamma drafts)
    verify_seconds: float = 0.0
    draft_forwards: int = 0  # draft forwards after the first
    draft_seconds: float = 0.0
    prefill_seconds: float = 0.0  # the first forward of each model, which reads the whole prompt
    seconds: float = 0.0  # wall time of the whole call

    def record_round(self, drafted: int, accepted: int, rejected: bool) -> None:
        self.rounds += 1
        self.drafted += drafted
        self.accepted += accepted
        self.rejections += int(rejected)
        self.trace.append([drafted, accepted])
        if len(self.accepted_per_position) < drafted:
            self.accepted_per_position += [0] * (drafted - len(self.accepted_per_position))
        for position in range(accepted):
            self.accepted_per_position[position] += 1

    def __add__(self, other: DecodeStats) -> DecodeStats:
        total = DecodeStats()
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "trace":
                total.trace = a + b
            elif isinstance(a, list):
                width = max(len(a), len(b))
                a, b = a + [0] * (width - len(a)), b + [0] * (width - len(b))
                setattr(total, f.name, [x + y for x, y in zip(a, b, strict=True)])
            else:
                setattr(total, f.name, a + b)
        return total

    @property
    def ms_per_token(self) -> float | None:
        """Wall time of the call(s) per new token; None before any token."""
        return _ratio(1e3 * self.seconds, self.new_tokens)

    def to_dict(self) -> dict[str, Any]:
        """The counts, as metrics.json keeps them (the per-round trace goes to samples.jsonl, per prompt)."""
        return {k: v for k, v in asdict(self).items() if k != "trace"}


@dataclass
class Generation:
    """What every decoding method returns."""

    tokens: torch.Tensor  # [N] the new tokens only
    stats: DecodeStats
    settings: dict[str, Any] = field(default_factory=dict)  # the effective settings the method ran with
    margins: torch.Tensor | None = None  # [N] top-1 minus top-2 target logit per step (autoregressive(margins=True))


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def derive(stats: DecodeStats, baseline: DecodeStats | None = None) -> dict[str, float | int | None]:
    """The derived metrics of `specsweep.record`. `baseline` is the target-only (autoregressive) run of the same job,
    whose one-token forwards give the denominator of c. A metric that is undefined is None."""
    gamma = len(stats.accepted_per_position)
    metrics: dict[str, float | int | None] = {
        "acceptance_rate": _ratio(stats.accepted, stats.drafted),
        "alpha": _ratio(stats.accepted, stats.accepted + stats.rejections),
        "tokens_per_round": _ratio(stats.new_tokens, stats.rounds),
        "drafts_per_round": _ratio(stats.drafted, stats.rounds),
        "ms_per_token": stats.ms_per_token,
        "tokens_per_s": _ratio(stats.new_tokens, stats.seconds),
        "draft_ms_per_forward": _ratio(1e3 * stats.draft_seconds, stats.draft_forwards),
        "target_ms_per_forward": _ratio(1e3 * stats.target_seconds, stats.target_forwards),
        # Time outside the models' forwards: sampling, acceptance tests, bookkeeping.
        "overhead_fraction": _ratio(
            stats.seconds - stats.target_seconds - stats.draft_seconds - stats.prefill_seconds, stats.seconds
        ),
        "c": None,
        "verify_cost": None,
        "predicted_speedup": None,
        "gamma_star": None,
    }
    if baseline is not None:
        step = _ratio(baseline.target_seconds, baseline.target_forwards)
        if step:
            draft_step = metrics["draft_ms_per_forward"]
            metrics["c"] = draft_step / (1e3 * step) if draft_step is not None else None
            # How much a (gamma+1)-token verification costs relative to a one-token step.
            verify = _ratio(stats.verify_seconds, stats.verify_forwards)
            metrics["verify_cost"] = verify / step if verify is not None else None
    alpha, c = metrics["alpha"], metrics["c"]
    if alpha is not None and c is not None and gamma:
        metrics["predicted_speedup"] = theory.predicted_speedup(alpha, gamma, c)
        metrics["gamma_star"] = theory.gamma_star(alpha, c)
    return metrics
