"""Sampled speculative output must have the target's distribution: a chi-squared goodness-of-fit test.

The first two new tokens are drawn thousands of times with a fixed seed and compared with their exact
joint law, enumerated from the target alone. The same check must reject a broken acceptance rule.
"""

from __future__ import annotations

import copy

import pytest
import torch
from scipy.stats import chisquare

from specsweep.decoding import Sampling, autoregressive, engine, medusa, runner, speculative
from specsweep.decoding import heads as decoding_heads
from specsweep.decoding.sampling import choose, logits_to_probs, sample
from specsweep.models import medusa as medusa_heads
from specsweep.models import ngram
from specsweep.models.compile import compile_forward
from tests.helpers import perturbed, tiny_model

VOCAB = 12
PROMPT = torch.tensor([[3, 7, 1, 4]])
SAMPLES = 3000
P_VALUE = 1e-3


def reference_probs(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """The target's processed next-token law, written out independently of the code under test."""
    scores = logits.double() / sampling.temperature
    if sampling.top_k is not None:
        kth = scores.topk(sampling.top_k).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if sampling.top_p is not None:  # keep the most likely tokens until their mass reaches top_p
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        mass_before = sorted_probs.cumsum(-1) - sorted_probs
        keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, mass_before < sampling.top_p)
        probs = torch.where(keep, probs, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


@torch.inference_mode()
def exact_joint(target, sampling: Sampling) -> torch.Tensor:
    """P(x1, x2) = p(x1 | prompt) p(x2 | prompt, x1): [V, V]."""
    first = reference_probs(target(PROMPT).logits[0, -1], sampling)
    extended = torch.cat([PROMPT.repeat(VOCAB, 1), torch.arange(VOCAB)[:, None]], dim=1)
    second = reference_probs(target(extended).logits[:, -1], sampling)
    return first[:, None] * second


def observed_joint(target, draft, sampling: Sampling, use_cache: bool, gamma: int, samples: int,
                   cache: str = "dynamic") -> torch.Tensor:
    """gamma=2 with 3 new tokens: x2 is a draft conditioned on the drafted x1. gamma=1 with 2 new tokens: x2 is
    the bonus token after an accepted x1, or, after a rejection, a round with no budget left to draft."""
    generator = torch.Generator().manual_seed(1234)
    counts = torch.zeros(VOCAB, VOCAB)
    for _ in range(samples):
        tokens = speculative(target, draft, PROMPT, gamma=gamma, max_new_tokens=gamma + 1, sampling=sampling,
                             use_cache=use_cache, generator=generator, cache=cache).tokens
        counts[tokens[0], tokens[1]] += 1
    return counts


def chi_squared_p_value(observed: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's test, with cells expecting fewer than 5 counts pooled into one. A sample in a cell of
    probability 0 (cut by top-k or top-p) is impossible under the target: p-value 0."""
    expected = probs.flatten() * observed.sum()
    observed = observed.flatten().double()
    impossible = expected == 0
    if observed[impossible].sum() > 0:
        return 0.0
    small = (expected < 5) & ~impossible
    big = ~small & ~impossible
    f_obs = torch.cat([observed[big], observed[small].sum()[None]])
    f_exp = torch.cat([expected[big], expected[small].sum()[None]])
    if f_exp[-1] == 0:  # nothing to pool
        f_obs, f_exp = f_obs[:-1], f_exp[:-1]
    return float(chisquare(f_obs.numpy(), f_exp.numpy()).pvalue)


@pytest.fixture(scope="module")
def pair():
    target = tiny_model(seed=10, vocab=VOCAB, hidden=16, layers=1, init=0.5)
    return target, perturbed(target, scale=0.2, seed=11)


def total_variation(target, draft, sampling: Sampling) -> float:
    with torch.inference_mode():
        p = reference_probs(target(PROMPT).logits[0, -1], sampling)
        q = reference_probs(draft(PROMPT).logits[0, -1], sampling)
    return float((p - q).abs().sum() / 2)


CASES = [
    pytest.param(Sampling(temperature=1.0), True, 2, id="T=1-cache-gamma2"),
    pytest.param(Sampling(temperature=1.0), "static", 2, id="T=1-static-cache-gamma2"),
    # Compiled for fixed shapes: the draft's round is one fused graph that samples by the exponential race.
    pytest.param(Sampling(temperature=0.8, top_k=8), "compiled", 2, id="T=0.8-topk8-static-compiled-gamma2"),
    pytest.param(Sampling(temperature=0.7, top_k=5), False, 2, id="T=0.7-topk5-nocache-gamma2"),
    pytest.param(Sampling(temperature=0.9, top_p=0.8), True, 1, id="T=0.9-topp0.8-cache-gamma1-bonus"),
]


@pytest.mark.slow
@pytest.mark.parametrize("sampling,use_cache,gamma", CASES)
def test_speculative_sampling_has_the_target_distribution(pair, sampling, use_cache, gamma):
    target, draft = pair
    # Power: the draft's law is far enough from the target's that accepting and resampling both matter.
    assert 0.25 < total_variation(target, draft, sampling) < 0.75
    cache = "static" if use_cache in ("static", "compiled") else "dynamic"
    if use_cache == "compiled":
        target, draft = compiled(target), compiled(draft)
    observed = observed_joint(target, draft, sampling, bool(use_cache), gamma, SAMPLES, cache)
    assert chi_squared_p_value(observed, exact_joint(target, sampling)) > P_VALUE


def compiled(model):
    """A copy compiled for fixed shapes, as cache=static with compile=true prepares it (eager backend: seconds)."""
    model = copy.deepcopy(model)
    compile_forward(model, "eager", fixed_shapes=True)
    return model


def argmax_race(probs, noise):
    """A broken fused sampler: the mode of q instead of a draw from it, while q is still reported as the law."""
    return probs.argmax(dim=-1)


@pytest.mark.slow
def test_the_check_rejects_a_fused_round_that_does_not_sample_from_q(pair, monkeypatch):
    target, draft = (compiled(model) for model in pair)
    monkeypatch.setattr(runner, "race", argmax_race)
    observed = observed_joint(target, draft, Sampling(temperature=1.0), True, 2, SAMPLES // 3, "static")
    assert chi_squared_p_value(observed, exact_joint(target, Sampling(temperature=1.0))) < P_VALUE


def always_accept(drafts, q, target_logits, sampling, generator):
    """A broken rule: keep every draft, then a bonus token. Its output follows the draft, not the target."""
    p = logits_to_probs(target_logits, sampling)
    return drafts.numel(), sample(p[-1:], generator)


def uniform_bonus(drafts, q, target_logits, sampling, generator):
    """A broken rule: the right test, but a bonus token drawn uniformly instead of from p_{gamma+1}."""
    n, token = ACCEPT(drafts, q, target_logits, sampling, generator)
    if n == drafts.numel():
        token = torch.randint(VOCAB, (1,), generator=generator)
    return n, token


ACCEPT = engine.accept


@pytest.mark.slow
@pytest.mark.parametrize("broken,gamma", [(always_accept, 2), (uniform_bonus, 1)], ids=["always-accept", "bonus"])
def test_the_check_rejects_a_broken_rule(pair, monkeypatch, broken, gamma):
    target, draft = pair
    monkeypatch.setattr(engine, "accept", broken)
    observed = observed_joint(target, draft, Sampling(temperature=1.0), True, gamma, SAMPLES // 3)
    assert chi_squared_p_value(observed, exact_joint(target, Sampling(temperature=1.0))) < P_VALUE


# --- draft kinds beyond a smaller model, and the adaptive stop rule --------------------------------------

def observed(decode, samples: int) -> torch.Tensor:
    """Counts of the first two new tokens of `decode(generator)`, over `samples` seeded calls."""
    generator = torch.Generator().manual_seed(1234)
    counts = torch.zeros(VOCAB, VOCAB)
    for _ in range(samples):
        tokens = decode(generator).tokens
        counts[tokens[0], tokens[1]] += 1
    return counts


@pytest.fixture(scope="module")
def kinds(pair):
    """A bigram fitted on the target's own samples, and Medusa heads distilled from it (on a shorter stream:
    they must be good enough to be accepted sometimes, not good)."""
    target, _ = pair
    generator = torch.Generator().manual_seed(5)
    stream = autoregressive(target, PROMPT, max_new_tokens=600, sampling=Sampling(temperature=1.0),
                            generator=generator, instrumented=False).tokens
    bigram = ngram.fit([stream.tolist()], VOCAB, 2)
    torch.manual_seed(0)
    heads = medusa_heads.train(target, stream, heads=2, steps=40, batch_size=8, seq_len=24, lr=3e-3, progress=False)
    return bigram, heads


T1 = Sampling(temperature=1.0)


def decoders(pair, kinds) -> dict:
    """gamma=2 with 3 new tokens (x2: a draft conditioned on x1, or its resample); Medusa: the prefill gives x1
    and the heads' first proposal is x2's candidate."""
    (target, draft), (bigram, heads) = pair, kinds
    return {
        "bigram": lambda g: speculative(target, bigram, PROMPT, gamma=2, max_new_tokens=3, sampling=T1, generator=g),
        "stop_below": lambda g: speculative(target, draft, PROMPT, gamma=2, max_new_tokens=3, sampling=T1,
                                            generator=g, stop_below=0.3),
        "medusa": lambda g: medusa(target, PROMPT, heads=heads, gamma=2, max_new_tokens=3, sampling=T1, generator=g),
    }


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bigram", "stop_below", "medusa"])
def test_every_draft_kind_has_the_target_distribution(pair, kinds, kind):
    target, _ = pair
    assert chi_squared_p_value(observed(decoders(pair, kinds)[kind], SAMPLES), exact_joint(target, T1)) > P_VALUE


def drop_unsure(runner, seq, gamma, sampling, vocab, eos, generator, stop_below=0.0):
    """A broken stop rule: it stops *before* a draft below the threshold, dropping it, so the drafts it keeps are
    not drawn from q but from q given that they are likely."""
    drafts, q = engine.draft_tokens(runner, seq, gamma, sampling, vocab, eos, generator)
    keep = 0
    while keep < drafts.numel() and q[keep, drafts[keep]] >= stop_below:
        keep += 1
    return drafts[:keep], q[:keep]


def argmax_heads(logits, sampling, generator):
    """A broken Medusa proposal: the heads' argmax, reported as if drawn from their distribution."""
    tokens, probs = choose(logits, sampling, generator)
    return logits.argmax(dim=-1), probs


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["stop_below", "medusa"])
def test_the_check_rejects_a_broken_draft_kind(pair, kinds, monkeypatch, kind):
    target, draft = pair
    if kind == "medusa":
        monkeypatch.setattr(decoding_heads, "choose", argmax_heads)
        decode = decoders(pair, kinds)["medusa"]
    else:
        def decode(g):
            return speculative(target, draft, PROMPT, gamma=2, max_new_tokens=3, sampling=T1, generator=g,
                               propose=drop_unsure, stop_below=0.3)
    assert chi_squared_p_value(observed(decode, SAMPLES // 3), exact_joint(target, T1)) < P_VALUE
