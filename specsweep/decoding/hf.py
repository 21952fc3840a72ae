"""transformers' own candidate decoding, instrumented: assisted generation (AsG in Liu et al. 2024) and prompt lookup.

transformers exposes no acceptance counts, so we count in the one place that sees every round: the candidate generator's
`update_candidate_strategy(input_ids, scores, num_matches)` runs once per round, with scores of shape
[1, drafted + 1, V]. Forward hooks time each model's forwards with the same rules as our own loop.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedModel

from specsweep.decoding.checks import check_pair, check_request, eos_set, split_source
from specsweep.decoding.methods import method
from specsweep.decoding.runner import cache_bytes, cache_kind
from specsweep.decoding.sampling import Sampling
from specsweep.decoding.stats import DecodeStats, Generation
from specsweep.decoding.timing import Clock


@contextmanager
def _generation_config(model: PreTrainedModel, config: GenerationConfig) -> Iterator[None]:
    """Run with exactly `config`: generate() fills unset fields from model.generation_config, and the
    assistant's settings persist between calls (huggingface/transformers#40739), so swap and restore."""
    saved = model.generation_config
    model.generation_config = config
    try:
        yield
    finally:
        model.generation_config = saved


@contextmanager
def _timed_forwards(model: PreTrainedModel, role: str, clock: Clock, round_state: dict) -> Iterator[None]:
    """The call's clock around each forward of `model`, through forward hooks (generate() owns the loop)."""
    state = {"mark": None, "index": 0}

    def before(module, args):
        state["mark"] = clock.before()

    def after(module, args, output):
        full = role == "target" and len(round_state["drafts"]) == round_state["gamma"]
        clock.after(state["mark"], role, state["index"], full)
        state["index"] += 1

    def encoded(module, args, output):  # an encoder–decoder model's encoder: once per call, booked as its prefill
        clock.after(state["mark"], role, 0)

    handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    if getattr(model.config, "is_encoder_decoder", False):
        encoder = model.get_encoder()
        handles += [encoder.register_forward_pre_hook(before), encoder.register_forward_hook(encoded)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def _counted_rounds(target: PreTrainedModel, stats: DecodeStats, max_length: int, round_state: dict,
                    draft_model: bool) -> Iterator[None]:
    """Count each round of the candidate generator that generate() builds, by our engine's rules: drafts
    beyond the length budget were never drafted, and a round rejects when a kept token differs from its draft."""
    build = target._get_candidate_generator

    def build_counted(*args, **kwargs):
        generator = build(*args, **kwargs)
        get_candidates, update = generator.get_candidates, generator.update_candidate_strategy

        def get_candidates_counted(input_ids: torch.Tensor, **kw):
            candidates, logits = get_candidates(input_ids, **kw)
            start = input_ids.shape[1]
            budget = max_length - start - 1  # the last token always comes from the target
            round_state["start"] = start
            round_state["drafts"] = candidates[0, start : start + budget].tolist()
            return candidates, logits

        def update_counted(input_ids: torch.Tensor, scores: torch.Tensor, num_matches: int) -> None:
            drafts, kept = round_state["drafts"], input_ids[0, round_state["start"] :].tolist()
            accepted = 0
            while accepted < min(len(drafts), len(kept)) and drafts[accepted] == kept[accepted]:
                accepted += 1
            rejected = accepted < len(drafts) and len(kept) > accepted
            stats.record_round(len(drafts), accepted, rejected)
            update(input_ids, scores, num_matches)
            if draft_model:  # what the adaptive schedule and the confidence threshold have become (transformers
                # moves both; prompt lookup has neither)
                round_state["lookahead"] = int(generator.num_assistant_tokens)
                round_state["threshold"] = float(generator.assistant_generation_config.assistant_confidence_threshold
                                                 or 0.0)
            round_state["draft_cache"] = cache_kind(getattr(generator, "assistant_kwargs", {}).get("past_key_values"))

        generator.get_candidates = get_candidates_counted
        generator.update_candidate_strategy = update_counted
        return generator

    target._get_candidate_generator = build_counted  # on this instance only, for this call only
    try:
        yield
    finally:
        del target._get_candidate_generator


def _generate(
    target: PreTrainedModel,
    input_ids: torch.Tensor,
    *,
    gamma: int,
    max_new_tokens: int,
    sampling: Sampling,
    use_cache: bool,
    eos_token_id: int | list[int] | None,
    generator: torch.Generator | None,
    method: str,
    draft: PreTrainedModel | None = None,
    assistant: GenerationConfig | None = None,
    instrumented: bool = True,
    **candidate_settings: Any,
) -> Generation:
    seq = check_request(input_ids, max_new_tokens, gamma, generator, target.device).to(target.device)
    if not use_cache:
        raise ValueError(
            f"use_cache=False is not supported by method {method}: transformers' assisted generation always "
            "verifies drafts against a KV cache (use method speculative for the no-cache cell)."
        )
    eos = eos_set(eos_token_id)
    source, decoder = split_source(target, seq)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=not sampling.greedy,
        eos_token_id=eos_token_id,
        pad_token_id=next(iter(eos), 0),
        use_cache=True,
        **({} if source is None else {"decoder_start_token_id": int(decoder[0, 0])}),
        **({} if sampling.greedy else {
            "temperature": sampling.temperature,
            "top_k": sampling.top_k or 0,  # 0 turns off generate()'s default top_k=50
            "top_p": sampling.top_p or 1.0,
        }),
        **candidate_settings,
    )
    stats = DecodeStats(accepted_per_position=[0] * gamma)
    clock = Clock(seq.device, stats, instrumented)
    # An encoder–decoder target's output starts with its decoder start token; a decoder-only one's with the prompt.
    start = decoder.shape[1]
    max_length = start + max_new_tokens
    round_state = {"gamma": gamma, "drafts": []}
    # generate() samples from the global RNG: seed it from `generator`, without disturbing the caller's RNG.
    seed = None if generator is None else int(torch.randint(2**62, (1,), generator=generator,
                                                            device=generator.device))
    with ExitStack() as stack:
        stack.enter_context(_generation_config(target, config))
        stack.enter_context(_counted_rounds(target, stats, max_length, round_state, draft is not None))
        stack.enter_context(_timed_forwards(target, "target", clock, round_state))
        if draft is not None:
            # The lookahead is read from the assistant's own generation_config, not from generate()'s kwargs.
            initial = {"num_assistant_tokens_start": assistant.num_assistant_tokens}
            stack.enter_context(_generation_config(draft, assistant))
            stack.enter_context(_timed_forwards(draft, "draft", clock, round_state))
        if seed is not None:
            stack.enter_context(torch.random.fork_rng(devices=[seq.device] if seq.device.type == "cuda" else []))
            torch.manual_seed(seed)
        clock.start()
        with torch.inference_mode():
            out = target.generate(seq, attention_mask=torch.ones_like(seq), assistant_model=draft,
                                  generation_config=config, return_dict_in_generate=True)
        clock.stop()
    tokens = out.sequences[0, start:]
    stats.new_tokens = tokens.numel()
    cache = {"target": cache_kind(out.past_key_values)}
    if draft is not None:
        cache["draft"] = round_state.get("draft_cache")
    settings = {"method": method, "gamma": gamma, "use_cache": True, "cache": cache,
                "cache_bytes": {"target": cache_bytes(out.past_key_values)}, **candidate_settings}
    if draft is not None:
        settings |= {"num_assistant_tokens": gamma, "num_assistant_tokens_schedule":
                     assistant.num_assistant_tokens_schedule, "assistant_confidence_threshold":
                     assistant.assistant_confidence_threshold} | initial
        settings |= {"num_assistant_tokens_end": round_state.get("lookahead"),
                     "assistant_confidence_threshold_end": round_state.get("threshold")}
    return Generation(tokens, stats, settings)


SCHEDULES = ("constant", "heuristic", "heuristic_transient")
# "heuristic" carries the lookahead it learned into the next generate() call through the assistant's
# generation_config; we swap that config in and out per call, so keep it per draft model, as transformers would.
_CARRIED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def assistant_config(draft: PreTrainedModel, gamma: int, schedule: str, confidence_threshold: float
                     ) -> GenerationConfig:
    """The assistant's generation_config for one call: the lookahead starts at gamma (a "heuristic" schedule: where
    the draft's previous call left it), moved by the schedule; drafting also stops early below the threshold."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is invalid; it must be one of {', '.join(SCHEDULES)} "
                         "(transformers' num_assistant_tokens_schedule).")
    if isinstance(confidence_threshold, bool) or not 0 <= confidence_threshold < 1:
        raise ValueError(f"confidence_threshold={confidence_threshold} is invalid; it must be in [0, 1) "
                         "(transformers' assistant_confidence_threshold; 0: off).")
    key = (gamma, confidence_threshold)
    carried = _CARRIED.get(draft, {}).get(key) if schedule == "heuristic" else None
    if carried is not None:
        return carried
    config = GenerationConfig(num_assistant_tokens=gamma, num_assistant_tokens_schedule=schedule,
                              assistant_confidence_threshold=confidence_threshold)
    if schedule == "heuristic":
        _CARRIED.setdefault(draft, {})[key] = config
    return config


@method(uses_draft=True, uses_gamma=True, needs_kv_cache=True)
def assisted(
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
    schedule: str = "constant",
    confidence_threshold: float = 0.0,
    instrumented: bool = True,
) -> Generation:
    """transformers' generate(assistant_model=draft). By default the lookahead is pinned to gamma; `schedule`
    "heuristic" / "heuristic_transient" let transformers move it (+2 after a round with every draft kept, -1
    otherwise), and `confidence_threshold` > 0 stops a round's drafting below that draft probability (transformers
    also tunes it during a call when scikit-learn is installed; the value it ended at is recorded)."""
    check_pair(target, draft, tokenizers)
    if draft is target:
        raise ValueError("draft is the target object itself; pass a separate copy so each keeps its own cache.")
    return _generate(target, input_ids, gamma=gamma, max_new_tokens=max_new_tokens, sampling=sampling,
                     use_cache=use_cache, eos_token_id=eos_token_id, generator=generator, method="assisted",
                     draft=draft, assistant=assistant_config(draft, gamma, schedule, confidence_threshold),
                     instrumented=instrumented)


@method(uses_gamma=True, needs_kv_cache=True)
def prompt_lookup(
    target: PreTrainedModel,
    input_ids: torch.Tensor,
    *,
    gamma: int,
    max_ngram: int = 2,
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    use_cache: bool = True,
    eos_token_id: int | list[int] | None = None,
    generator: torch.Generator | None = None,
    instrumented: bool = True,
) -> Generation:
    """transformers' prompt-lookup decoding: up to gamma drafts copied from where the last n-gram occurred."""
    if isinstance(max_ngram, bool) or int(max_ngram) != max_ngram or max_ngram < 1:
        raise ValueError(f"max_ngram={max_ngram} is invalid; it must be a positive integer.")
    return _generate(target, input_ids, gamma=gamma, max_new_tokens=max_new_tokens, sampling=sampling,
                     use_cache=use_cache, eos_token_id=eos_token_id, generator=generator,
                     method="prompt_lookup", instrumented=instrumented, prompt_lookup_num_tokens=gamma,
                     max_matching_ngram_size=max_ngram)
