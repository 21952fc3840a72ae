"""transformers' own candidate decoding (`specsweep.decoding.hf`): assisted generation and prompt lookup give the
target's greedy output, stop at the same EOS and are counted by our engine's rules, and adapt their lookahead only
as asked."""

from __future__ import annotations

import copy

import pytest
import torch

from specsweep.decoding import assisted, autoregressive, prompt_lookup, speculative
from tests.decoding.helpers import MAX_NEW, eos_after, reference


@pytest.mark.parametrize("gamma", [1, 4])
def test_assisted_equals_autoregressive(target, near_draft, prompts, expected, gamma):
    draft = copy.deepcopy(near_draft)
    for prompt, tokens in zip(prompts, expected, strict=True):
        out = assisted(target, draft, prompt, gamma=gamma, max_new_tokens=MAX_NEW)
        assert out.tokens.tolist() == tokens
        assert out.settings["num_assistant_tokens"] == gamma
        stats = out.stats
        assert stats.new_tokens == stats.accepted + stats.rounds
        assert len(stats.accepted_per_position) == gamma  # never more than gamma drafts in a round


@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_assisted_lookahead_is_pinned(target, prompts, gamma):
    """With an identical draft, transformers' default (up to 20 drafts, confidence threshold 0.4) would
    draft far past gamma; pinned, it must draft and accept exactly what our engine does."""
    max_new = 4 * (gamma + 1) + 2
    out = assisted(target, copy.deepcopy(target), prompts[0], gamma=gamma, max_new_tokens=max_new)
    ours = speculative(target, target, prompts[0], gamma=gamma, max_new_tokens=max_new)
    assert out.tokens.tolist() == ours.tokens.tolist()
    fields = ("new_tokens", "rounds", "drafted", "accepted", "rejections", "accepted_per_position")
    assert [getattr(out.stats, f) for f in fields] == [getattr(ours.stats, f) for f in fields]
    assert (out.stats.rounds, out.stats.rejections) == (5, 0)


def test_prompt_lookup_equals_autoregressive(target, prompts, expected):
    drafted = 0
    for prompt, tokens in zip(prompts, expected, strict=True):
        # A prompt that repeats itself gives the n-gram lookup something to copy.
        repeated = torch.cat([prompt, torch.tensor([tokens[:8]]), prompt], dim=1)
        want = reference(target, repeated)
        out = prompt_lookup(target, repeated, gamma=3, max_new_tokens=MAX_NEW)
        assert out.tokens.tolist() == want
        assert out.stats.new_tokens == out.stats.accepted + out.stats.rounds
        drafted += out.stats.drafted
    assert drafted > 0


@pytest.mark.parametrize("gamma", [2, 4])
def test_eos_in_hf_methods_and_their_counts(target, near_draft, prompts, gamma):
    """transformers' methods stop at the same EOS and, counted by the same rules, report the same rounds as our
    engine: an accepted EOS draft is accepted, a rejection replaced by EOS is a rejection."""
    fields = ("new_tokens", "rounds", "drafted", "accepted", "rejections", "accepted_per_position")
    ended_on_draft = []
    for prompt in prompts[:6]:
        eos = eos_after(target, prompt, 4)
        want = autoregressive(target, prompt, max_new_tokens=40, eos_token_id=eos).tokens.tolist()
        # An identical draft proposes the EOS itself; the near draft mostly meets it on a rejection.
        for draft in (target, near_draft):
            ours = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=40, eos_token_id=eos)
            theirs = assisted(target, copy.deepcopy(draft), prompt, gamma=gamma, max_new_tokens=40, eos_token_id=eos)
            assert ours.tokens.tolist() == theirs.tokens.tolist() == want
            if draft is target:  # with the near draft transformers' drafts differ on near-ties (see hf.py)
                assert [getattr(theirs.stats, f) for f in fields] == [getattr(ours.stats, f) for f in fields]
            # Every round adds one token besides its accepted drafts, except a round ending on an accepted EOS.
            ended_on_draft.append(ours.stats.new_tokens == ours.stats.accepted + ours.stats.rounds - 1)
        assert prompt_lookup(target, prompt, gamma=gamma, max_new_tokens=40, eos_token_id=eos).tokens.tolist() == want
    assert any(ended_on_draft) and not all(ended_on_draft)


def test_prompt_lookup_counts_only_drafts_within_the_budget(target):
    # A prompt that repeats, so every round finds a long match; the budget ends mid-match.
    prompt = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12] * 3])
    for max_new in (1, 2, 3, 6):
        stats = prompt_lookup(target, prompt, gamma=4, max_new_tokens=max_new).stats
        assert stats.new_tokens == max_new == stats.accepted + stats.rounds
        # transformers proposes 4 copied tokens whatever the budget; only those that fit count as drafted.
        assert stats.accepted <= stats.drafted
        if max_new <= 2:
            assert stats.drafted <= max_new - 1


def test_no_cache_is_refused_by_transformers_methods(target, near_draft, prompts):
    with pytest.raises(ValueError, match="use_cache=False.*assisted"):
        assisted(target, copy.deepcopy(near_draft), prompts[0], gamma=2, max_new_tokens=4, use_cache=False)


@pytest.mark.parametrize("schedule,threshold", [("heuristic", 0.0), ("heuristic_transient", 0.0), ("constant", 0.5)])
def test_assisted_adapts_as_transformers_does_and_records_it(target, near_draft, prompts, expected, schedule,
                                                             threshold):
    draft = copy.deepcopy(near_draft)
    drafted = rounds = 0
    for prompt, tokens in zip(prompts, expected, strict=True):
        out = assisted(target, draft, prompt, gamma=3, max_new_tokens=MAX_NEW, schedule=schedule,
                       confidence_threshold=threshold)
        assert out.tokens.tolist() == tokens
        drafted, rounds = drafted + out.stats.drafted, rounds + out.stats.rounds
        settings = out.settings
        assert settings["num_assistant_tokens_schedule"] == schedule
        assert settings["assistant_confidence_threshold"] == threshold
        assert settings["num_assistant_tokens_end"] >= 1
    assert drafted != 3 * rounds  # the lookahead moved (a pinned one drafts 3 a round but for the budget's end)


def test_a_heuristic_lookahead_carries_into_the_next_call(target, near_draft, prompts):
    draft = copy.deepcopy(near_draft)
    first = assisted(target, draft, prompts[0], gamma=3, max_new_tokens=MAX_NEW, schedule="heuristic")
    second = assisted(target, draft, prompts[1], gamma=3, max_new_tokens=MAX_NEW, schedule="heuristic")
    assert second.settings["num_assistant_tokens_start"] == first.settings["num_assistant_tokens_end"]
    transient = assisted(target, draft, prompts[1], gamma=3, max_new_tokens=MAX_NEW, schedule="heuristic_transient")
    assert transient.settings["num_assistant_tokens_start"] == 3


def test_assisted_refuses_an_unknown_schedule(target, near_draft, prompts):
    with pytest.raises(ValueError, match="schedule='sometimes' is invalid"):
        assisted(target, copy.deepcopy(near_draft), prompts[0], gamma=3, max_new_tokens=4, schedule="sometimes")
