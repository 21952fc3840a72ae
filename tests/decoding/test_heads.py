"""Medusa heads (`specsweep.decoding.heads`) keep greedy speculative output exactly the target's, and draft
something the target accepts, so the check has teeth."""

from __future__ import annotations

import pytest
import torch

from specsweep.decoding import medusa
from specsweep.models import medusa as medusa_heads
from tests.decoding.helpers import MAX_NEW, check_exact


@pytest.fixture(scope="module")
def heads(target, stream) -> torch.nn.Module:
    torch.manual_seed(0)
    return medusa_heads.train(target, stream, heads=3, steps=60, batch_size=8, seq_len=32, lr=3e-3, progress=False)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("gamma", [1, 2, 3])
def test_medusa_is_exact(target, heads, prompts, expected, gamma, use_cache):
    rounds, drafted, _, _ = check_exact(lambda p: medusa(target, p, heads=heads, gamma=gamma, max_new_tokens=MAX_NEW,
                                                         use_cache=use_cache), prompts, expected)
    assert drafted <= gamma * rounds


def test_medusa_refuses_more_lookahead_than_heads(target, heads, prompts):
    with pytest.raises(ValueError, match="gamma=4 is more than the 3 Medusa heads"):
        medusa(target, prompts[0], heads=heads, gamma=4, max_new_tokens=4)
