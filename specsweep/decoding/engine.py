"""Our own decoding loops: autoregressive decoding and speculative sampling, as verbs (gpt-fast's generate.py); the
models, their caches and compiled graphs are `runner`'s.

Speculative sampling follows Leviathan et al. (2023), Algorithm 1, in their notation: the draft M_q proposes
gamma tokens x_1..x_gamma from q, each conditioned on the ones before it; the target M_p scores all gamma+1
positions in one forward; x_i is kept with probability min(1, p(x_i) / q(x_i)); the first rejected position is
resampled from norm(max(0, p - q)); if all are kept, a bonus token comes from p at position gamma+1.

One sequence at a time (batch size 1). Models compiled for fixed shapes (the fast path) pad verifications to γ + 1
and draft each round as one compiled graph (`Runner.draft_round`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import PreTrainedModel

from specsweep.decoding.checks import (
    check_cache_kind,
    check_draft_can_read,
    check_pair,
    check_request,
    check_stop_below,
    eos_set,
    split_source,
)
from specsweep.decoding.methods import method
from specsweep.decoding.runner import Runner, finish
from specsweep.decoding.sampling import Sampling, choose, fit_vocab, logits_to_probs, sample
from specsweep.decoding.stats import DecodeStats, Generation
from specsweep.decoding.timing import Clock


def _cut_at_eos(tokens: list[int], eos: set[int]) -> list[int]:
    """Tokens up to and including the first EOS, where autoregressive decoding would stop."""
    for i, token in enumerate(tokens):
        if token in eos:
            return tokens[: i + 1]
    return tokens


@method(compilable=True)
@torch.inference_mode()
def autoregressive(
    target: PreTrainedModel,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    use_cache: bool = True,
    eos_token_id: int | list[int] | None = None,
    generator: torch.Generator | None = None,
    instrumented: bool = True,
    margins: bool = False,
    cache: str = "dynamic",
) -> Generation:
    """The target alone, one token per forward. `instrumented=False`: no per-forward timing (see `timing`).
    `margins=True` (never in a timed call) also returns each step's top-1 minus top-2 logit."""
    seq = check_request(input_ids, max_new_tokens, generator=generator, device=target.device).to(target.device)
    check_cache_kind(cache, use_cache)
    source, seq = split_source(target, seq)  # an encoder–decoder target decodes from its start token
    prompt_length, eos = seq.shape[1], eos_set(eos_token_id)
    stats = DecodeStats()
    clock = Clock(seq.device, stats, instrumented)
    runner = Runner.with_cache(target, use_cache, "target", clock, cache, prompt_length + max_new_tokens + 1,
                               source=source)
    gaps = []
    clock.start()
    for _ in range(max_new_tokens):
        logits = runner.forward(seq, keep=1)  # [1, V]
        if margins:
            top = logits.float().topk(2, dim=-1).values  # [1, 2]
            gaps.append(top[:, 0] - top[:, 1])
        token, _ = choose(logits, sampling, generator)  # token: [1]
        seq = torch.cat([seq, token[None]], dim=1)
        if eos and token.item() in eos:  # the one host read a step needs, and only when there is an EOS to stop at
            break
    return finish(clock, seq, prompt_length, {"method": "autoregressive", "use_cache": use_cache}, runner,
                  margins=torch.cat(gaps) if margins else None)


def draft_tokens(
    draft: Runner, seq: torch.Tensor, gamma: int, sampling: Sampling, vocab: int, eos: set[int],
    generator: torch.Generator | None, stop_below: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x_1..x_gamma from M_q, each conditioned on the sequence and the drafts before it.

    seq: [1, L] -> drafts: [k <= gamma], q: [k, V] (None when greedy). No host read: a draft after an EOS costs a
    draft forward at the last round at most, and whatever follows an accepted EOS is cut (`_cut_at_eos`).
    `stop_below` > 0: stop after a draft whose probability under M_q is below it (γ is then the maximum). The rule
    reads only the draft, so each x_i is still drawn from q_i and the test stays lossless; it costs one host read
    per draft forward. A draft compiled for fixed shapes drafts its round as one compiled call of its job's γ
    (`Runner.draft_round`) and keeps the first `gamma`, so a short last round needs no graph of its own.
    """
    # The fused round re-feeds the last two tokens; a new cache is first filled by an eager prefill of the rest (see
    # `prefill_of`), so a prompt of one or two tokens drafts its first round step by step.
    if gamma and draft.round_size and draft.fixed_shapes and not stop_below and (seq.shape[1] > 2 or draft.cached):
        drafts, q = draft.draft_round(seq, sampling, vocab, generator)
        return drafts[:gamma], None if q is None else q[:gamma]
    drafts, q = [], []
    for _ in range(gamma):
        logits = fit_vocab(draft.forward(seq, keep=1), vocab)  # [1, V]
        token, probs = choose(logits, sampling, generator)  # [1], [1, V]
        seq = torch.cat([seq, token[None]], dim=1)
        drafts.append(token)
        q.append(probs)
        if stop_below and confidence(logits, token, probs) < stop_below:
            break
    if not drafts:
        return no_drafts(seq, sampling, vocab)
    return torch.cat(drafts), (None if sampling.greedy else torch.cat(q))


def no_drafts(seq: torch.Tensor, sampling: Sampling, vocab: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A round that proposes nothing: drafts [0], q [0, V] (None when greedy); its verification is one step."""
    return seq.new_empty(0), (None if sampling.greedy else torch.empty(0, vocab, device=seq.device))


def confidence(logits: torch.Tensor, token: torch.Tensor, probs: torch.Tensor | None) -> float:
    """M_q's probability of the token it drafted: q(x) when sampling, its softmax when greedy (as transformers'
    assistant confidence threshold reads it). logits: [1, V], token: [1]."""
    probs = torch.softmax(logits.float(), dim=-1) if probs is None else probs
    return float(probs[0, token[0]])


# (M_q's runner, seq [1, L], gamma, sampling, target vocab size, EOS ids, generator) -> (drafts [k], q [k, V] | None)
Propose = Callable[["Runner", torch.Tensor, int, Sampling, int, set[int], torch.Generator | None],
                   tuple[torch.Tensor, torch.Tensor | None]]


def verify(target: Runner, seq: torch.Tensor, drafts: torch.Tensor, full: bool, pad_to: int | None = None
           ) -> torch.Tensor:
    """M_p on the sequence plus the drafts, in one forward. seq: [1, L], drafts: [k] -> logits [k+1, V].

    `pad_to` (a forward compiled for fixed shapes): fewer than pad_to drafts are padded with copies of the last token,
    so every verification has the one shape γ + 1; the padding's logits are dropped, and its cache entries lie past
    what the round keeps, so the rollback leaves them behind."""
    k = drafts.numel()
    padding = seq.new_empty(0) if pad_to is None or k >= pad_to else \
        torch.cat([seq[0, -1:], drafts])[-1:].repeat(pad_to - k)
    candidate = torch.cat([seq, drafts[None], padding[None]], dim=1)
    return target.forward(candidate, keep=k + 1 + padding.numel(), full=full)[: k + 1]


def accept(
    drafts: torch.Tensor,
    q: torch.Tensor | None,
    target_logits: torch.Tensor,
    sampling: Sampling,
    generator: torch.Generator | None,
) -> tuple[int, torch.Tensor]:
    """Leviathan et al.'s acceptance test. Returns (n accepted, the token that follows them: [1]).

    drafts: [gamma], q: [gamma, V], target_logits: [gamma+1, V].
    """
    gamma = drafts.numel()
    if sampling.greedy:
        # Temperature 0: p is one-hot on the target's argmax, so x_i is kept iff it is that argmax.
        choice = target_logits.argmax(dim=-1)  # [gamma+1]
        n = int((drafts == choice[:gamma]).cumprod(dim=0).sum())
        return n, choice[n : n + 1]
    p = logits_to_probs(target_logits, sampling)  # [gamma+1, V]
    positions = torch.arange(gamma, device=drafts.device)
    p_x, q_x = p[positions, drafts], q[positions, drafts]  # [gamma]
    r = torch.rand(gamma, device=drafts.device, generator=generator)
    n = int((r < p_x / q_x).cumprod(dim=0).sum())  # keep x_i with probability min(1, p(x_i) / q(x_i))
    if n == gamma:
        return n, sample(p[gamma : gamma + 1], generator)  # all kept: the bonus token from p_{gamma+1}
    residual = torch.clamp(p[n] - q[n], min=0)  # x_{n+1} rejected: resample from norm(max(0, p - q))
    if residual.sum() <= 0:  # p == q up to rounding, so a rejection had probability ~0; p is the right law
        residual = p[n]
    return n, sample((residual / residual.sum())[None], generator)


# seq [1, L], the lookahead k -> (drafts [<= k], q [<= k, V] | None): one round's proposal, however it is made.
Proposal = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor | None]]


def decode_rounds(m_p: Runner, seq: torch.Tensor, propose: Proposal, *, gamma: int, max_new_tokens: int,
                  sampling: Sampling, eos: set[int], generator: torch.Generator | None, stats: DecodeStats,
                  rollback: list[Runner], readable: int | None = None) -> torch.Tensor:
    """Rounds of propose -> verify -> accept until max_new_tokens or an EOS: the loop every drafter shares (a draft
    model, Medusa's heads). seq: [1, L] -> [1, L + new]. `rollback`: the runners whose caches drop rejected drafts;
    `readable`: the draft's vocabulary, which every kept token must fit in."""
    prompt_length = seq.shape[1]
    while (remaining := max_new_tokens - (seq.shape[1] - prompt_length)) > 0:
        lookahead = min(gamma, remaining - 1)  # the bonus token must not overshoot max_new_tokens
        drafts, q = propose(seq, lookahead)
        k = drafts.numel()
        logits = verify(m_p, seq, drafts, full=k == gamma, pad_to=gamma if m_p.fixed_shapes else None)
        n, next_token = accept(drafts, q, logits, sampling, generator)
        if eos:  # the round's drafts end at the first EOS: what the draft proposed after it is not counted
            k = len(_cut_at_eos(drafts.tolist(), eos))
            n = min(n, k)
        new = _cut_at_eos(drafts[:n].tolist() + next_token.tolist(), eos)
        stats.record_round(k, n, rejected=n < k)
        if readable is not None:
            check_draft_can_read(new, readable)
        seq = torch.cat([seq, torch.tensor([new], dtype=seq.dtype, device=seq.device)], dim=1)
        if new[-1] in eos:
            break
        for runner in rollback:  # every cache keeps every token but the last, which the next round feeds
            runner.rollback(seq.shape[1] - 1)
    return seq


@method(uses_draft=True, uses_gamma=True, compilable=True, replays=True)
@torch.inference_mode()
def speculative(
    target: PreTrainedModel,
    draft: PreTrainedModel,
    input_ids: torch.Tensor,
    *,
    gamma: int,
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    use_cache: bool = True,
    eos_token_id: int | list[int] | None = None,
    generator: torch.Generator | None = None,
    tokenizers: tuple | None = None,
    propose: Propose = draft_tokens,
    stop_below: float = 0.0,
    instrumented: bool = True,
    cache: str = "dynamic",
) -> Generation:
    """Speculative sampling: lossless, so the output has the target's distribution (greedy: its exact tokens).

    `tokenizers` = (target's, draft's), when given, are checked to be the same vocabulary. `propose` drafts a
    round: any proposal keeps the output lossless as long as q is the law its drafts were drawn from; how well
    it is conditioned only moves α. `stop_below`: adaptive lookahead (see `draft_tokens`), for drafters that take it.
    """
    seq = check_request(input_ids, max_new_tokens, gamma, generator, target.device).to(target.device)
    check_pair(target, draft, tokenizers)
    check_stop_below(stop_below)
    check_cache_kind(cache, use_cache)
    draft_vocab = draft.config.vocab_size
    check_draft_can_read(seq[0].tolist(), draft_vocab)
    # An encoder–decoder pair: each model encodes the source itself (in its first forward, the call's prefill), and
    # both decode from the one start token.
    source, seq = split_source(target, seq)
    if source is not None and not torch.equal(split_source(draft, source)[1], seq):
        raise ValueError("the draft's decoder_start_token_id differs from the target's, so they do not share a "
                         "tokenizer; speculative decoding needs one.")
    prompt_length, eos, vocab = seq.shape[1], eos_set(eos_token_id), target.get_output_embeddings().out_features
    stats = DecodeStats(accepted_per_position=[0] * gamma)
    clock = Clock(seq.device, stats, instrumented)
    room = prompt_length + max_new_tokens + gamma + 1  # the longest a verification can make the sequence
    m_p = Runner.with_cache(target, use_cache, "target", clock, cache, room, source=source)
    m_q = Runner.with_cache(draft, use_cache, "draft", clock, cache, room, round_size=gamma, source=source)
    options = {"stop_below": stop_below} if stop_below else {}

    def proposal(prefix: torch.Tensor, lookahead: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return propose(m_q, prefix, lookahead, sampling, vocab, eos, generator, **options)

    clock.start()
    seq = decode_rounds(m_p, seq, proposal, gamma=gamma, max_new_tokens=max_new_tokens, sampling=sampling, eos=eos,
                        generator=generator, stats=stats, rollback=[m_p, m_q], readable=draft_vocab)
    settings = {"method": "speculative", "gamma": gamma, "use_cache": use_cache, "vocab": vocab,
                "stop_below": stop_below}
    return finish(clock, seq, prompt_length, settings, m_p, m_q)
