"""Fixtures of the decoding tests: the target's greedy output, and drafts fitted on text the target wrote."""

from __future__ import annotations

import pytest
import torch

from specsweep.decoding import Sampling, autoregressive
from specsweep.models import ngram
from tests.decoding.helpers import reference


@pytest.fixture(scope="module")
def expected(target, prompts) -> list[list[int]]:
    return [reference(target, prompt) for prompt in prompts]


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
