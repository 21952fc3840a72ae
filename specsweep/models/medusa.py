"""Medusa-1 decoding heads (Cai et al. 2024, "Medusa: Simple LLM Inference Acceleration Framework with
Multiple Decoding Heads"), as a Hugging Face-format model, and their self-distillation from a frozen target.

Head i (1-based) reads the target's last hidden state h_t, the input of the target's own lm_head (which turns
h_t into the distribution of token t+1), and predicts token t+1+i. The heads are saved with `save_pretrained`
and load with `AutoModel.from_pretrained` once this module is imported (it registers them).

    heads = train(target, stream, heads=4, steps=300, batch_size=8, seq_len=256, lr=1e-3, seed=0, location=...)
    heads.save_pretrained(out)
    logits = heads(hidden)  # [..., K, V]

Knows nothing of Hydra, the decoding loop or the study; `specsweep-train-medusa` (specsweep.cli.train_medusa) is the
command line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from itertools import islice

import torch
from torch import nn
from tqdm import tqdm
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers import initialization as init

from specsweep.errors import ConfigError

MODEL_TYPE = "specsweep_medusa"
# Medusa-1 weights head k's loss by lambda_k = 0.8**k (Cai et al. 2024, section 2.2.1): a farther token is harder
# to predict, so its head's loss is larger, and unweighted it would dominate the gradient of the near heads, whose
# tokens are the ones most often accepted.
DECAY = 0.8
# Medusa's released training recipe: warm-up over 10% of the steps, then cosine decay to zero.
WARMUP = 0.1


class MedusaConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    hidden_size: int = 4096  # the width of the target's last hidden state (its lm_head's input)
    vocab_size: int = 32000  # the target lm_head's output size
    heads: int = 4  # K: head i predicts the token i+1 positions ahead of the hidden state it reads
    target: str = ""  # where the target was loaded from; informational, never read back


class ResBlock(nn.Module):
    """x + SiLU(Wx + b), as in Medusa; W and b start at zero so a fresh block is the identity (SiLU(0) = 0)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, hidden_size)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.linear(x))


class MedusaHeads(PreTrainedModel):
    """K heads, each a residual block then a bias-free output layer. `forward(hidden [..., H]) -> [..., K, V]`."""

    config_class = MedusaConfig
    base_model_prefix = "medusa"
    main_input_name = "hidden"
    _no_split_modules = ["ResBlock"]

    def __init__(self, config: MedusaConfig) -> None:
        super().__init__(config)
        # Named as in Medusa's own checkpoints (medusa_head.<k>.0.linear, medusa_head.<k>.1), so their weights map 1:1.
        self.medusa_head = nn.ModuleList(
            nn.Sequential(ResBlock(config.hidden_size), nn.Linear(config.hidden_size, config.vocab_size, bias=False))
            for _ in range(config.heads)
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # transformers calls this only on modules that hold parameters themselves, so on the Linears, not on a
        # ResBlock or a head; the residual Linear is the one with a bias (the output layer has none, as in Medusa).
        # Its `init` functions skip tensors already loaded from a checkpoint, so loading never clobbers them.
        if isinstance(module, nn.Linear) and module.bias is not None:
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            # Matters only for heads built from a config alone; `from_target` overwrites it with the lm_head.
            init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, hidden: torch.Tensor, count: int | None = None) -> torch.Tensor:
        """hidden [..., H] -> logits [..., count, V] of the first `count` heads (all K by default): a round that
        drafts γ < K tokens pays for γ output layers only."""
        hidden = hidden.to(self.dtype)  # a half-precision target may feed float32 heads (as `distill` leaves them)
        return torch.stack([head(hidden) for head in self.medusa_head[:count]], dim=-2)

    @classmethod
    def from_target(cls, target: PreTrainedModel, heads: int, location: str = "") -> MedusaHeads:
        """Fresh heads for `target`: residual blocks zero and output layers copies of its lm_head, as Medusa starts
        them, so before training head i predicts token t+1 like the target (a good start for t+1+i)."""
        if heads < 1:
            raise ConfigError(f"heads={heads!r} is invalid; it must be at least 1.")
        lm_head = target.get_output_embeddings()
        if lm_head is None:
            raise ConfigError(f"target {location or type(target).__name__} has no output embeddings (lm_head); "
                              "it must be a causal language model.")
        # The lm_head's input width, not config.hidden_size: some models project the last hidden state (OPT-350m:
        # hidden_size 1024, lm_head 512), and hidden_states[-1] is what the lm_head reads.
        hidden = getattr(lm_head, "in_features", None) or target.config.hidden_size
        config = MedusaConfig(hidden_size=hidden, vocab_size=lm_head.out_features, heads=heads,
                              target=str(location))
        model = cls(config)
        with torch.no_grad():
            for head in model.medusa_head:
                head[1].weight.copy_(lm_head.weight)
        weight = lm_head.weight
        return model.to(device=weight.device, dtype=weight.dtype).eval()


def _register() -> None:
    # exist_ok: importing twice (or reloading this module, which makes new classes) must not raise.
    AutoConfig.register(MODEL_TYPE, MedusaConfig, exist_ok=True)
    AutoModel.register(MedusaConfig, MedusaHeads, exist_ok=True)


_register()


# --- the target's side -----------------------------------------------------------------------------------

def last_hidden(target: PreTrainedModel, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's logits [B, S, V] and last hidden state [B, S, H]. In transformers' causal LMs the last entry
    of `hidden_states` is taken after the final norm, so it is exactly the lm_head's input."""
    out = target(input_ids=input_ids, output_hidden_states=True, use_cache=False)
    return out.logits, out.hidden_states[-1]


def _head_device(target: PreTrainedModel) -> torch.device:
    """Where the target's last hidden state comes out: its lm_head's device (not its embeddings', when sharded)."""
    return target.get_output_embeddings().weight.device


# --- training --------------------------------------------------------------------------------------------

def _schedule(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, round(WARMUP * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def distill(heads: MedusaHeads, target: PreTrainedModel, batches: Iterable[torch.Tensor], steps: int,
            lr: float = 1e-3, progress: bool = True) -> list[float]:
    """Medusa-1 self-distillation: the target stays frozen and each head learns the target's own distribution
    i positions later (soft labels, so the heads imitate the model they will draft for, not the corpus).
    Runs `steps` batches (fewer if `batches` runs out) and returns each step's weighted loss. The heads are
    moved to the target's device and trained, and left, in float32: AdamW's updates vanish in half precision."""
    if steps < 1:
        raise ConfigError(f"steps={steps!r} is invalid; it must be at least 1.")
    device = _head_device(target)
    heads.to(device=device, dtype=torch.float32).train()
    target.eval()
    optimizer = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=0.0)
    scheduler = _schedule(optimizer, steps)
    losses: list[float] = []
    bar = tqdm(islice(batches, steps), total=steps, desc="medusa heads", leave=False, disable=not progress)
    try:
        for batch in bar:
            with torch.no_grad():
                logits, hidden = last_hidden(target, batch.to(target.device))
                p = torch.softmax(logits.to(device, torch.float32), dim=-1)  # [B, S, V]
                h = hidden.to(device, torch.float32)  # [B, S, H]
            length = h.shape[1]
            total = 0.0
            for i, head in enumerate(heads.medusa_head, start=1):
                if length <= i:  # the window holds no (t, t+i) pair for this head
                    continue
                log_q = torch.log_softmax(head(h[:, : length - i]), dim=-1)
                ce = -(p[:, i:] * log_q).sum(-1).mean()  # soft cross-entropy: KL(p || q) up to p's entropy
                # One backward per head frees its [B, S, V] activations before the next head builds its own.
                (DECAY**i * ce).backward()
                total += DECAY**i * ce.item()
            torch.nn.utils.clip_grad_norm_(heads.parameters(), 1.0)
            optimizer.step(), scheduler.step(), optimizer.zero_grad(set_to_none=True)
            losses.append(total)
            bar.set_postfix(loss=f"{total:.3f}")
    finally:
        bar.close()
        heads.eval()
    return losses


@torch.no_grad()
def acceptance_preview(heads: MedusaHeads, target: PreTrainedModel, tokens: torch.Tensor, seq_len: int = 256,
                       batch_size: int = 8) -> list[float]:
    """Each head's top-1 agreement with the target on a token stream: the fraction of positions t at which
    argmax head_i(h_t) == argmax p_{t+i}, the target's own greedy choice for token t+1+i. The stream is cut
    into windows of `seq_len` (the context resets at each, as in training); a head with no position to
    score (a stream of at most i tokens) gets nan. A rough guide to a head's acceptance under greedy decoding."""
    tokens = tokens.reshape(-1)
    full = len(tokens) // seq_len
    windows = list(tokens[: full * seq_len].view(full, seq_len).split(batch_size)) if full else []
    if len(tokens) > full * seq_len:
        windows.append(tokens[full * seq_len :].unsqueeze(0))
    hits = [0] * heads.config.heads
    seen = [0] * heads.config.heads
    for batch in windows:
        logits, hidden = last_hidden(target, batch.to(target.device))
        choice = logits.argmax(-1).to(heads.device)  # [B, S]
        h = hidden.to(heads.device, heads.dtype)
        length = h.shape[1]
        for i, head in enumerate(heads.medusa_head, start=1):
            if length <= i:
                continue
            guess = head(h[:, : length - i]).argmax(-1)
            hits[i - 1] += int((guess == choice[:, i:]).sum())
            seen[i - 1] += guess.numel()
    return [hit / n if n else math.nan for hit, n in zip(hits, seen, strict=True)]


def windows(token_stream: torch.Tensor, batch_size: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless random windows of the stream, [batch_size, seq_len], reproducible from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        starts = torch.randint(0, len(token_stream) - seq_len + 1, (batch_size,), generator=generator)
        yield torch.stack([token_stream[s : s + seq_len] for s in starts.tolist()])


def train(target: PreTrainedModel, token_stream: torch.Tensor, heads: int, steps: int, batch_size: int,
          seq_len: int, lr: float = 1e-3, seed: int = 0, location: str = "", progress: bool = True) -> MedusaHeads:
    """Fresh heads for `target`, distilled on random windows of `token_stream` (a 1-D long tensor).

    Cost: each step is one target forward over batch_size x seq_len tokens (no backward through it) plus, per
    head, an H x H and an H x V matmul forward and backward (with a small target and a large vocabulary the
    heads cost as much as the target), so time grows linearly with steps, batch_size x seq_len and heads."""
    token_stream = token_stream.reshape(-1).long()
    for name, value, least in (("heads", heads, 1), ("steps", steps, 1), ("batch_size", batch_size, 1)):
        if value < least:
            raise ConfigError(f"{name}={value!r} is invalid; it must be at least {least}.")
    if seq_len <= heads:
        raise ConfigError(f"seq_len={seq_len!r} is too short for heads={heads}; it must be more than the number of "
                          "heads, so that every head has a position to learn from.")
    if len(token_stream) < seq_len + heads + 1:
        raise ConfigError(f"the token stream has {len(token_stream)} tokens; it must have at least seq_len + heads "
                          f"+ 1 = {seq_len + heads + 1}.")
    model = MedusaHeads.from_target(target, heads, location)
    distill(model, target, windows(token_stream, batch_size, seq_len, seed), steps, lr=lr, progress=progress)
    return model
