"""The machinery under the decoding loops: a model with its KV cache (`Runner`), and the compiled graphs of a model
compiled for fixed shapes, as gpt-fast's model.py carries what its generate.py calls.

With a KV cache, each model's cache holds every token of the sequence but the last; after a rejection a DynamicCache
is cropped and a StaticCache's write position moved back. Without one, every forward reads the whole sequence. Models
compiled for fixed shapes (the fast path) prefill apart and draft each round as one compiled graph (`draft_round`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from transformers import PreTrainedModel, StaticCache

from specsweep.decoding.sampling import Sampling, fit_vocab, logits_to_probs, race
from specsweep.decoding.stats import Generation
from specsweep.decoding.timing import Clock
from specsweep.record import FIXED_SHAPES


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
    length), which spares a small model a kernel launch per op. On a CPU, where nothing is launched, the prefill runs
    eagerly: compiled, it was no faster there (the measurement is in commit 3fb1b3c's message). A new cache's first
    prefill runs eagerly everywhere: transformers allocates its tensors then, and marks their addresses static for
    CUDA graphs only outside a compiled region."""
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
    # An encoder–decoder model: the source it encodes ([1, S]) and, once its first forward has encoded it, the
    # encoder's output. The sequence the runner decodes is then the decoder's.
    source: torch.Tensor | None = None
    encoded: Any = None

    @classmethod
    def with_cache(cls, model: PreTrainedModel, use_cache: bool, role: str, clock: Clock, cache: str, room: int,
                   **kwargs) -> Runner:
        """A runner whose cache is of kind `cache` ("dynamic", or "static" with room for `room` tokens). A model
        that keeps no KV cache (an n-gram draft) has no static cache to decode into: it reads the sequence."""
        if cache == "static" and model.config.is_encoder_decoder:
            raise ValueError(f"cache=static is not supported for the encoder–decoder {type(model).__name__}: its "
                             "cross-attention cache has another length than its self-attention cache; use "
                             "cache=dynamic.")
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
        if self.source is None:
            inputs = {"input_ids": fed, "logits_to_keep": keep}
        else:
            if self.encoded is None:  # once per call, inside its first forward's time: the call's prefill
                self.encoded = self.model.get_encoder()(input_ids=self.source)
            # Without a KV cache every forward decodes the whole sequence, reading the encoding it kept; with one,
            # the cross-attention entries stay and only the self-attention cache grows and is cropped.
            inputs = {"decoder_input_ids": fed, "encoder_outputs": self.encoded}
        out = call(past_key_values=self.cache, use_cache=self.use_cache, **inputs, **extra)
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


def finish(clock: Clock, seq: torch.Tensor, prompt_length: int, settings: dict[str, Any], *runners: Runner,
           margins: torch.Tensor | None = None) -> Generation:
    """End a call of one of our loops: stop its clock, count its new tokens, and add to its settings the caches its
    runners really used. seq: [1, L + N] -> Generation of the N new tokens."""
    clock.stop()
    clock.stats.new_tokens = seq.shape[1] - prompt_length
    caches = {"cache": {runner.role: cache_kind(runner.cache) for runner in runners},
              "cache_bytes": {runner.role: cache_bytes(runner.cache) for runner in runners}}
    return Generation(seq[0, prompt_length:], clock.stats, settings | caches, margins)
