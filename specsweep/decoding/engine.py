"""Our own decoding loops: autoregressive decoding and speculative sampling.

Speculative sampling follows Leviathan et al. (2023), Algorithm 1, in their notation: the draft M_q proposes
gamma tokens x_1..x_gamma from q, each conditioned on the ones before it; the target M_p scores all gamma+1
positions in one forward; x_i is kept with probability min(1, p(x_i) / q(x_i)); the first rejected position is
resampled from norm(max(0, p - q)); if all are kept, a bonus token comes from p at position gamma+1.

One sequence at a time (batch size 1). With a KV cache, each model's cache holds every token of the
sequence but the last; after a rejection a DynamicCache is cropped and a StaticCache's write position moved back
(`Runner`). Without one, every forward reads the whole sequence. Models compiled for fixed shapes (the fast path) pad
verifications to γ + 1 and draft each round as one compiled graph (`draft_round`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from transformers import PreTrainedModel, StaticCache

from specsweep.decoding.methods import method
from specsweep.decoding.sampling import Sampling, choose, logits_to_probs, race, sample
from specsweep.decoding.stats import DecodeStats, Generation
from specsweep.decoding.timing import Clock


def cache_bytes(cache: object) -> int | None:
    """Bytes held by a KV cache's key and value tensors (None: no cache)."""
    if cache is None:
        return None
    tensors = [t for layer in getattr(cache, "layers", []) for t in (getattr(layer, "keys", None),
                                                                       getattr(layer, "values", None))]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def cache_kind(cache: object) -> str | None:
    """The class of a KV cache a model returned (None: no cache), to record what really ran."""
    return None if cache is None else type(cache).__name__


CACHES = ("dynamic", "static")
# One preallocated StaticCache per model and role, reused by every call of a job (grown when a call needs more room);
# per role, because a draft identical to its target is the same model object with a cache of its own.
_STATIC: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def static_cache(model: PreTrainedModel, length: int, role: str) -> StaticCache:
    """transformers' StaticCache for `model` in `role`, room for `length` tokens, emptied for a new call. A compiled
    graph is specialised to the cache's size, so a job warms up on its longest prompt first: one size serves all.
    (Not rounded up: every forward attends over the whole room.)"""
    cache = _STATIC.setdefault(model, {}).get(role)
    if cache is None or cache.get_max_length() < length:
        cache = StaticCache(config=model.config, max_cache_len=length)
        if any(layer.is_sliding for layer in cache.layers):
            raise ValueError(f"cache=static is not supported for {type(model).__name__}, whose sliding-window layers "
                             "keep a rolling buffer that cannot be rolled back by position; use cache=dynamic.")
        _STATIC[model][role] = cache
    cache.reset()
    return cache


# Where a model compiled for fixed shapes keeps its torch.compile arguments (set by specsweep.models.compile, a wing
# this one may not import): the runner then compiles the prefill apart, pads verifications, fuses the draft's rounds.
FIXED_SHAPES = "fixed_shape_compile"
# model -> {function: that function compiled for it}: the fused draft round and the prefill, compiled once a model.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(model: PreTrainedModel, function: Callable, **options) -> Callable:
    """`function` compiled with `options` for `model` (kept, so it compiles once)."""
    per_model = _COMPILED.setdefault(model, {})
    if function not in per_model:
        per_model[function] = torch.compile(function, **options)
    return per_model[function]


def prefill(model: PreTrainedModel, **inputs) -> object:
    """The model's forward over a whole prompt. Its own function, so that compiled it keeps its graphs apart from
    the fixed-shape ones of the model's own compiled call (dynamo keeps them per code object)."""
    return model.forward(**inputs)


def prefill_of(model: PreTrainedModel, cache: StaticCache) -> Callable:
    """How a model compiled for fixed shapes reads a prompt. On CUDA, `prefill` compiled once more, for prompts of
    any length, as gpt-fast compiles its prefill (dynamic shapes, no CUDA graphs: one would be recorded per prompt
    length), which spares a small model a kernel launch per op. On a CPU, where nothing is launched, the eager
    forward: compiled, the embedded target's prefill took 8.65 ms against 8.7 at 70 tokens and 24.4 against 22.7 at
    280, after 26 s of compiling. A new cache's first prefill runs eagerly everywhere: transformers allocates its
    tensors then, and marks their addresses static for CUDA graphs only outside a compiled region."""
    if model.device.type != "cuda" or not cache.is_initialized:
        return partial(prefill, model)
    return partial(compiled(model, prefill, backend=getattr(model, FIXED_SHAPES)["backend"], dynamic=True), model)


def draft_round(model: PreTrainedModel, cache: StaticCache, tokens: torch.Tensor, noise: torch.Tensor | None,
                gamma: int, sampling: Sampling, vocab: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """M_q's γ forwards and choices of one round as one function, compiled into one graph (gpt-fast's
    decode_n_tokens): the host launches a round, not γ forwards, and reads nothing until it ends.

    tokens: [1, 2], the sequence's last two, fed at the cache's write position; the first was often fed already,
    and feeding it again (same token, same position) rewrites the same entry, so the first step has one shape
    whether or not the last round's drafts were all kept. noise: [γ, V] Exp(1) draws for `race` (None when greedy).
    -> drafts x_1..x_γ: [γ], q: [γ, V] (None when greedy)."""
    drafts, q = [], []
    position = cache.layers[0].cumulative_length + torch.arange(tokens.shape[1], device=tokens.device)  # [2]
    for i in range(gamma):
        out = model.forward(input_ids=tokens, past_key_values=cache, use_cache=True, cache_position=position,
                            logits_to_keep=1)
        logits = fit_vocab(out.logits[0, -1:], vocab)  # [1, V]
        if sampling.greedy:
            token = logits.argmax(dim=-1)  # [1]
        else:
            probs = logits_to_probs(logits, sampling)  # [1, V]
            token = race(probs, noise[i : i + 1])
            q.append(probs)
        drafts.append(token)
        tokens, position = token[None], position[-1:] + 1
    return torch.cat(drafts), (torch.cat(q) if q else None)


def keeps_kv_cache(model: PreTrainedModel) -> bool:
    """Whether the model fills a KV cache, in transformers' own words: a model that builds no default cache for
    `generate` (our n-gram tables, which read one token back; recurrent models) has none to make static."""
    return getattr(model, "_supports_default_dynamic_cache", lambda: True)()


def check_cache(cache: str, use_cache: bool) -> None:
    if cache not in CACHES:
        raise ValueError(f"cache={cache!r} is invalid; it must be one of {', '.join(CACHES)}.")
    if cache == "static" and not use_cache:
        raise ValueError("cache=static needs use_cache=True: a static cache is a KV cache.")


@dataclass
class Runner:
    """A model with its KV cache (None when caching is off), timed by the call's clock.

    A DynamicCache grows with each forward and a rejection crops it. A StaticCache (`static`) is preallocated: each
    forward writes at the runner's `length` (passed as cache_position), and a rejection only moves `length` back;
    the rejected entries stay behind it, masked by causality (they sit after every query's position) until the next
    forward overwrites them. No copy, no crop, and the tensors keep their addresses, as compiled graphs need."""

    model: PreTrainedModel
    use_cache: bool
    role: str  # "target" or "draft": which stats fields its forwards go to
    clock: Clock
    cache: object = None
    forwards: int = 0
    keep_hidden: bool = False  # also keep the last hidden state of the kept positions (Medusa's heads read it)
    hidden: torch.Tensor | None = None  # [keep, H] of the last forward, for positions end - keep .. end - 1
    end: int = 0  # the sequence length the last forward read
    static: bool = False  # `cache` is a preallocated StaticCache
    length: int = 0  # static: the tokens it holds (a Python int, so reading it never waits for the device)
    fixed_shapes: bool = False  # static, and the model compiled: pad verifications to γ + 1, fuse draft rounds
    round_size: int = 0  # a draft's γ in the job: a fused round always drafts this many (one graph)

    @classmethod
    def with_cache(cls, model: PreTrainedModel, use_cache: bool, role: str, clock: Clock, cache: str, room: int,
                   **kwargs) -> Runner:
        """A runner whose cache is of kind `cache` ("dynamic", or "static" with room for `room` tokens). A model
        that keeps no KV cache (an n-gram draft) has no static cache to decode into: it reads the sequence."""
        if cache == "static" and keeps_kv_cache(model):
            compiled = getattr(model, FIXED_SHAPES, None) is not None
            return cls(model, use_cache, role, clock, cache=static_cache(model, room, role), static=True,
                       fixed_shapes=compiled, **kwargs)
        return cls(model, use_cache, role, clock, **kwargs)

    @property
    def cached(self) -> int:
        """How many leading tokens of the sequence the cache already holds."""
        if self.static:
            return self.length
        return self.cache.get_seq_length() if self.cache is not None else 0

    def forward(self, seq: torch.Tensor, keep: int, full: bool = False) -> torch.Tensor:
        """Logits of the last `keep` positions of seq: [1, L] -> [keep, V]. Feeds only what the cache lacks."""
        mark = self.clock.before()
        start = self.cached
        extra = {"output_hidden_states": True} if self.keep_hidden else {}
        if self.static:
            extra["cache_position"] = torch.arange(start, seq.shape[1], device=seq.device)
        # A graph compiled for fixed shapes would meet every prompt length once: the prefill has its own way.
        call = prefill_of(self.model, self.cache) if self.fixed_shapes and start == 0 else self.model
        fed = seq[:, start:]
        if self.fixed_shapes:  # a view's stride is the whole sequence's length: a guard every step would fail
            fed = fed.clone(memory_format=torch.contiguous_format)
        out = call(
            input_ids=fed,
            past_key_values=self.cache,
            use_cache=self.use_cache,
            logits_to_keep=keep,
            **extra,
        )
        logits = out.logits[0, -keep:]
        hidden = out.hidden_states[-1][0, -keep:] if self.keep_hidden else None
        if self.fixed_shapes:  # CUDA graphs reuse their output buffers at the next replay
            logits, hidden = logits.clone(), None if hidden is None else hidden.clone()
        if self.keep_hidden:  # transformers' last hidden state is after the final norm: the output layer's input
            self.hidden, self.end = hidden, seq.shape[1]
        self.clock.after(mark, self.role, self.forwards, full)
        if self.static:
            self.length = seq.shape[1]
        elif self.use_cache:
            self.cache = out.past_key_values
        self.forwards += 1
        return logits

    def draft_round(self, seq: torch.Tensor, sampling: Sampling, vocab: int, generator: torch.Generator | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A fixed-shape draft's round of γ = `round_size`: `draft_round`, compiled like the model, booked as γ draft
        forwards. seq: [1, L >= 2], all but the last two tokens in the cache or to prefill -> drafts [γ], q [γ, V]
        (None when greedy)."""
        length, gamma = seq.shape[1], self.round_size
        if self.cached < length - 2:  # the first round: the prefill reads the prompt but its last two tokens
            self.forward(seq[:, : length - 2], keep=1)
        self.rollback(length - 2)
        fused = compiled(self.model, draft_round, **getattr(self.model, FIXED_SHAPES))
        noise = None if sampling.greedy else \
            torch.empty(gamma, vocab, device=seq.device).exponential_(generator=generator)
        mark = self.clock.before()
        last = seq[:, -2:].clone(memory_format=torch.contiguous_format)  # a view's stride would fail a guard
        drafts, q = fused(self.model, self.cache, last, noise, gamma, sampling, vocab)
        drafts, q = drafts.clone(), None if q is None else q.clone()  # CUDA graphs reuse output buffers
        self.clock.after(mark, self.role, self.forwards, drafts=gamma)
        self.forwards += 1
        self.length = length + gamma - 1  # x_γ is not fed: the next round's first step feeds it if it is kept
        return drafts, q

    def hidden_at(self, position: int) -> torch.Tensor | None:
        """The last forward's hidden state at an absolute sequence position: [H] (None if it did not keep it)."""
        if self.hidden is None:
            return None
        offset = position - (self.end - self.hidden.shape[0])
        return self.hidden[offset] if 0 <= offset < self.hidden.shape[0] else None

    def rollback(self, length: int) -> None:
        """Keep the cache for the first `length` tokens only (drops rejected drafts)."""
        extra = self.cached - length
        if extra <= 0:
            return
        if self.static:  # the next write goes to `length`; what lies beyond is masked, then overwritten
            for layer in self.cache.layers:
                layer.cumulative_length.fill_(length)
            self.length = length
        else:
            self.cache.crop(-extra)


def check_request(input_ids: torch.Tensor, max_new_tokens: int, gamma: int | None = None,
                  generator: torch.Generator | None = None, device: torch.device | None = None) -> torch.Tensor:
    """Validate the arguments every method shares; return input_ids as [1, L]."""
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids has shape {tuple(input_ids.shape)}; pass one non-empty sequence, [L] or [1, L].")
    if input_ids.shape[0] != 1:
        raise ValueError(
            f"input_ids has batch size {input_ids.shape[0]}; specsweep decodes one sequence at a time "
            "(batch size 1), as speculative decoding and transformers' assisted generation require."
        )
    if isinstance(max_new_tokens, bool) or int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} is invalid; it must be a positive integer.")
    if gamma is not None and (isinstance(gamma, bool) or int(gamma) != gamma or gamma < 1):
        raise ValueError(f"gamma={gamma} is invalid; the lookahead must be a positive integer (a study uses 1..7).")
    if generator is not None and device is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device.type} but the model is on {device.type}; "
            f"create it with torch.Generator(device='{device}')."
        )
    return input_ids


def eos_set(eos_token_id: int | list[int] | None) -> set[int]:
    if eos_token_id is None:
        return set()
    return {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id)


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
    check_cache(cache, use_cache)
    prompt_length, eos = seq.shape[1], eos_set(eos_token_id)
    stats = DecodeStats()
    clock = Clock(seq.device, stats, instrumented)
    runner = Runner.with_cache(target, use_cache, "target", clock, cache, prompt_length + max_new_tokens + 1)
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
    clock.stop()
    stats.new_tokens = seq.shape[1] - prompt_length
    settings = {"method": "autoregressive", "use_cache": use_cache, "cache": {"target": cache_kind(runner.cache)},
                "cache_bytes": {"target": cache_bytes(runner.cache)}}
    return Generation(seq[0, prompt_length:], stats, settings, torch.cat(gaps) if margins else None)


def first_divergence(tokens: list[int], reference: list[int]) -> int | None:
    """The first position where `tokens` leaves `reference` (None when identical); a stop that one makes
    and the other does not counts at the shorter one's end."""
    for position, (mine, theirs) in enumerate(zip(tokens, reference, strict=False)):
        if mine != theirs:
            return position
    return None if len(tokens) == len(reference) else min(len(tokens), len(reference))


def divergence_margin(target: PreTrainedModel, input_ids: torch.Tensor, position: int, **kwargs) -> float | None:
    """The target's top-1 minus top-2 logit where greedy autoregressive decoding chose the token at `position`:
    a margin within the dtype's rounding is a near-tie that a (γ+1)-token verification may break the other way
    (half precision is not batch-invariant). From the baseline's own step-by-step forwards, recomputed untimed."""
    out = autoregressive(target, input_ids, max_new_tokens=position + 1, margins=True, instrumented=False, **kwargs)
    return float(out.margins[position]) if out.margins.numel() > position else None


def fit_vocab(logits: torch.Tensor, size: int) -> torch.Tensor:
    """Draft logits over the target's ids: [S, V_draft] -> [S, size]. Same tokenizer, padded embeddings (Pythia):
    ids the target lacks are cut, ids only the target has get q = 0, so p keeps its whole support."""
    if logits.shape[-1] >= size:
        return logits[..., :size]
    return torch.nn.functional.pad(logits, (0, size - logits.shape[-1]), value=float("-inf"))


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


def check_draft_can_read(tokens: list[int], draft_vocab: int) -> None:
    """A shared tokenizer never yields ids past the draft's (padded) embedding; a mismatched pair can."""
    if tokens and max(tokens) >= draft_vocab:
        raise ValueError(
            f"token id {max(tokens)} is outside the draft's vocabulary of {draft_vocab} ids, so draft and target "
            "do not share a tokenizer; use method prompt_lookup for a target without a matching draft."
        )


def check_pair(target: PreTrainedModel, draft: PreTrainedModel, tokenizers: tuple | None) -> None:
    """Draft and target must speak the same tokenizer; padded embedding sizes are fine."""
    if tokenizers is not None:
        target_tokenizer, draft_tokenizer = tokenizers
        if target_tokenizer.get_vocab() != draft_tokenizer.get_vocab():
            raise ValueError(
                "the draft's tokenizer differs from the target's, so their token ids cannot be compared; "
                "speculative decoding needs a shared tokenizer (use method prompt_lookup, which drafts from "
                "the prompt, for a target without a matching draft)."
            )
    for name in ("eos_token_id", "bos_token_id"):
        t, d = getattr(target.config, name, None), getattr(draft.config, name, None)
        if t is not None and d is not None and t != d:
            raise ValueError(
                f"the draft's {name}={d} differs from the target's {name}={t}, so they do not share a tokenizer; "
                "speculative decoding needs one (use method prompt_lookup for a target without a matching draft)."
            )


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


def check_stop_below(stop_below: float) -> None:
    if isinstance(stop_below, bool) or not 0 <= stop_below < 1:
        raise ValueError(f"stop_below={stop_below} is invalid; it must be in [0, 1): the draft probability below "
                         "which a round stops drafting (0: never stop early).")


@method(uses_draft=True, uses_gamma=True, compilable=True)
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
    check_cache(cache, use_cache)
    prompt_length, eos, vocab = seq.shape[1], eos_set(eos_token_id), target.get_output_embeddings().out_features
    draft_vocab = draft.config.vocab_size
    check_draft_can_read(seq[0].tolist(), draft_vocab)
    stats = DecodeStats(accepted_per_position=[0] * gamma)
    clock = Clock(seq.device, stats, instrumented)
    room = prompt_length + max_new_tokens + gamma + 1  # the longest a verification can make the sequence
    m_p = Runner.with_cache(target, use_cache, "target", clock, cache, room)
    m_q = Runner.with_cache(draft, use_cache, "draft", clock, cache, room, round_size=gamma)
    options = {"stop_below": stop_below} if stop_below else {}

    def proposal(prefix: torch.Tensor, lookahead: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return propose(m_q, prefix, lookahead, sampling, vocab, eos, generator, **options)

    clock.start()
    seq = decode_rounds(m_p, seq, proposal, gamma=gamma, max_new_tokens=max_new_tokens, sampling=sampling, eos=eos,
                        generator=generator, stats=stats, rollback=[m_p, m_q], readable=draft_vocab)
    clock.stop()
    stats.new_tokens = seq.shape[1] - prompt_length
    settings = {"method": "speculative", "gamma": gamma, "use_cache": use_cache, "vocab": vocab,
                "stop_below": stop_below,
                "cache": {"target": cache_kind(m_p.cache), "draft": cache_kind(m_q.cache)},
                "cache_bytes": {"target": cache_bytes(m_p.cache), "draft": cache_bytes(m_q.cache)}}
    return Generation(seq[0, prompt_length:], stats, settings)
