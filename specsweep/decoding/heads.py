"""Medusa decoding (Cai et al. 2024, Medusa-1): no draft model; K heads on the target's last hidden state propose
the next tokens, and the target verifies them as in speculative sampling.

A round: the previous verification chose the token x at the end of the sequence from the target's logits at
position t; the heads read the hidden state h_t of that same forward, and head i proposes token t + 1 + i (head 1
the token after x, which it never sees). The target verifies [x, d_1..d_k] in one forward with Leviathan et al.'s
acceptance rule, q_i being head i's distribution: any q from which the drafts were drawn keeps the output
lossless. One chain of proposals per round (Medusa's tree attention is not built here). The first round has no
hidden state yet: it drafts nothing and its forward is the prefill, so τ (tokens per round) counts every target
forward.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from specsweep.decoding.checks import check_cache_kind, check_request, eos_set
from specsweep.decoding.engine import decode_rounds, no_drafts
from specsweep.decoding.methods import method
from specsweep.decoding.runner import Runner, finish
from specsweep.decoding.sampling import Sampling, choose
from specsweep.decoding.stats import DecodeStats, Generation
from specsweep.decoding.timing import Clock


def head_tokens(heads: torch.nn.Module, m_p: Runner, seq: torch.Tensor, gamma: int, sampling: Sampling,
                generator: torch.Generator | None, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """d_1..d_gamma from the heads, each drawn from its own head's distribution (greedy: its argmax).

    seq: [1, L], whose last token the target chose at position L - 2 -> drafts [gamma], q [gamma, V] | None.
    """
    h = m_p.hidden_at(seq.shape[1] - 2)  # [H]
    if h is None or gamma == 0:
        return no_drafts(seq, sampling, heads.config.vocab_size)
    mark = m_p.clock.before()
    logits = heads(h, gamma)  # [gamma, V]
    m_p.clock.after(mark, "draft", index, drafts=gamma)
    return choose(logits, sampling, generator)  # [gamma], [gamma, V] | None


@method(uses_gamma=True, uses_heads=True)
@torch.inference_mode()
def medusa(
    target: PreTrainedModel,
    input_ids: torch.Tensor,
    *,
    heads: torch.nn.Module,
    gamma: int,
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    use_cache: bool = True,
    eos_token_id: int | list[int] | None = None,
    generator: torch.Generator | None = None,
    instrumented: bool = True,
    cache: str = "dynamic",
) -> Generation:
    """The target with Medusa heads: gamma <= K proposals a round from the heads, verified losslessly."""
    seq = check_request(input_ids, max_new_tokens, gamma, generator, target.device).to(target.device)
    check_cache_kind(cache, use_cache)
    count = heads.config.heads
    if gamma > count:
        raise ValueError(f"gamma={gamma} is more than the {count} Medusa heads of this target, which propose one "
                         f"token each; use gamma of 1..{count}.")
    vocab = target.get_output_embeddings().out_features
    if heads.config.vocab_size != vocab:
        raise ValueError(f"the Medusa heads predict {heads.config.vocab_size} ids but the target has {vocab}; they "
                         "were trained on another target (train them on this one with python -m specsweep.medusa).")
    prompt_length = seq.shape[1]
    stats = DecodeStats(accepted_per_position=[0] * gamma)
    clock = Clock(seq.device, stats, instrumented)
    m_p = Runner.with_cache(target, use_cache, "target", clock, cache, prompt_length + max_new_tokens + gamma + 1,
                            keep_hidden=True)
    rounds = iter(range(1, max_new_tokens + 1))  # the heads' call index (never 0: they read no prompt)

    def proposal(prefix: torch.Tensor, lookahead: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return head_tokens(heads, m_p, prefix, lookahead, sampling, generator, next(rounds))

    clock.start()
    seq = decode_rounds(m_p, seq, proposal, gamma=gamma, max_new_tokens=max_new_tokens, sampling=sampling,
                        eos=eos_set(eos_token_id), generator=generator, stats=stats, rollback=[m_p])
    # Head i reads h_t alone, not the drafts before it: α falls with γ by design, which the study must not flag.
    settings = {"method": "medusa", "gamma": gamma, "heads": count, "drafts_conditioned": False,
                "use_cache": use_cache, "vocab": vocab}
    return finish(clock, seq, prompt_length, settings, m_p)
