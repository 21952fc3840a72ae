"""How a token is chosen from logits: greedy, or sampled after temperature, top-k and top-p; and a draft's logits put
on the target's ids first."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TopKLogitsWarper,
    TopPLogitsWarper,
)


@dataclass(frozen=True)
class Sampling:
    """Temperature 0 means greedy (argmax); otherwise sample from the processed distribution."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError(f"temperature={self.temperature} is invalid; it must be 0 (greedy) or positive.")
        if self.top_k is not None and (isinstance(self.top_k, bool) or int(self.top_k) != self.top_k
                                       or self.top_k < 1):
            raise ValueError(f"top_k={self.top_k} is invalid; it must be a positive integer or None.")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} is invalid; it must be in (0, 1] or None.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @cached_property
    def _warpers(self) -> LogitsProcessorList:
        # transformers' own warpers, so our filtering is exactly what generate(do_sample=True) applies.
        warpers = LogitsProcessorList()
        if self.top_k is not None:
            warpers.append(TopKLogitsWarper(top_k=int(self.top_k)))
        if self.top_p is not None and self.top_p < 1:
            warpers.append(TopPLogitsWarper(top_p=self.top_p))
        return warpers


def logits_to_probs(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """The distribution that `sampling` draws from. logits: [S, V] -> probs: [S, V] (float32)."""
    scores = logits.float() / sampling.temperature
    scores = sampling._warpers(None, scores)
    return torch.softmax(scores, dim=-1)


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row. probs: [S, V] -> tokens: [S]."""
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def race(probs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One token per row by the exponential race: argmax p / E with E ~ Exp(1) drawn beforehand, the same law as
    `sample` (the first of independent exponential clocks with rates p to ring) and, with the noise an input, free
    of a random op inside a compiled graph, as gpt-fast samples. probs: [S, V], noise: [S, V] -> tokens: [S]."""
    return (probs / noise).argmax(dim=-1)


def fit_vocab(logits: torch.Tensor, size: int) -> torch.Tensor:
    """Draft logits over the target's ids: [S, V_draft] -> [S, size]. Same tokenizer, padded embeddings (Pythia):
    ids the target lacks are cut, ids only the target has get q = 0, so p keeps its whole support."""
    if logits.shape[-1] >= size:
        return logits[..., :size]
    return torch.nn.functional.pad(logits, (0, size - logits.shape[-1]), value=float("-inf"))


def choose(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None
           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pick the next token of each row. logits: [S, V] -> (tokens [S], probs [S, V] or None when greedy)."""
    if sampling.greedy:
        return logits.argmax(dim=-1), None
    probs = logits_to_probs(logits, sampling)
    return sample(probs, generator), probs
