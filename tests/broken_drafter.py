"""A test-only method with the bug of the reference implementation behind Hayashizaki et al. 2024: every draft of
a round is drawn from the confirmed prefix, none from the drafts before it. Still lossless (q is the law the drafts
came from); only α falls, to α₁ / (1 + α₁) at γ >= 2, which the study must flag. Loaded by a sweep with
method.name=unconditioned method.module=tests.broken_drafter."""

from __future__ import annotations

import torch

from specsweep.decoding import method, speculative
from specsweep.decoding.runner import Runner
from specsweep.decoding.sampling import Sampling, choose, fit_vocab


def from_prefix(draft: Runner, seq: torch.Tensor, gamma: int, sampling: Sampling, vocab: int, eos: set[int],
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """gamma drafts, each from M_q on the confirmed prefix seq [1, L] alone: drafts [gamma], q [gamma, V]."""
    drafts, q = [seq.new_empty(0)], [torch.empty(0, vocab, device=seq.device)]
    for _ in range(gamma):
        draft.rollback(seq.shape[1] - 1)  # forget what the last draft forward fed, so the next reads seq again
        token, probs = choose(fit_vocab(draft.forward(seq, keep=1), vocab), sampling, generator)
        drafts.append(token)
        q.append(probs)
    return torch.cat(drafts), (None if sampling.greedy else torch.cat(q))


@method(uses_draft=True, uses_gamma=True)
def unconditioned(target, draft, input_ids, **kwargs):
    return speculative(target, draft, input_ids, propose=from_prefix, **kwargs)
