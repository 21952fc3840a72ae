"""The draft kinds beyond a smaller model (n-gram tables, Medusa heads) and the adaptive stop rule keep greedy
speculative output exactly the target's; each does draft something the target accepts, so the check has teeth."""

from __future__ import annotations

import copy

import pytest
import torch

from specsweep.decoding import Sampling, assisted, autoregressive, medusa, speculative
from specsweep.models import medusa as medusa_heads
from specsweep.models import ngram
from specsweep.models.compile import compile_forward

MAX_NEW = 24


@pytest.fixture(scope="module")
def stream(target) -> torch.Tensor:
    """Text the tiny target writes itself (sampled), so that drafts fitted on it know something of the target."""
    generator = torch.Generator().manual_seed(0)
    out = autoregressive(target, torch.tensor([[1]]), max_new_tokens=1500, sampling=Sampling(temperature=1.0),
                         generator=generator, instrumented=False)
    return out.tokens


@pytest.fixture(scope="module")
def ngrams(stream) -> dict[str, torch.nn.Module]:
    documents = [stream[i : i + 100].tolist() for i in range(0, len(stream), 100)]
    return {"unigram": ngram.fit(documents, 96, 1), "bigram": ngram.fit(documents, 96, 2, top_k=8)}


@pytest.fixture(scope="module")
def heads(target, stream) -> torch.nn.Module:
    torch.manual_seed(0)
    return medusa_heads.train(target, stream, heads=3, steps=60, batch_size=8, seq_len=32, lr=3e-3, progress=False)


@pytest.fixture(scope="module")
def expected(target, prompts) -> list[list[int]]:
    return [autoregressive(target, prompt, max_new_tokens=MAX_NEW).tokens.tolist() for prompt in prompts]


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


@pytest.mark.parametrize("kind", ["unigram", "bigram"])
@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("gamma", [1, 3])
def test_ngram_drafts_are_exact(target, ngrams, prompts, expected, kind, use_cache, gamma):
    check_exact(lambda p: speculative(target, ngrams[kind], p, gamma=gamma, max_new_tokens=MAX_NEW,
                                      use_cache=use_cache), prompts, expected)


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
@pytest.mark.parametrize("gamma", [1, 2, 3])
def test_medusa_is_exact(target, heads, prompts, expected, gamma, use_cache):
    rounds, drafted, _, _ = check_exact(lambda p: medusa(target, p, heads=heads, gamma=gamma, max_new_tokens=MAX_NEW,
                                                         use_cache=use_cache), prompts, expected)
    assert drafted <= gamma * rounds


def test_medusa_refuses_more_lookahead_than_heads(target, heads, prompts):
    with pytest.raises(ValueError, match="gamma=4 is more than the 3 Medusa heads"):
        medusa(target, prompts[0], heads=heads, gamma=4, max_new_tokens=4)


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


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2])
def test_the_stop_rule_refuses_a_bad_threshold(target, near_draft, prompts, bad):
    with pytest.raises(ValueError, match=f"stop_below={bad} is invalid"):
        speculative(target, near_draft, prompts[0], gamma=3, max_new_tokens=4, stop_below=bad)


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
