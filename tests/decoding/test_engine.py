"""Our decoding loops (`specsweep.decoding.engine`) are lossless: greedy speculative output equals greedy
autoregressive output token for token, whatever the draft (a smaller model, an n-gram table, the adaptive stop rule),
the budget or the EOS."""

from __future__ import annotations

import copy

import pytest
import torch

from specsweep.decoding import Sampling, assisted, autoregressive, derive, speculative
from tests.decoding.helpers import MAX_NEW, check_exact, eos_after


@pytest.mark.parametrize("use_cache", [True, False])
def test_autoregressive_equals_generate(target, prompts, expected, use_cache):
    for prompt, tokens in zip(prompts, expected, strict=True):
        assert autoregressive(target, prompt, max_new_tokens=MAX_NEW, use_cache=use_cache).tokens.tolist() == tokens


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("gamma", range(1, 8))
def test_speculative_equals_autoregressive(target, near_draft, far_draft, prompts, expected, gamma, use_cache):
    accepted = rejections = 0
    for draft in (near_draft, far_draft):
        for prompt, tokens in zip(prompts, expected, strict=True):
            out = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=MAX_NEW, use_cache=use_cache)
            assert out.tokens.tolist() == tokens
            accepted, rejections = accepted + out.stats.accepted, rejections + out.stats.rejections
    # The check has teeth only if both the accept and the reject branch ran.
    assert accepted > 0 and rejections > 0


@pytest.mark.parametrize("gamma", [1, 3, 7])
@pytest.mark.parametrize("use_cache", [True, False])
def test_draft_identical_to_target_accepts_everything(target, prompts, gamma, use_cache):
    # 4 full rounds of gamma + 1 tokens, then a short last round of 2 tokens.
    max_new = 4 * (gamma + 1) + 2
    for prompt in prompts[:4]:
        out = speculative(target, target, prompt, gamma=gamma, max_new_tokens=max_new, use_cache=use_cache)
        stats = out.stats
        assert stats.rounds == 5
        assert stats.rejections == 0
        assert stats.accepted == 4 * gamma + 1
        assert stats.drafted == 4 * gamma + 1  # the last round drafts only what the budget allows
        assert stats.accepted_per_position == [5] + [4] * (gamma - 1)
        assert derive(stats)["alpha"] == 1.0


def test_draft_with_a_larger_embedding(target, prompts, expected):
    """Same tokenizer, padded embeddings (Pythia sizes differ so): the draft's extra ids are never proposed."""
    from tests.helpers import tiny_model

    draft = tiny_model(seed=3, vocab=128)
    for prompt, tokens in zip(prompts, expected, strict=True):
        assert speculative(target, draft, prompt, gamma=3, max_new_tokens=MAX_NEW).tokens.tolist() == tokens


def test_target_with_a_larger_embedding(target, near_draft, prompts, expected):
    """The target padded to 128 rows (new rows are the mean of the others, as transformers pads): q is 0 on
    the ids the draft lacks, so p keeps its whole support and greedy output is unchanged."""
    padded = copy.deepcopy(target)
    padded.resize_token_embeddings(128)
    for prompt, tokens in zip(prompts, expected, strict=True):
        assert autoregressive(padded, prompt, max_new_tokens=MAX_NEW).tokens.tolist() == tokens
        assert speculative(padded, near_draft, prompt, gamma=3, max_new_tokens=MAX_NEW).tokens.tolist() == tokens
    with pytest.raises(ValueError, match="outside the draft's vocabulary"):
        speculative(padded, near_draft, torch.tensor([[5, 100]]), gamma=3, max_new_tokens=4)


@pytest.mark.parametrize("max_new", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("gamma", [1, 2, 7])
def test_max_new_tokens_is_exact(target, near_draft, prompts, max_new, gamma):
    want = autoregressive(target, prompts[1], max_new_tokens=max_new).tokens.tolist()
    for draft in (near_draft, target):  # target as draft: every round wants its bonus token
        out = speculative(target, draft, prompts[1], gamma=gamma, max_new_tokens=max_new)
        assert out.tokens.tolist() == want and len(want) == max_new
        assert out.stats.new_tokens == out.stats.accepted + out.stats.rounds


@pytest.mark.parametrize("gamma", [1, 3, 7])
@pytest.mark.parametrize("use_cache", [True, False])
def test_eos_stops_where_autoregressive_stops(target, near_draft, prompts, gamma, use_cache):
    for prompt in prompts[:6]:
        eos = eos_after(target, prompt, 5)
        want = autoregressive(target, prompt, max_new_tokens=40, eos_token_id=eos, use_cache=use_cache)
        assert want.tokens[-1].item() == eos and len(want.tokens) < 40
        # An identical draft accepts the EOS as a draft, mid-round; the near draft mostly meets it on rejection.
        for draft in (target, near_draft):
            out = speculative(target, draft, prompt, gamma=gamma, max_new_tokens=40, eos_token_id=eos,
                              use_cache=use_cache)
            assert out.tokens.tolist() == want.tokens.tolist()
            assert out.stats.accepted <= out.stats.drafted
        # A list of EOS ids works as transformers' does.
        want = autoregressive(target, prompt, max_new_tokens=40, eos_token_id=[95, eos], use_cache=use_cache)
        out = speculative(target, near_draft, prompt, gamma=gamma, max_new_tokens=40, eos_token_id=[95, eos],
                          use_cache=use_cache)
        assert out.tokens.tolist() == want.tokens.tolist()


def test_sampled_generation_is_reproducible_with_a_generator(target, near_draft, prompts):
    sampling = Sampling(temperature=0.9, top_p=0.9)
    for method, extra in ((speculative, {"draft": near_draft}), (assisted, {"draft": copy.deepcopy(near_draft)})):
        outs = [method(target, input_ids=prompts[3], gamma=3, max_new_tokens=16, sampling=sampling,
                       generator=torch.Generator().manual_seed(7), **extra).tokens.tolist() for _ in range(2)]
        assert outs[0] == outs[1] and len(outs[0]) == 16


@pytest.mark.parametrize("kind", ["unigram", "bigram"])
@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("gamma", [1, 3])
def test_ngram_drafts_are_exact(target, ngrams, prompts, expected, kind, use_cache, gamma):
    check_exact(lambda p: speculative(target, ngrams[kind], p, gamma=gamma, max_new_tokens=MAX_NEW,
                                      use_cache=use_cache), prompts, expected)


def test_the_bigram_accepts_more_than_the_unigram(target, ngrams, prompts, expected):
    """Leviathan et al.'s ordering, on a target whose own text the tables were fitted on."""
    rates = {}
    for kind, draft in ngrams.items():
        _, drafted, accepted, _ = check_exact(lambda p, d=draft: speculative(target, d, p, gamma=3,
                                                                           max_new_tokens=MAX_NEW),
                                              prompts, expected)
        rates[kind] = accepted / drafted
    assert rates["bigram"] > rates["unigram"]


@pytest.mark.parametrize("use_cache", [True, False])
def test_the_stop_rule_is_exact_and_adapts(target, near_draft, prompts, expected, use_cache):
    gamma = 5
    rounds, drafted, _, _ = check_exact(lambda p: speculative(target, near_draft, p, gamma=gamma,
                                                              max_new_tokens=MAX_NEW, use_cache=use_cache,
                                                              stop_below=0.9), prompts, expected)
    assert drafted < 0.9 * gamma * rounds  # it did stop rounds early
    fixed = [speculative(target, near_draft, p, gamma=gamma, max_new_tokens=MAX_NEW, stop_below=1e-9)
             for p in prompts]
    assert sum(g.stats.drafted for g in fixed) > drafted  # a threshold nothing falls below drafts the full gamma
