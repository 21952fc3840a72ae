"""The checks of the arguments our decoding methods take: each failure is one sentence naming the argument, its
value and what is allowed, raised before anything runs."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from specsweep.decoding.runner import CACHES


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
    """The EOS ids as a set (empty: decode to max_new_tokens), whether one id or transformers' list was given."""
    if eos_token_id is None:
        return set()
    return {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id)


def check_cache_kind(cache: str, use_cache: bool) -> None:
    """The KV cache kind a call asks for (the config's own check is specsweep.app.cell.check_cache)."""
    if cache not in CACHES:
        raise ValueError(f"cache={cache!r} is invalid; it must be one of {', '.join(CACHES)}.")
    if cache == "static" and not use_cache:
        raise ValueError("cache=static needs use_cache=True: a static cache is a KV cache.")


def check_stop_below(stop_below: float) -> None:
    if isinstance(stop_below, bool) or not 0 <= stop_below < 1:
        raise ValueError(f"stop_below={stop_below} is invalid; it must be in [0, 1): the draft probability below "
                         "which a round stops drafting (0: never stop early).")


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
    kinds = [getattr(m.config, "is_encoder_decoder", False) for m in (target, draft)]
    if kinds[0] != kinds[1]:
        words = ["an encoder–decoder" if kind else "a decoder-only" for kind in kinds]
        raise ValueError(f"the draft is {words[1]} model and the target {words[0]} one; speculative decoding "
                         "needs both of one kind (a decoder-only draft reading the target's encoder output, as "
                         "Distil-Whisper does, is not supported).")
    for name in ("eos_token_id", "bos_token_id"):
        t, d = getattr(target.config, name, None), getattr(draft.config, name, None)
        if t is not None and d is not None and t != d:
            raise ValueError(
                f"the draft's {name}={d} differs from the target's {name}={t}, so they do not share a tokenizer; "
                "speculative decoding needs one (use method prompt_lookup for a target without a matching draft)."
            )


def check_draft_can_read(tokens: list[int], draft_vocab: int) -> None:
    """A shared tokenizer never yields ids past the draft's (padded) embedding; a mismatched pair can."""
    if tokens and max(tokens) >= draft_vocab:
        raise ValueError(
            f"token id {max(tokens)} is outside the draft's vocabulary of {draft_vocab} ids, so draft and target "
            "do not share a tokenizer; use method prompt_lookup for a target without a matching draft."
        )


def split_source(model: PreTrainedModel, seq: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(the source an encoder–decoder model encodes, the sequence its decoder starts from): for such a model, the
    request's ids are the source and decoding starts at its decoder start token, [1, 1]; for a decoder-only model,
    (None, the request's ids)."""
    if not getattr(model.config, "is_encoder_decoder", False):
        return None, seq
    start = getattr(model.generation_config, "decoder_start_token_id", None)
    start = model.config.decoder_start_token_id if start is None else start
    if start is None:
        raise ValueError(f"the encoder–decoder {type(model).__name__} names no decoder_start_token_id; set it in its "
                         "config or generation_config.")
    return seq, seq.new_full((1, 1), int(start))
