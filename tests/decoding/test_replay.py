"""Replay is exact: the rounds, forwards and tokens per round that `specsweep.rounds` derives from one
teacher-forced forward of the draft along the target's greedy output equal what speculative decoding counts, for
every draft kind that conditions on earlier drafts, every γ, with and without an EOS; under sampling, Σ min(p, q)."""

from __future__ import annotations

import pytest
import torch

from specsweep import rounds
from specsweep.decoding import Sampling, autoregressive, speculative
from specsweep.decoding.replay import acceptance_along, greedy_matches
from tests.decoding.helpers import eos_after

BUDGET = 20


def replay_matches_measure(target, draft, prompts, eos=None) -> None:
    """With an EOS, a round's recorded drafts stop at an EOS the draft proposed after its first miss (which the
    trace cannot know); its forwards, kept drafts and tokens are still exact."""
    vocab = target.get_output_embeddings().out_features
    for prompt in prompts:
        base = autoregressive(target, prompt, max_new_tokens=BUDGET, eos_token_id=eos)
        matches = greedy_matches(draft, torch.cat([prompt[0], base.tokens])[None], prompt.shape[1], vocab)
        for gamma in range(1, 8):
            out = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=BUDGET, eos_token_id=eos)
            assert out.tokens.tolist() == base.tokens.tolist()
            found = rounds.greedy_rounds(matches, gamma, BUDGET)
            counted = rounds.count(found, base.tokens.numel())
            s = out.stats
            assert [r.accepted for r in found] == [accepted for _, accepted in s.trace], (gamma, prompt.shape)
            if eos is None:
                assert [r.lookahead for r in found] == [drafted for drafted, _ in s.trace]
            assert (counted.rounds - 1, counted.draft_forwards, counted.accepted) == \
                (s.target_forwards, s.draft_forwards, s.accepted)
            assert counted.tokens_per_round == s.new_tokens / s.rounds


@pytest.mark.parametrize("kind", ["near", "far", "unigram", "bigram"])
def test_greedy_replay_equals_what_speculative_decoding_counts(kind, target, near_draft, far_draft, ngrams, prompts):
    draft = {"near": near_draft, "far": far_draft}.get(kind) or ngrams[kind]
    replay_matches_measure(target, draft, prompts[:4])


def test_greedy_replay_is_exact_where_an_eos_ends_the_output(target, near_draft, prompts):
    prompt = prompts[0]
    replay_matches_measure(target, near_draft, [prompt], eos=eos_after(target, prompt, 9))


def test_a_draft_identical_to_the_target_matches_every_token(target, prompts):
    base = autoregressive(target, prompts[1], max_new_tokens=BUDGET)
    sequence = torch.cat([prompts[1][0], base.tokens])[None]
    assert all(greedy_matches(target, sequence, prompts[1].shape[1], 96))


def test_acceptance_along_the_trajectory_is_one_for_the_target_itself_and_less_for_another(target, near_draft,
                                                                                         prompts):
    sampling = Sampling(temperature=1.0)
    base = autoregressive(target, prompts[2], max_new_tokens=BUDGET, sampling=sampling,
                          generator=torch.Generator().manual_seed(0))
    sequence = torch.cat([prompts[2][0], base.tokens])[None]
    itself = acceptance_along(target, target, sequence, prompts[2].shape[1], sampling)
    other = acceptance_along(target, near_draft, sequence, prompts[2].shape[1], sampling)
    assert itself == pytest.approx([1.0] * BUDGET, abs=1e-5)
    assert all(0 <= a <= 1 for a in other) and sum(other) < BUDGET - 1
