"""Unigram and bigram language models as Hugging Face-format draft models.

Leviathan et al. (2023) measure the acceptance rates of unigram and bigram drafts beside small transformers. These
are n-gram LMs fitted with add-k smoothing on token streams (`fit`), saved with `save_pretrained` as an
architecture of our own ("specsweep_ngram", registered with transformers' auto classes when this module is
imported), so they load through the same `AutoConfig` + `AutoModelForCausalLM.from_pretrained` code as every other
model and run as a draft like any causal LM. Their logits are log-probabilities; they keep no KV cache.

Why the bigram keeps only the top K next tokens of each context: a dense V x V table of the embedded family's
4096-token vocabulary has 16.8M entries, more than its target's parameters, and for the 50k-150k vocabularies of
GPT-2 or Qwen it would not fit at all. The bigram keeps, for each context token a, the K most frequent next tokens
with their exact add-k probabilities (V*K entries, K=64 by default) and backs off to the unigram for the others,
scaled so that every row still sums to one:

    P(b|a) = (c(a,b) + k) / (c(a) + kV)                              b in top-K(a)
    P(b|a) = beta(a) * P_uni(b) / (1 - sum_{b' in top-K(a)} P_uni(b'))    otherwise
    beta(a) = 1 - sum_{b in top-K(a)} P(b|a)

where c(a) counts the bigrams that start with a (so the add-k row is a proper distribution). With K >= V the table
is dense and exact add-k.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast

from specsweep.errors import ConfigError
from specsweep.record import count_label

MODEL_TYPE = "specsweep_ngram"
ORDERS = {1: "unigram", 2: "bigram"}
# A small k, not add-one: add-one puts V/(c(a)+V) of a row on tokens never seen after a, most of it for a 4096-token
# vocabulary, while a draft's acceptance alpha = sum min(p, q) (Leviathan et al. 2023) rewards mass where the target
# puts its own. The default is where the embedded family's top-64 bigram, scored against its target on held-out
# files, had the highest alpha and the lowest cross-entropy; measure again when the tokenizer or corpus changes.
DEFAULT_ADD_K = 0.01
DEFAULT_TOP_K = 64
# rest_logp of a dense table, where no token falls outside the top K: finite, so that adding it to a unigram
# log-prob stays finite in float16 (whose lowest value is -65504) and never makes a NaN.
DENSE_REST = -1e4


class NGramConfig(PretrainedConfig):
    """An n-gram LM's shape: `order` 1 (unigram) or 2 (bigram), its add-k constant and how many next tokens of
    each context the bigram table keeps (`bigram_top_k`; min(bigram_top_k, vocab_size) are kept)."""

    model_type = MODEL_TYPE

    # A custom __init__ (as remote-code configs have) rather than dataclass fields: it works with every
    # transformers 5 release, whether its configs are dataclasses or not. `bigram_top_k`, not `top_k`:
    # transformers takes a config's `top_k` for a generation setting (top-k sampling) and refuses to save it.
    def __init__(self, vocab_size: int = 2, order: int = 2, add_k: float = DEFAULT_ADD_K,
                 bigram_top_k: int = DEFAULT_TOP_K, bos_token_id: int | None = None,
                 eos_token_id: int | list[int] | None = None, pad_token_id: int | None = None, **kwargs: Any) -> None:
        check_shape(vocab_size, order, add_k, bigram_top_k)
        self.vocab_size, self.order, self.add_k = int(vocab_size), int(order), float(add_k)
        self.bigram_top_k = int(bigram_top_k)
        self.bos_token_id, self.eos_token_id, self.pad_token_id = bos_token_id, eos_token_id, pad_token_id
        super().__init__(**kwargs)

    @property
    def kept(self) -> int:
        """How many next tokens of each context the bigram table keeps."""
        return min(self.bigram_top_k, self.vocab_size)


def check_shape(vocab_size: int, order: int, add_k: float, top_k: int) -> None:
    """ConfigError (one sentence) for a shape no n-gram model can have."""
    if isinstance(vocab_size, bool) or int(vocab_size) != vocab_size or vocab_size < 1:
        raise ConfigError(f"vocab_size={vocab_size!r} is invalid; it must be an integer >= 1.")
    if order not in ORDERS or isinstance(order, bool):
        raise ConfigError(f"order={order!r} is invalid; it must be 1 (unigram) or 2 (bigram).")
    if isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1:
        raise ConfigError(f"top_k={top_k!r} is invalid; it must be an integer >= 1.")
    if not (isinstance(add_k, (int, float)) and 0 < add_k < float("inf")):
        raise ConfigError(f"add_k={add_k!r} is invalid; it must be a finite number > 0.")


class NGramForCausalLM(PreTrainedModel, GenerationMixin):
    """A unigram or bigram LM whose forward returns log-probabilities as logits (see the module docstring).

    Tables: `unigram_logp` [V]; bigram only: `top_ids` [V, K] (int32 buffer), `top_logp` [V, K], `rest_logp` [V].
    They are Parameters (never trained) so that `dtype=` in `from_pretrained` and `num_parameters` see them."""

    config_class = NGramConfig
    base_model_prefix = "ngram"
    main_input_name = "input_ids"
    _supports_sdpa = False  # there is no attention
    _no_split_modules: list[str] = []

    def __init__(self, config: NGramConfig) -> None:
        super().__init__(config)
        vocab, kept = config.vocab_size, config.kept
        self.unigram_logp = nn.Parameter(torch.zeros(vocab), requires_grad=False)
        if config.order == 2:
            self.register_buffer("top_ids", torch.zeros(vocab, kept, dtype=torch.int32))
            self.top_logp = nn.Parameter(torch.zeros(vocab, kept), requires_grad=False)
            self.rest_logp = nn.Parameter(torch.zeros(vocab), requires_grad=False)
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """`PreTrainedModel.from_pretrained`, with the tables frozen again (loading makes Parameters trainable)."""
        loaded = super().from_pretrained(*args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded).requires_grad_(False)  # tuple: output_loading_info
        return loaded

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # Nothing to cache: `generate` must not build a DynamicCache that no layer would fill.
        return False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Zeros for a fresh config; `init.zeros_` skips tensors flagged as loaded, so a checkpoint's tables stay.
        if module is self:
            for tensor in [*self.parameters(recurse=False), *self.buffers(recurse=False)]:
                init.zeros_(tensor)

    def get_input_embeddings(self) -> None:
        """None: the tables are indexed by token id directly; there is no embedding layer."""
        return None

    def get_output_embeddings(self) -> None:
        return None

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast | tuple[torch.Tensor]:
        """Log-probs of the next token at the kept positions: [B, S] -> [B, S_kept, V] in the model's dtype.
        `logits_to_keep`: k > 0 keeps the last k positions, 0 all, a 1-D tensor those indices. No KV cache: every
        call reads the tokens it is given, and `past_key_values` in the output is None."""
        if isinstance(logits_to_keep, torch.Tensor):
            ids = input_ids[:, logits_to_keep]
        else:
            ids = input_ids[:, -logits_to_keep:] if logits_to_keep else input_ids
        batch, length = ids.shape
        if self.config.order == 1:
            # A copy, not an expanded view of the table: callers may edit logits in place.
            logits = self.unigram_logp.expand(batch, length, -1).clone()
        else:
            # Only the kept positions are computed: the engine passes the whole sequence on every forward.
            logits = self.unigram_logp + self.rest_logp[ids].unsqueeze(-1)
            logits.scatter_(-1, self.top_ids[ids].long(), self.top_logp[ids])
        if return_dict is False:
            return (logits,)
        return CausalLMOutputWithPast(logits=logits, past_key_values=None)


def _register() -> None:
    # exist_ok: importing this module twice (reloads, two import paths) must not fail.
    AutoConfig.register(MODEL_TYPE, NGramConfig, exist_ok=True)
    AutoModelForCausalLM.register(NGramConfig, NGramForCausalLM, exist_ok=True)


_register()


def _token_streams(documents: Iterable[Sequence[int]], vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All tokens in one int64 tensor, and the length of each non-empty document."""
    docs = [torch.as_tensor(doc, dtype=torch.int64).reshape(-1) for doc in documents]
    docs = [doc for doc in docs if doc.numel()]
    if not docs:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    flat = torch.cat(docs)
    low, high = int(flat.min()), int(flat.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ConfigError(f"token id {bad} is outside the vocabulary; with vocab_size={vocab_size} ids must be in "
                          f"0..{vocab_size - 1}.")
    return flat, torch.tensor([doc.numel() for doc in docs], dtype=torch.int64)


def _bigram_counts(flat: torch.Tensor, lengths: torch.Tensor, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct bigram keys a*V+b within documents (sorted) and their counts."""
    first, second = flat[:-1], flat[1:]
    within = torch.ones(first.numel(), dtype=torch.bool)
    within[lengths.cumsum(0)[:-1] - 1] = False  # the last token of a document and the first of the next
    # Sparse (sorted unique keys), never a V x V table: with 150k-token vocabularies a dense count matrix would
    # be 180 GB, and at a few million tokens sorting takes well under a second.
    return torch.unique(first[within] * vocab + second[within], sorted=True, return_counts=True)


def _top_k(keys: torch.Tensor, counts: torch.Tensor, vocab: int, kept: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each context's `kept` most frequent next tokens (ties: lower id first) [V, K], and their counts [V, K]."""
    context, successor = keys // vocab, keys % vocab
    per_context = torch.bincount(context, minlength=vocab)
    # Two stable sorts: by count, then by context; keys come sorted, so equal counts stay in order of id.
    order = torch.argsort(-counts, stable=True)
    order = order[torch.argsort(context[order], stable=True)]
    context, successor, counts = context[order], successor[order], counts[order]
    starts = per_context.cumsum(0) - per_context
    rank = torch.arange(context.numel()) - starts[context]
    top = rank < kept
    top_ids = torch.zeros(vocab, kept, dtype=torch.int64)
    top_counts = torch.zeros(vocab, kept, dtype=torch.int64)
    top_ids[context[top], rank[top]] = successor[top]
    top_counts[context[top], rank[top]] = counts[top]
    # A context followed by fewer than K distinct tokens fills its row with unseen tokens (count 0), lowest ids
    # first; they are all among the first 2K ids, as at most K-1 of those were seen.
    short = (per_context < kept).nonzero().squeeze(1)
    if short.numel():
        width = min(2 * kept, vocab)
        seen = torch.zeros(vocab, width, dtype=torch.bool)
        low = successor < width
        seen[context[low], successor[low]] = True
        free = ~seen[short]
        slot = per_context[short].unsqueeze(1) + free.cumsum(1) - 1
        rows, ids = (free & (slot < kept)).nonzero(as_tuple=True)
        top_ids[short[rows], slot[rows, ids]] = ids
    return top_ids, top_counts


def fit(documents: Iterable[Sequence[int]], vocab_size: int, order: int, add_k: float = DEFAULT_ADD_K,
        top_k: int = DEFAULT_TOP_K, **token_ids: int | list[int] | None) -> NGramForCausalLM:
    """An add-k smoothed unigram (order 1) or top-K bigram (order 2) LM of token-id documents, in eval mode.
    Bigrams never span two documents. `token_ids`: bos_token_id, eos_token_id, pad_token_id for the config."""
    check_shape(vocab_size, order, add_k, top_k)
    config = NGramConfig(vocab_size=vocab_size, order=order, add_k=add_k, bigram_top_k=top_k, **token_ids)
    vocab, kept, k = config.vocab_size, config.kept, config.add_k
    flat, lengths = _token_streams(documents, vocab)
    unigram = torch.bincount(flat, minlength=vocab).double()
    total = unigram.sum()
    tables = {"unigram_logp": ((unigram + k) / (total + k * vocab)).log()}
    if order == 2:
        keys, counts = _bigram_counts(flat, lengths, vocab)
        context = torch.zeros(vocab, dtype=torch.float64).index_add_(0, keys // vocab, counts.double())
        top_ids, top_counts = _top_k(keys, counts, vocab, kept)
        top_counts = top_counts.double()
        row = context + k * vocab
        tables["top_logp"] = ((top_counts + k) / row.unsqueeze(1)).log()
        if kept < vocab:
            # Both masses from counts, not as 1 minus a sum of probabilities: no cancellation.
            beta = (context - top_counts.sum(1) + k * (vocab - kept)) / row
            outside = (total - unigram[top_ids].sum(1) + k * (vocab - kept)) / (total + k * vocab)
            tables["rest_logp"] = beta.log() - outside.log()
        else:
            tables["rest_logp"] = torch.full((vocab,), DENSE_REST, dtype=torch.float64)
        tables["top_ids"] = top_ids.to(torch.int32)
    model = NGramForCausalLM(config)
    with torch.no_grad():
        state = model.state_dict()
        for name, table in tables.items():
            state[name].copy_(table)
    return model.eval()


def _bytes_label(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= size:
            value = count / size
            return f"{value:.{1 if value < 10 else 0}f}".removesuffix(".0") + f" {unit}"
    return f"{int(count)} B"


def describe(model: NGramForCausalLM) -> str:
    """One line: order, vocabulary, K, parameters and bytes, beside what a dense table would need."""
    config = model.config
    vocab, params, footprint = config.vocab_size, model.num_parameters(), model.get_memory_footprint()
    if config.order == 1:
        return f"unigram over {vocab} tokens: {count_label(params)} parameters, {_bytes_label(footprint)}"
    if config.kept == vocab:
        return f"bigram over {vocab} tokens, dense: {count_label(params)} parameters, {_bytes_label(footprint)}"
    item = model.unigram_logp.element_size()
    return (f"bigram over {vocab} tokens, top {config.kept} per context: {count_label(params)} parameters, "
            f"{_bytes_label(footprint)} (a dense table: {count_label(vocab * vocab)}, "
            f"{_bytes_label(vocab * vocab * item)})")
