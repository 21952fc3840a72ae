"""What the decoding tests share: the greedy reference, an EOS to stop at, and the exactness check."""

from __future__ import annotations

import pytest
import torch

from specsweep.decoding import autoregressive

MAX_NEW = 24


def reference(target, prompt) -> list[int]:
    """transformers' own greedy decoding."""
    out = target.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                          max_new_tokens=MAX_NEW, min_new_tokens=MAX_NEW)
    return out[0, prompt.shape[1]:].tolist()


def eos_after(target, prompt, position: int) -> int:
    """A token id that greedy decoding first emits at `position`, to use as EOS."""
    tokens = autoregressive(target, prompt, max_new_tokens=40).tokens.tolist()
    for i, token in enumerate(tokens):
        if token not in tokens[:i] and i >= position:
            return token
    pytest.fail("no fresh token to use as EOS")


def check_exact(decode, prompts, expected) -> tuple[int, int, int, int]:
    """Run `decode` on every prompt, assert greedy exactness, and return the summed counts."""
    rounds = drafted = accepted = rejections = 0
    for prompt, tokens in zip(prompts, expected, strict=True):
        out = decode(prompt)
        assert out.tokens.tolist() == tokens
        stats = out.stats
        rounds, drafted = rounds + stats.rounds, drafted + stats.drafted
        accepted, rejections = accepted + stats.accepted, rejections + stats.rejections
    assert accepted > 0 and rejections > 0  # both branches ran
    return rounds, drafted, accepted, rejections
