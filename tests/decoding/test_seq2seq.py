"""Encoder–decoder targets (T5): each model encodes the source once per call, the decoder's self-attention cache alone
is cropped, and speculative decoding stays lossless: greedy output equals transformers' greedy output token for
token, a draft identical to the target accepts everything, and sampled output has the target's distribution."""

from __future__ import annotations

import pytest
import torch
import transformers

from specsweep.decoding import Sampling, assisted, autoregressive, engine, speculative
from tests.decoding.test_replay import replay_matches_measure
from tests.decoding.test_sampling import P_VALUE, SAMPLES, always_accept, chi_squared_p_value, reference_probs
from tests.helpers import perturbed, tiny_model

VOCAB = 96
MAX_NEW = 16


def tiny_t5(seed: int, layers: int, vocab: int = VOCAB, width: int = 32, init: float = 3.0
            ) -> transformers.T5ForConditionalGeneration:
    """A random T5. A large init makes its distributions peaked: clear greedy winners, visible disagreement."""
    torch.manual_seed(seed)
    config = transformers.T5Config(vocab_size=vocab, d_model=width, d_ff=2 * width, num_layers=layers,
                                   num_decoder_layers=layers, num_heads=4, d_kv=8, decoder_start_token_id=0,
                                   pad_token_id=0, eos_token_id=1, initializer_factor=init)
    model = transformers.T5ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = None  # generate() must not stop where we don't
    return model


@pytest.fixture(scope="module")
def t5_target():
    return tiny_t5(seed=0, layers=2)


@pytest.fixture(scope="module")
def t5_drafts(t5_target):
    """One that agrees often, one of a single layer that rarely does."""
    return [perturbed(t5_target, scale=0.3, seed=1), tiny_t5(seed=2, layers=1)]


@pytest.fixture(scope="module")
def sources() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(2, VOCAB, (1, int(n)), generator=generator) for n in (1, 3, 7, 12, 20)]


@pytest.fixture(scope="module")
def t5_expected(t5_target, sources) -> list[list[int]]:
    """transformers' own greedy decoding, without its start token."""
    return [t5_target.generate(source, do_sample=False, max_new_tokens=MAX_NEW, min_new_tokens=MAX_NEW)[0, 1:]
            .tolist() for source in sources]


@pytest.mark.parametrize("use_cache", [True, False])
def test_autoregressive_equals_generate(t5_target, sources, t5_expected, use_cache):
    for source, want in zip(sources, t5_expected, strict=True):
        out = autoregressive(t5_target, source, max_new_tokens=MAX_NEW, use_cache=use_cache)
        assert out.tokens.tolist() == want
        # the encoder runs inside the first forward, the prefill, which is not a decoding step
        assert out.stats.target_forwards == MAX_NEW - 1 and out.stats.prefill_seconds > 0


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("gamma", range(1, 8))
def test_speculative_equals_autoregressive(t5_target, t5_drafts, sources, t5_expected, gamma, use_cache):
    accepted = rejections = 0
    for draft in t5_drafts:
        for source, want in zip(sources, t5_expected, strict=True):
            out = speculative(t5_target, draft, source, gamma=gamma, max_new_tokens=MAX_NEW, use_cache=use_cache)
            assert out.tokens.tolist() == want
            accepted, rejections = accepted + out.stats.accepted, rejections + out.stats.rejections
    assert accepted > 0 and rejections > 0  # both branches ran


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_draft_identical_to_the_target_accepts_everything(t5_target, sources, use_cache):
    gamma = 3
    for source in sources:
        out = speculative(t5_target, t5_target, source, gamma=gamma, max_new_tokens=4 * (gamma + 1),
                          use_cache=use_cache)
        assert out.stats.rejections == 0 and out.stats.rounds == 4
        assert out.stats.accepted == out.stats.drafted == 4 * gamma


def test_pairs_of_two_kinds_and_a_static_cache_are_refused(t5_target, sources):
    with pytest.raises(ValueError, match="the draft is a decoder-only model and the target an encoder–decoder one"):
        speculative(t5_target, tiny_model(seed=0, vocab=VOCAB), sources[0], gamma=2, max_new_tokens=4)
    with pytest.raises(ValueError, match="the draft is an encoder–decoder model and the target a decoder-only one"):
        speculative(tiny_model(seed=0, vocab=VOCAB), t5_target, sources[0], gamma=2, max_new_tokens=4)
    with pytest.raises(ValueError, match="cache=static is not supported for the encoder–decoder"):
        autoregressive(t5_target, sources[0], max_new_tokens=4, cache="static")


# --- sampling: the first two new tokens against their exact joint law ---------------------------------------

SMALL = 12
SOURCE = torch.tensor([[3, 7, 5, 4]])


@pytest.fixture(scope="module")
def small_pair():
    target = tiny_t5(seed=10, layers=1, vocab=SMALL, width=16, init=1.5)
    return target, perturbed(target, scale=0.3, seed=11)


@torch.inference_mode()
def exact_joint(target, sampling: Sampling) -> torch.Tensor:
    """P(x1, x2) = p(x1 | source, start) p(x2 | source, start, x1): [V, V], from the target alone."""
    start = torch.tensor([[target.config.decoder_start_token_id]])
    first = reference_probs(target(input_ids=SOURCE, decoder_input_ids=start).logits[0, -1], sampling)
    decoded = torch.cat([start.repeat(SMALL, 1), torch.arange(SMALL)[:, None]], dim=1)
    second = reference_probs(target(input_ids=SOURCE.repeat(SMALL, 1), decoder_input_ids=decoded).logits[:, -1],
                             sampling)
    return first[:, None] * second


def observed_joint(target, draft, sampling: Sampling, use_cache: bool, samples: int) -> torch.Tensor:
    """gamma=2 with 3 new tokens: x2 is a draft conditioned on the drafted x1, or a resample."""
    generator = torch.Generator().manual_seed(1234)
    counts = torch.zeros(SMALL, SMALL)
    for _ in range(samples):
        tokens = speculative(target, draft, SOURCE, gamma=2, max_new_tokens=3, sampling=sampling,
                             use_cache=use_cache, generator=generator).tokens
        counts[tokens[0], tokens[1]] += 1
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("sampling,use_cache", [(Sampling(temperature=1.0), True),
                                                (Sampling(temperature=0.7, top_k=5), False)],
                         ids=["T=1-cache", "T=0.7-topk5-nocache"])
def test_speculative_sampling_has_the_target_distribution(small_pair, sampling, use_cache):
    target, draft = small_pair
    # Power: the draft's law is far enough from the target's that accepting and resampling both matter.
    with torch.inference_mode():
        start = torch.tensor([[target.config.decoder_start_token_id]])
        p, q = (reference_probs(m(input_ids=SOURCE, decoder_input_ids=start).logits[0, -1], sampling)
                for m in (target, draft))
    assert 0.25 < float((p - q).abs().sum() / 2) < 0.75
    observed = observed_joint(target, draft, sampling, use_cache, SAMPLES)
    assert chi_squared_p_value(observed, exact_joint(target, sampling)) > P_VALUE


@pytest.mark.slow
def test_the_check_rejects_a_broken_rule(small_pair, monkeypatch):
    target, draft = small_pair
    monkeypatch.setattr(engine, "accept", always_accept)
    observed = observed_joint(target, draft, Sampling(temperature=1.0), True, SAMPLES // 3)
    assert chi_squared_p_value(observed, exact_joint(target, Sampling(temperature=1.0))) < P_VALUE


# --- transformers' assisted generation on the same pairs ----------------------------------------------------

@pytest.mark.parametrize("gamma", [1, 3, 7])
def test_assisted_generation_is_exact(t5_target, t5_drafts, sources, t5_expected, gamma):
    for source, want in zip(sources, t5_expected, strict=True):
        theirs = assisted(t5_target, t5_drafts[0], source, gamma=gamma, max_new_tokens=MAX_NEW)
        assert theirs.tokens.tolist() == want
        assert theirs.stats.new_tokens == MAX_NEW and theirs.stats.prefill_seconds > 0  # the encoders: its prefill
        assert theirs.stats.drafted > 0


def test_greedy_replay_is_exact(t5_target, t5_drafts, sources):
    """The trace of one teacher-forced forward of the draft, replayed at every γ, equals what decoding counts."""
    replay_matches_measure(t5_target, t5_drafts[0], sources[1:4])
