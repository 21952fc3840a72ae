"""Interleaved timing: every method runs on the same prompt back to back, in a fresh random order each time,
after a warm-up, so machine noise (other processes, frequency scaling) hits them all alike."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import torch

from specsweep.decoding.stats import Generation

Call = Callable[[torch.Tensor, int], Generation]  # (prompt [1, S], call index) -> Generation


def warm_up(methods: dict[str, Call], prompt: torch.Tensor, times: int) -> None:
    """Untimed calls: the allocator, kernel selection and lazy imports settle before anything is measured."""
    for _ in range(times):
        for method in methods.values():
            method(prompt, -1)


def interleave(methods: dict[str, Call], prompts: list[torch.Tensor], repeats: int, seed: int = 0
               ) -> Iterator[tuple[int, int, dict[str, Generation]]]:
    """Yield (repeat, prompt index, {name: Generation}) for every prompt of every repeat. The call index
    passed to each method is unique per (repeat, prompt), so a method can seed its sampling from it."""
    order = random.Random(seed)
    names = list(methods)
    for repeat in range(repeats):
        for i, prompt in enumerate(prompts):
            call = repeat * len(prompts) + i
            outputs = {name: methods[name](prompt, call) for name in order.sample(names, len(names))}
            yield repeat, i, {name: outputs[name] for name in names}
