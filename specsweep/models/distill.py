"""Drafts for any causal target, distilled toward its next-token distributions (Zhou et al. 2024, "DistillSpec").

A draft is the target's own architecture at another shape (layers x width): it shares the target's tokenizer, and
starts from the target's token embeddings where its width allows. All drafts of a ladder train together, so one
target forward per step serves every draft that reads the same text:

    shapes = [parse_shape("1x64"), shape_for_size(target.config, 2_000_000)]
    made = [new_draft(target, shape, "target") for shape in shapes]
    drafts = dict(zip(names([d.num_parameters() for d in made], shapes), made))
    train(target, drafts, tokens, Training(loss="tvd"), checkpoint=out / "state.pt")
    heldout(drafts, target, heldout_tokens, seq_len=256)  # each one's perplexity and agreement with the target

Losses: `fkl` (forward KL, what the embedded family's drafts use), `tvd` (total variation, which DistillSpec shows is
what acceptance rewards: a token is rejected with probability TV(p, q) at T = 1), `rkl` (reverse KL), and `nll`, plain
next-token loss on the text with no teacher (the baseline a distilled draft must beat). Text: `fixed` (windows of the
training text), `target` (the target's samples continuing them) or `draft` (each draft's own samples: on-policy, as
DistillSpec finds best). Knows nothing of Hydra or the decoding loop; `python -m specsweep.distill` is the command
line, and `specsweep.models.embedded` builds the embedded target's ladder with it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from specsweep.errors import ConfigError
from specsweep.models.store import CARD
from specsweep.record import count_label

LOSSES = ("fkl", "tvd", "rkl", "nll")
POLICIES = ("fixed", "target", "draft")
INITS = ("target", "random")
SHAPE = re.compile(r"^(\d+)x(\d+)$")
SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMB]?)$", re.IGNORECASE)
UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9}
WIDTH_STEP = 8  # widths a size is rounded to: multiples of 8 keep matmuls aligned


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int

    def __str__(self) -> str:
        return f"{self.layers}x{self.hidden}"


def schedule(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over 5% of the steps, then cosine decay to 10%."""
    warmup = max(1, steps // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass(frozen=True)
class Training:
    """Everything about training that changes a draft's weights (with the text, the target and the shapes)."""

    loss: str = "fkl"
    policy: str = "fixed"
    init: str = "target"
    steps: int = 300
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 3e-3
    seed: int = 0
    checkpoint_every: int = 25  # steps between saved states: a killed run loses at most this many


# --- shapes ------------------------------------------------------------------------------------------------

def parse_shape(text: str) -> Shape:
    """ "2x128" -> Shape(2, 128); anything else raises a ConfigError naming `--shapes`."""
    match = SHAPE.match(text.strip().lower())
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise ConfigError(f"--shapes entry {text!r} is invalid; it must be LAYERSxWIDTH with positive integers, "
                          f"such as 1x64 or 4x128.")
    return Shape(int(match[1]), int(match[2]))


def parse_size(text: str) -> int:
    """ "250K" -> 250000, "1.5M" -> 1500000; anything else raises a ConfigError naming `--sizes`."""
    match = SIZE.match(text.strip())
    if not match or float(match[1]) <= 0:
        raise ConfigError(f"--sizes entry {text!r} is invalid; it must be a parameter count such as 250K, 1.5M or "
                          f"2000000.")
    return int(float(match[1]) * UNITS[match[2].upper()])


def draft_config(target: PretrainedConfig, shape: Shape) -> PretrainedConfig:
    """The target's configuration at another depth and width: attention heads keep the target's head size where
    the width allows (Yan et al. 2024 vary drafts the same way), the MLP keeps its ratio to the width, and
    grouped-query attention keeps its ratio of query to key-value heads."""
    config = copy.deepcopy(target)
    heads, width = target.num_attention_heads, target.hidden_size
    head_size = getattr(target, "head_dim", None) or width // heads
    count = max(1, shape.hidden // head_size)
    while shape.hidden % count:
        count -= 1
    config.num_hidden_layers, config.hidden_size, config.num_attention_heads = shape.layers, shape.hidden, count
    if getattr(target, "head_dim", None):
        config.head_dim = shape.hidden // count
    kv = getattr(target, "num_key_value_heads", None)
    if kv:
        groups = max(1, heads // kv)
        config.num_key_value_heads = count // groups if count % groups == 0 and count >= groups else count
    for key in ("intermediate_size", "n_inner"):  # GPT-2 keeps None (4 x width)
        value = getattr(target, key, None)
        if isinstance(value, int):
            setattr(config, key, max(1, round(value * shape.hidden / width)))
    if isinstance(getattr(config, "layer_types", None), list):  # per-layer attention kinds (Qwen, Gemma)
        config.layer_types = [target.layer_types[i % len(target.layer_types)] for i in range(shape.layers)]
    return config


def count_parameters(config: PretrainedConfig) -> int:
    """A model's parameter count from its configuration, built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return model.num_parameters()


def shape_for_size(target: PretrainedConfig, size: int) -> Shape:
    """The shallowest shape no wider than the target whose parameter count is nearest `size`: depth costs a draft
    latency in every step and width costs little (Yan et al. 2024), so a size buys width first, then layers."""
    best = None
    for layers in range(1, target.num_hidden_layers + 1):
        widths = range(WIDTH_STEP, target.hidden_size + 1, WIDTH_STEP)
        counts = {w: count_parameters(draft_config(target, Shape(layers, w))) for w in widths}
        width = min(counts, key=lambda w: abs(math.log(counts[w] / size)))
        candidate = (abs(math.log(counts[width] / size)), Shape(layers, width))
        if best is None or candidate[0] < best[0]:
            best = candidate
        if counts[width] >= size:  # wide enough at this depth: more layers would only be deeper
            break
    return best[1]


def names(counts: list[int], shapes: list[Shape]) -> list[str]:
    """Size names of drafts with these parameter counts (575K, 1.2M), with the shape added where two drafts would
    share one (1.8M-4x128, 1.8M-1x176)."""
    sizes = [count_label(count) for count in counts]
    return [f"{size}-{shape}" if sizes.count(size) > 1 else size for size, shape in zip(sizes, shapes, strict=True)]


# --- drafts ------------------------------------------------------------------------------------------------

def new_draft(target: PreTrainedModel, shape: Shape, init: str = "target", seed: int = 0) -> PreTrainedModel:
    """A fresh draft of `shape` in the target's architecture, on its device. `init="target"` starts its token
    embeddings (and a separate output matrix) from the target's: copied where the widths match, projected onto
    their top principal directions where the draft is narrower; a wider draft starts at random."""
    torch.manual_seed(seed)
    draft = AutoModelForCausalLM.from_config(draft_config(target.config, shape)).to(target.device, torch.float32)
    if init == "target":
        pairs = [(draft.get_input_embeddings(), target.get_input_embeddings())]
        if not getattr(draft.config, "tie_word_embeddings", False):
            pairs.append((draft.get_output_embeddings(), target.get_output_embeddings()))
        with torch.no_grad():
            for mine, theirs in pairs:
                if mine is not None and theirs is not None and mine.weight.shape[1] <= theirs.weight.shape[1]:
                    mine.weight.copy_(principal(theirs.weight.float(), mine.weight.shape[1]))
    return draft.train()


def principal(matrix: torch.Tensor, width: int) -> torch.Tensor:
    """`matrix` [V, H] in its top `width` principal directions: [V, width] (itself where width = H)."""
    if width == matrix.shape[1]:
        return matrix
    _, _, v = torch.linalg.svd(matrix, full_matrices=False)  # v: [H, H], rows by decreasing singular value
    return matrix @ v[:width].T


def divergence(loss: str, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Mean over positions of D(p || q) between the target's p and the draft's q, both [B, S, V] log-probabilities."""
    if loss == "fkl":
        per = (log_p.exp() * (log_p - log_q)).sum(-1)
    elif loss == "tvd":
        per = 0.5 * (log_p.exp() - log_q.exp()).abs().sum(-1)
    elif loss == "rkl":
        per = (log_q.exp() * (log_q - log_p)).sum(-1)
    else:
        raise ValueError(f"no divergence named {loss!r}")
    return per.mean()


def window_batch(tokens: torch.Tensor, batch_size: int, seq_len: int, seed: int, step: int) -> torch.Tensor:
    """Step `step`'s random windows of the stream: [B, seq_len]; the same for the same step after a resume."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(tokens) - seq_len, (batch_size,), generator=generator).tolist()
    return torch.stack([tokens[s : s + seq_len] for s in starts])


@torch.no_grad()
def generated(model: PreTrainedModel, batch: torch.Tensor, seed: int) -> torch.Tensor:
    """The batch's first quarter continued by `model`'s samples at T = 1 to the batch's length: [B, S]."""
    torch.manual_seed(seed)
    prefix = max(1, batch.shape[1] // 4)
    new = batch.shape[1] - prefix
    was_training = model.training
    model.eval()
    out = model.generate(batch[:, :prefix], do_sample=True, temperature=1.0, top_k=0, max_new_tokens=new,
                         min_new_tokens=new, pad_token_id=model.config.eos_token_id)
    model.train(was_training)
    return out[:, : batch.shape[1]]


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16, AMX); emulated, it would be slower than float32."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def precision(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast where the device computes it natively (CUDA, `cpu_has_bf16`); float32 elsewhere. Weights
    stay float32 either way."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16())


# --- training ------------------------------------------------------------------------------------------------

def train(target: PreTrainedModel, drafts: dict[str, PreTrainedModel], tokens: torch.Tensor, training: Training,
          checkpoint: Path | None = None, progress: bool = True) -> dict[str, float]:
    """Train every draft for `training.steps` steps on `tokens` (a 1-D stream of the target's token ids); returns
    each draft's last loss. With `checkpoint`, the state is saved there every `checkpoint_every` steps (atomically)
    and a run finds it and resumes where it stopped; the file is removed at the end."""
    target.requires_grad_(False).eval()
    optimizers = {n: torch.optim.AdamW(d.parameters(), lr=training.lr, weight_decay=0.1) for n, d in drafts.items()}
    schedulers = {n: schedule(o, training.steps) for n, o in optimizers.items()}
    start, last = 0, {}
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=target.device, weights_only=False)
        for name, draft in drafts.items():
            draft.load_state_dict(state["drafts"][name])
            optimizers[name].load_state_dict(state["optimizers"][name])
            schedulers[name].load_state_dict(state["schedulers"][name])
        start, last = state["step"], state["last"]
    bar = tqdm(range(start, training.steps), initial=start, total=training.steps, desc="distil", disable=not progress)
    for step in bar:
        fixed = window_batch(tokens, training.batch_size, training.seq_len, training.seed, step).to(target.device)
        seed = training.seed * 7919 + step
        shared = generated(target, fixed, seed) if training.policy == "target" else fixed
        texts = {name: generated(draft, fixed, seed) if training.policy == "draft" else shared
                 for name, draft in drafts.items()}
        teacher: dict[int, torch.Tensor] = {}  # one target forward per distinct text (a fixed text: one in all)
        for name, draft in drafts.items():
            last[name] = step_draft(draft, target, texts[name], training, teacher, optimizers[name])
            schedulers[name].step()
        bar.set_postfix_str(" ".join(f"{n} {v:.3f}" for n, v in last.items()))
        done = step + 1
        if checkpoint is not None and (done % training.checkpoint_every == 0) and done < training.steps:
            save_state(checkpoint, {"step": done, "last": last,
                                    "drafts": {n: d.state_dict() for n, d in drafts.items()},
                                    "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                                    "schedulers": {n: s.state_dict() for n, s in schedulers.items()}})
    for draft in drafts.values():
        draft.eval()
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return last


def step_draft(draft: PreTrainedModel, target: PreTrainedModel, text: torch.Tensor, training: Training,
               teacher: dict[int, torch.Tensor], optimizer: torch.optim.Optimizer) -> float:
    """One optimiser step of one draft on `text` [B, S]; `teacher` caches the target's log-probabilities per text."""
    with precision(target.device):
        logits = draft(input_ids=text).logits  # [B, S, V]
    if training.loss == "nll":
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), text[:, 1:].flatten())
    else:
        if id(text) not in teacher:
            with torch.no_grad(), precision(target.device):
                teacher[id(text)] = torch.log_softmax(target(input_ids=text).logits.float(), dim=-1)
        loss = divergence(training.loss, teacher[id(text)], torch.log_softmax(logits.float(), dim=-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(draft.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def save_state(path: Path, state: dict) -> None:
    """Written beside and renamed: a kill while saving leaves the previous state whole."""
    partial = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    torch.save(state, partial)
    os.replace(partial, path)


# --- held-out figures ----------------------------------------------------------------------------------------

@torch.no_grad()
def heldout(models: dict[str, PreTrainedModel], target: PreTrainedModel, tokens: torch.Tensor, seq_len: int,
            batch_size: int = 8) -> dict[str, dict[str, float]]:
    """Per model: perplexity on held-out tokens (SDSL's predictor of acceptance), and top-1 agreement with the
    target on them (the greedy acceptance a draft would have with the target's own text as context)."""
    usable = (len(tokens) // seq_len) * seq_len
    windows = tokens[:usable].reshape(-1, seq_len).to(target.device)
    totals = {name: [0.0, 0, 0] for name in models}  # negative log-likelihood, agreements, positions
    for rows in windows.split(batch_size):
        with precision(target.device):
            choice = target(input_ids=rows).logits[:, :-1].argmax(-1)
        for name, model in models.items():
            with precision(target.device):
                logits = model(input_ids=rows).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten(), reduction="sum")
            totals[name][0] += nll.item()
            totals[name][1] += (logits.argmax(-1) == choice).sum().item()
            totals[name][2] += choice.numel()
    return {name: {"heldout_perplexity": math.exp(nll / max(n, 1)), "agreement": agree / max(n, 1),
                   "heldout_tokens": n} for name, (nll, agree, n) in totals.items()}


def card(shape: Shape, training: Training, params: int, figures: dict[str, float], target: str,
         seconds: float) -> dict:
    """What a draft's `distill.json` says: what it is, how it was made (`ladder_seconds`: the whole ladder's
    training, as its drafts train together), how it does on held-out text."""
    return {"shape": str(shape), "layers": shape.layers, "hidden": shape.hidden, "params": params,
            "training": asdict(training), "target": target, "ladder_seconds": seconds, **figures}


# --- a ladder, start to finish -------------------------------------------------------------------------------

def distill_into(out: Path, target: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, location: str,
                 tokens: torch.Tensor, held: torch.Tensor, shapes: list[Shape], training: Training,
                 checkpoint: Path | None = None, progress: bool = True) -> dict:
    """Train a draft of every shape for `target` and save each, with the target's tokenizer and its card, as
    out/<name>; returns the ladder's manifest (name -> card, and the target's own held-out figures)."""
    models = [new_draft(target, shape, training.init, training.seed + i) for i, shape in enumerate(shapes)]
    drafts = dict(zip(names([m.num_parameters() for m in models], shapes), models, strict=True))
    start = time.perf_counter()
    train(target, drafts, tokens, training, checkpoint, progress)
    seconds = time.perf_counter() - start
    figures = heldout(drafts | {"target": target}, target, held, training.seq_len)
    cards = {}
    for (name, draft), shape in zip(drafts.items(), shapes, strict=True):
        cards[name] = card(shape, training, draft.num_parameters(), figures[name], location, seconds)
        draft.save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)
        (out / name / CARD).write_text(json.dumps(cards[name], indent=2))
    return {"target": location, "target_params": target.num_parameters(), "target_heldout": figures["target"],
            "training": asdict(training), "train_tokens": len(tokens), "train_seconds": seconds,
            "device": str(target.device), "threads": torch.get_num_threads(), "drafts": cards}
