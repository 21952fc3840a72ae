"""What a draft would do along the target's own output, from one teacher-forced forward: the traces that
`specsweep.rounds` replays at every γ without decoding.

Greedy: the draft's argmax at each position given the target's prefix, compared with the target's token there (the
matches). Sampling: Σ_x min(p(x), q(x)) at each position of the target's trajectory, Leviathan et al.'s (2023) α
position by position (the probability that speculative sampling keeps a draft there).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from specsweep.decoding.checks import split_source
from specsweep.decoding.sampling import Sampling, fit_vocab, logits_to_probs


def next_token_logits(model: PreTrainedModel, sequence: torch.Tensor, prompt_length: int, vocab: int) -> torch.Tensor:
    """The model's logits for each new token of `sequence`, given everything before it, in one forward.
    sequence: [1, L + N] -> [N, vocab] (over the target's ids). An encoder–decoder model reads the prompt as its
    source and the new tokens after its decoder start token."""
    new = sequence.shape[1] - prompt_length
    source, start = split_source(model, sequence[:, :prompt_length])
    if source is None:
        logits = model(input_ids=sequence, use_cache=False, logits_to_keep=new + 1).logits[0, :-1]  # [N, V_model]
    else:
        decoder = torch.cat([start, sequence[:, prompt_length:]], dim=1)  # [1, 1 + N]
        logits = model(input_ids=source, decoder_input_ids=decoder, use_cache=False).logits[0, :-1]
    return fit_vocab(logits, vocab)


@torch.inference_mode()
def greedy_matches(draft: PreTrainedModel, sequence: torch.Tensor, prompt_length: int, vocab: int) -> list[bool]:
    """matches[t]: the draft's argmax given the first t new tokens is new token t. sequence: [1, L + N] -> [N]."""
    chosen = next_token_logits(draft, sequence, prompt_length, vocab).argmax(dim=-1)  # [N]
    return (chosen == sequence[0, prompt_length:]).tolist()


@torch.inference_mode()
def acceptance_along(target: PreTrainedModel, draft: PreTrainedModel, sequence: torch.Tensor, prompt_length: int,
                     sampling: Sampling) -> list[float]:
    """Σ_x min(p_t(x), q_t(x)) at each new position t, p and q as `sampling` draws them. [1, L + N] -> [N]."""
    vocab = target.get_output_embeddings().out_features
    p = logits_to_probs(next_token_logits(target, sequence, prompt_length, vocab), sampling)  # [N, V]
    q = logits_to_probs(next_token_logits(draft, sequence, prompt_length, vocab), sampling)  # [N, V]
    return torch.minimum(p, q).sum(dim=-1).clamp(max=1.0).tolist()
