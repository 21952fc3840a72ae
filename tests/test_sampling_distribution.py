"""Sampled speculative output must have the target's distribution: a chi-squared goodness-of-fit test.

The first two new tokens are drawn thousands of times with a fixed seed and compared with their exact
joint law, enumerated from the target alone. The same check must reject a broken acceptance rule.
"""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

from specsweep.decoding import Sampling, engine, speculative
from specsweep.decoding.sampling import logits_to_probs, sample
from tests.conftest import perturbed, tiny_model

VOCAB = 12
PROMPT = torch.tensor([[3, 7, 1, 4]])
SAMPLES = 3000
P_VALUE = 1e-3


def reference_probs(logits: torch.Tensor, temperature: float, top_k: int | None) -> torch.Tensor:
    """The target's processed next-token law, written out independently of the code under test."""
    scores = logits.double() / temperature
    if top_k is not None:
        kth = scores.topk(top_k).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    return torch.softmax(scores, dim=-1)


@torch.inference_mode()
def exact_joint(target, temperature: float, top_k: int | None) -> torch.Tensor:
    """P(x1, x2) = p(x1 | prompt) p(x2 | prompt, x1): [V, V]."""
    first = reference_probs(target(PROMPT).logits[0, -1], temperature, top_k)
    extended = torch.cat([PROMPT.repeat(VOCAB, 1), torch.arange(VOCAB)[:, None]], dim=1)
    second = reference_probs(target(extended).logits[:, -1], temperature, top_k)
    return first[:, None] * second


def observed_joint(target, draft, sampling: Sampling, use_cache: bool, samples: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1234)
    counts = torch.zeros(VOCAB, VOCAB)
    for _ in range(samples):
        # gamma=2 with 3 new tokens: the first round drafts two tokens, so x2 depends on a drafted x1.
        tokens = speculative(target, draft, PROMPT, gamma=2, max_new_tokens=3, sampling=sampling,
                             use_cache=use_cache, generator=generator).tokens
        counts[tokens[0], tokens[1]] += 1
    return counts


def chi_squared_p_value(observed: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's test, with cells expecting fewer than 5 counts pooled into one."""
    expected = probs.flatten() * observed.sum()
    observed = observed.flatten().double()
    small = expected < 5
    f_obs = torch.cat([observed[~small], observed[small].sum()[None]])
    f_exp = torch.cat([expected[~small], expected[small].sum()[None]])
    return float(chisquare(f_obs.numpy(), f_exp.numpy()).pvalue)


@pytest.fixture(scope="module")
def pair():
    target = tiny_model(seed=10, vocab=VOCAB, hidden=16, layers=1, init=0.5)
    return target, perturbed(target, scale=0.2, seed=11)


def total_variation(target, draft, temperature, top_k) -> float:
    with torch.inference_mode():
        p = reference_probs(target(PROMPT).logits[0, -1], temperature, top_k)
        q = reference_probs(draft(PROMPT).logits[0, -1], temperature, top_k)
    return float((p - q).abs().sum() / 2)


CASES = [
    pytest.param(Sampling(temperature=1.0), True, id="T=1-cache"),
    pytest.param(Sampling(temperature=0.7, top_k=5), False, id="T=0.7-topk5-nocache"),
]


@pytest.mark.slow
@pytest.mark.parametrize("sampling,use_cache", CASES)
def test_speculative_sampling_has_the_target_distribution(pair, sampling, use_cache):
    target, draft = pair
    # Power: the draft's law is far enough from the target's that accepting and resampling both matter.
    assert 0.25 < total_variation(target, draft, sampling.temperature, sampling.top_k) < 0.75
    observed = observed_joint(target, draft, sampling, use_cache, SAMPLES)
    assert chi_squared_p_value(observed, exact_joint(target, sampling.temperature, sampling.top_k)) > P_VALUE


def always_accept(drafts, q, target_logits, sampling, generator):
    """A broken rule: keep every draft, then a bonus token. Its output follows the draft, not the target."""
    p = logits_to_probs(target_logits, sampling)
    return drafts.numel(), sample(p[-1:], generator)


@pytest.mark.slow
def test_the_check_rejects_a_broken_acceptance_rule(pair, monkeypatch):
    target, draft = pair
    monkeypatch.setattr(engine, "accept", always_accept)
    observed = observed_joint(target, draft, Sampling(temperature=1.0), True, SAMPLES // 3)
    assert chi_squared_p_value(observed, exact_joint(target, 1.0, None)) < P_VALUE
