"""The runner's caches (`specsweep.decoding.runner`): a static cache rolls rejections back by position and keeps
greedy output exact; a draft that keeps no KV cache reads the sequence, even on the fast path."""

from __future__ import annotations

import copy

import pytest
import torch

from specsweep.decoding import autoregressive, speculative
from specsweep.models.compile import compile_forward
from tests.decoding.helpers import MAX_NEW, check_exact


@pytest.mark.parametrize("gamma", [1, 3, 7])
def test_a_static_cache_keeps_greedy_output_exact(target, near_draft, far_draft, prompts, expected, gamma):
    """optimization.cache=static: rejections roll back by moving the write position, never by cropping."""
    for prompt, tokens in zip(prompts, expected, strict=True):
        assert autoregressive(target, prompt, max_new_tokens=MAX_NEW, cache="static").tokens.tolist() == tokens
    accepted = rejections = 0
    for draft in (near_draft, far_draft):
        for prompt, tokens in zip(prompts, expected, strict=True):
            out = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=MAX_NEW, cache="static")
            assert out.tokens.tolist() == tokens
            assert out.settings["cache"] == {"target": "StaticCache", "draft": "StaticCache"}
            accepted, rejections = accepted + out.stats.accepted, rejections + out.stats.rejections
    assert accepted > 0 and rejections > 0
    same = speculative(target, target, prompts[0], gamma=gamma, max_new_tokens=MAX_NEW, cache="static")
    assert same.stats.rejections == 0 and same.tokens.tolist() == expected[0]  # one cache per role, not shared


def test_an_ngram_draft_on_the_fast_path_reads_the_sequence(target, ngrams, prompts, expected):
    """cache=static with compile: the target decodes into its static cache through fixed-shape graphs; the table,
    which keeps no KV cache, has none, and is compiled for dynamic lengths as its input grows."""
    fast_target, bigram = copy.deepcopy(target), copy.deepcopy(ngrams["bigram"])
    for model in (fast_target, bigram):
        compile_forward(model, "eager", fixed_shapes=True)
    outs = []

    def decode(prompt: torch.Tensor):
        outs.append(speculative(fast_target, bigram, prompt, gamma=3, max_new_tokens=MAX_NEW, cache="static"))
        return outs[-1]

    check_exact(decode, prompts, expected)
    assert all(out.settings["cache"] == {"target": "StaticCache", "draft": None} for out in outs)
