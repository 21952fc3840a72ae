"""Per-forward timing (`specsweep.decoding.timing`): it books every forward, costs nothing when off, and changes no
output. On CUDA it records events instead of synchronising; the `cuda` tests check those against wall time."""

from __future__ import annotations

import pytest
import torch

from specsweep.decoding import DecodeStats, assisted, autoregressive, speculative
from specsweep.decoding.timing import Clock

METHODS = {
    "autoregressive": lambda target, draft, prompt, **kw: autoregressive(target, prompt, **kw),
    "speculative": lambda target, draft, prompt, **kw: speculative(target, draft, prompt, gamma=3, **kw),
    "assisted": lambda target, draft, prompt, **kw: assisted(target, draft, prompt, gamma=3, **kw),
}


def test_the_clock_books_each_forward_and_the_wall_time():
    stats = DecodeStats()
    clock = Clock(torch.device("cpu"), stats)
    clock.start()
    for index in range(3):
        mark = clock.before()
        torch.ones(64, 64) @ torch.ones(64, 64)
        clock.after(mark, "target", index, full=index == 2)
    clock.stop()
    assert (stats.target_forwards, stats.verify_forwards) == (2, 1)  # the first forward is the prefill
    assert 0 < stats.target_seconds + stats.prefill_seconds <= stats.seconds


@pytest.mark.parametrize("name", METHODS)
def test_without_instrumentation_nothing_is_timed_per_forward_and_the_output_is_the_same(name, target, near_draft,
                                                                                      prompts):
    run = METHODS[name]
    timed = run(target, near_draft, prompts[0], max_new_tokens=12)
    plain = run(target, near_draft, prompts[0], max_new_tokens=12, instrumented=False)
    assert plain.tokens.tolist() == timed.tokens.tolist()
    assert timed.stats.target_seconds > 0 and timed.stats.seconds > 0
    assert plain.stats.target_seconds == plain.stats.draft_seconds == plain.stats.prefill_seconds == 0
    assert plain.stats.seconds > 0 and plain.stats.rounds == timed.stats.rounds  # the counts do not need the timer


@pytest.mark.cuda
@pytest.mark.parametrize("name", METHODS)
def test_on_cuda_the_event_times_of_the_forwards_fit_inside_the_wall_time(name, target, near_draft, prompts):
    gpu_target, gpu_draft = (m.to("cuda") for m in (target, near_draft))
    try:
        run = METHODS[name]
        run(gpu_target, gpu_draft, prompts[0].cuda(), max_new_tokens=12)  # warm-up
        out = run(gpu_target, gpu_draft, prompts[0].cuda(), max_new_tokens=24)
        forwards = out.stats.target_seconds + out.stats.draft_seconds + out.stats.prefill_seconds
        assert 0 < forwards <= out.stats.seconds * 1.01  # events time the device; the wall time holds them all
        cpu = run(target.to("cpu"), near_draft.to("cpu"), prompts[0], max_new_tokens=24)
        assert out.tokens.tolist() == cpu.tokens.tolist()  # float32 on both: the same greedy output
    finally:
        target.to("cpu"), near_draft.to("cpu")
