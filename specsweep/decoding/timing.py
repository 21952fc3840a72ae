"""Per-forward timing that does not change what it times.

`c` and `verify_cost` need the time of each forward, and `ms_per_token` the wall time of a whole generation call.
Synchronising the device around every forward would give both, but on a GPU it stops the host from queueing the
next kernels while the device runs the last ones, and speculative decoding, with γ + 1 small forwards a round, would
pay for that more than autoregressive decoding: the speedup would be that of an instrumented loop. So:

- CUDA: a pair of CUDA events is recorded on the current stream around each forward and read once, after the call
  has ended (`Clock.stop`); the host never waits for the device between forwards.
- CPU: `time.perf_counter` around the forward; CPU kernels run on the calling thread, so no synchronisation is
  involved and the host's clock is the device's.
- Other accelerators (MPS, XPU): synchronise before and after each forward, as a portable fallback.
- Off (`enabled=False`): nothing per forward, the control that shows the timing costs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from specsweep.decoding.stats import DecodeStats


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type != "cpu" and hasattr(getattr(torch, device.type, None), "synchronize"):
        getattr(torch, device.type).synchronize()


def record_forward(stats: DecodeStats, role: str, index: int, seconds: float, full: bool = False,
                   drafts: int = 1) -> None:
    """Book the `index`-th forward of a model ("target" or "draft") in one generation call.
    `full`: a target forward that verified a whole lookahead of drafts (what verify_cost is about).
    `drafts`: the tokens a draft forward proposed. Medusa's heads propose a whole round in one call, and counting
    it as that many forwards keeps c the cost per drafted token, which is what Leviathan et al.'s γc + 1 reads."""
    if index == 0:  # the first forward reads the whole prompt: it says nothing about a decoding step
        stats.prefill_seconds += seconds
    elif role == "target":
        stats.target_forwards += 1
        stats.target_seconds += seconds
        if full:
            stats.verify_forwards += 1
            stats.verify_seconds += seconds
    else:
        stats.draft_forwards += drafts
        stats.draft_seconds += seconds


@dataclass
class Clock:
    """The wall time of one generation call and the time of each of its forwards, booked into `stats`."""

    device: torch.device
    stats: DecodeStats
    enabled: bool = True  # time each forward
    pending: list[tuple[str, int, bool, int, Any, Any]] = field(default_factory=list)  # CUDA: (role, index, full,
    # drafts, start, end)
    started: float = 0.0

    def start(self) -> None:
        """The call begins: nothing queued before it counts."""
        synchronize(self.device)
        self.started = time.perf_counter()

    def before(self) -> Any:
        """A forward is about to be queued; returns what `after` needs."""
        if not self.enabled:
            return None
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        if self.device.type != "cpu":
            synchronize(self.device)
        return time.perf_counter()

    def after(self, mark: Any, role: str, index: int, full: bool = False, drafts: int = 1) -> None:
        """The forward is queued (CUDA) or done (elsewhere). `full`, `drafts`: see `record_forward`."""
        if not self.enabled:
            return
        if self.device.type == "cuda":
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self.pending.append((role, index, full, drafts, mark, end))
            return
        if self.device.type != "cpu":
            synchronize(self.device)
        record_forward(self.stats, role, index, time.perf_counter() - mark, full, drafts)

    def stop(self) -> None:
        """The call ends: wait for the device once, take the wall time, then read the forwards' events."""
        synchronize(self.device)
        self.stats.seconds = time.perf_counter() - self.started
        for role, index, full, drafts, start, end in self.pending:
            record_forward(self.stats, role, index, start.elapsed_time(end) / 1e3, full, drafts)
        self.pending.clear()
