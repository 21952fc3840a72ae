"""The embedded model family: GPT-NeoX models trained offline on the running interpreter's standard library.

The family is built once per recipe and cached under $SPECSWEEP_HOME (default ~/.cache/specsweep), in
Hugging Face format, so it loads through the same `from_pretrained` code as hub models. A byte-level BPE
tokenizer is trained with `tokenizers`; the target is trained on next-token prediction; every draft is
distilled from the target (KL to its next-token distribution), all drafts from the same target forward; a unigram
and a bigram model are fitted on the same tokens (Leviathan et al. 2023 measure such drafts beside small
transformers). Medusa heads for the target are a second entry, trained on first use (`build_medusa`). Both entries
are written through `specsweep.models.store`'s cache (checksummed, under a lock, whole or not at all).

`specsweep-build-family [--micro] [--medusa]` (specsweep.cli.build_family) builds them ahead of a sweep; the old
`python -m specsweep.models.embedded build` still runs it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import runpy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

from specsweep.data.corpus import corpus_digest, read_texts, stdlib_files
from specsweep.data.training import training_documents
from specsweep.models import distill, medusa, ngram
from specsweep.models.distill import Shape, schedule
from specsweep.models.store import MANIFEST, cached, seal
from specsweep.record import count_label

EOS = "<|endoftext|>"
FORMAT_VERSION = 3  # bump when the training code changes what a recipe produces (2: n-gram drafts; 3: autocast)
NGRAM_ORDERS = {"unigram": 1, "bigram": 2}  # draft name -> order


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the family's weights; its hash names the cache entry."""

    vocab_size: int = 4096
    seq_len: int = 256
    batch_size: int = 16
    # Deep and narrow: its small matmuls leave a CPU forward's cost in the layers run one after another, so verifying
    # γ + 1 tokens in one forward costs little more than one step, as speculative decoding assumes (Leviathan et al.
    # 2023).
    target: Shape = Shape(layers=12, hidden=192)
    drafts: tuple[Shape, ...] = (Shape(1, 32), Shape(1, 64), Shape(1, 128), Shape(2, 192))
    # Fewer distillation steps leave the larger drafts no better than the smallest (α stops rising with size), and a
    # distillation step costs more than a target step: the teacher and every draft compute logits over the whole
    # vocabulary at every position.
    target_steps: int = 300
    draft_steps: int = 300
    target_lr: float = 2e-3
    draft_lr: float = 3e-3
    heldout_every: int = 20  # one file in this many (by path hash) is held out for evaluation
    max_files: int | None = None  # the micro recipe reads only the first few files
    seed: int = 0
    # Training's autocast dtype where the CPU computes it natively (AVX512-BF16, AMX); float32 elsewhere, where an
    # emulated bfloat16 would be slower than float32. The weights are kept and saved in float32 either way.
    autocast: str = "bfloat16"

    def key(self) -> str:
        """Everything that changes the weights: this recipe, the training code's version, the libraries that
        train, the precision training ran in here, and the corpus itself (the running interpreter's standard
        library differs between builds)."""
        versions = [FORMAT_VERSION, torch.__version__, transformers.__version__, tokenizers.__version__,
                    str(autocast_dtype(self))]
        corpus = corpus_digest(self.heldout_every, self.max_files)
        blob = json.dumps([dataclasses.asdict(self), versions, corpus], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, fields: dict) -> Recipe:
        """The inverse of dataclasses.asdict, as stored in a family's manifest."""
        shapes = {"target": Shape(**fields["target"]), "drafts": tuple(Shape(**d) for d in fields["drafts"])}
        return cls(**(fields | shapes))


MICRO = Recipe(vocab_size=384, seq_len=64, batch_size=8, target=Shape(2, 32), drafts=(Shape(1, 16), Shape(1, 32)),
               target_steps=20, draft_steps=20, max_files=30)


@dataclass(frozen=True)
class MedusaRecipe:
    """Medusa heads for a built family's target, distilled from it on the family's training tokens."""

    heads: int = 4
    steps: int = 1000  # minutes on a CPU, once: a sweep's first Medusa cell waits for them (`build_medusa`)
    batch_size: int = 8
    seq_len: int = 128
    lr: float = 1e-3
    seed: int = 0

    def key(self, family: Path) -> str:
        """This recipe and the family it is trained on (its key names its weights, corpus and libraries)."""
        blob = json.dumps([dataclasses.asdict(self), FORMAT_VERSION, family.name], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class LadderRecipe:
    """A dense ladder of drafts for a built family's target, made by `specsweep.models.distill` on the family's
    training tokens (Liu et al. 2024 ask where the border in draft scale lies: this is the family's ruler)."""

    shapes: tuple[Shape, ...]
    training: distill.Training = distill.Training()
    heldout_tokens: int = 1 << 16

    def key(self, family: Path) -> str:
        blob = json.dumps([dataclasses.asdict(self), FORMAT_VERSION, family.name], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# About 130K to 5M parameters, log-spaced, with two pairs at equal parameters that trade depth for width (4 x narrow
# against 1 x wide, at about 0.7M and 1.8M: Yan et al. 2024 find depth costs a draft more than width).
LADDER_SHAPES = tuple(Shape(*s) for s in ((1, 16), (1, 32), (1, 64), (4, 64), (1, 80), (1, 128), (4, 128),
                                          (1, 176), (1, 384)))
MICRO_SHAPES = (Shape(1, 8), Shape(1, 16), Shape(2, 16))
MICRO_TRAINING = distill.Training(steps=6, batch_size=4, seq_len=32, checkpoint_every=2)
LADDERS = {
    "kd": LadderRecipe(LADDER_SHAPES),
    "plain": LadderRecipe(LADDER_SHAPES, distill.Training(loss="nll")),  # the same shapes on next-token loss alone
    "micro": LadderRecipe(MICRO_SHAPES, MICRO_TRAINING, 512),
    "micro_plain": LadderRecipe(MICRO_SHAPES, dataclasses.replace(MICRO_TRAINING, loss="nll"), 512),
}

MEDUSA_RECIPE = MedusaRecipe()
MICRO_MEDUSA_RECIPE = MedusaRecipe(heads=3, steps=30, batch_size=4, seq_len=32)


def home() -> Path:
    return Path(os.environ.get("SPECSWEEP_HOME", Path.home() / ".cache" / "specsweep"))


def family_dir(recipe: Recipe, root: Path | None = None) -> Path:
    """Where a recipe's family is cached: one directory per recipe hash."""
    return (root or home()) / "families" / f"embedded-{recipe.key()}"


# --- tokenizer and models --------------------------------------------------------------------------------

def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS, unk_token=EOS,
                                   pad_token=EOS, model_max_length=1024)


def new_model(shape: Shape, tokenizer: PreTrainedTokenizerFast) -> GPTNeoXForCausalLM:
    eos = tokenizer.eos_token_id
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=max(1, shape.hidden // 32), intermediate_size=4 * shape.hidden,
        max_position_embeddings=1024, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    return GPTNeoXForCausalLM(config)


def size_name(model: torch.nn.Module) -> str:
    """A model's size name, from its parameter count: 29M, 6M, 1.2M, 574K."""
    return count_label(sum(p.numel() for p in model.parameters()))


# --- training --------------------------------------------------------------------------------------------

def batches(tokens: torch.Tensor, recipe: Recipe, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """Random windows of the token stream: [batch, seq_len]."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, len(tokens) - recipe.seq_len, (recipe.batch_size,), generator=generator)
        yield torch.stack([tokens[s : s + recipe.seq_len] for s in starts.tolist()])


def autocast_dtype(recipe: Recipe) -> torch.dtype | None:
    """The dtype training autocasts to on this machine's CPU, or None for plain float32."""
    if recipe.autocast == "bfloat16" and distill.cpu_has_bf16():
        return torch.bfloat16
    return None


def autocast(recipe: Recipe) -> torch.autocast:
    dtype = autocast_dtype(recipe)
    return torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def train_target(model: GPTNeoXForCausalLM, tokens: torch.Tensor, recipe: Recipe) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.target_lr, weight_decay=0.1)
    scheduler = schedule(optimizer, recipe.target_steps)
    model.train()
    progress = tqdm(batches(tokens, recipe, recipe.target_steps, recipe.seed), total=recipe.target_steps,
                    desc="target", leave=False)
    for batch in progress:
        with autocast(recipe):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step(), scheduler.step(), optimizer.zero_grad()
        progress.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()


def distill_drafts(drafts: list[GPTNeoXForCausalLM], target: GPTNeoXForCausalLM, tokens: torch.Tensor,
                   recipe: Recipe) -> None:
    """Each draft learns the target's next-token distribution (forward KL), which is what acceptance rewards."""
    optimizers = [torch.optim.AdamW(d.parameters(), lr=recipe.draft_lr, weight_decay=0.1) for d in drafts]
    schedulers = [schedule(o, recipe.draft_steps) for o in optimizers]
    for draft in drafts:
        draft.train()
    progress = tqdm(batches(tokens, recipe, recipe.draft_steps, recipe.seed + 1), total=recipe.draft_steps,
                    desc="drafts", leave=False)
    for batch in progress:
        with torch.no_grad(), autocast(recipe):
            p = torch.softmax(target(input_ids=batch).logits.float(), dim=-1)  # [B, S, V], once for all drafts
        losses = []
        for draft, optimizer, scheduler in zip(drafts, optimizers, schedulers, strict=True):
            with autocast(recipe):
                logits = draft(input_ids=batch).logits
            log_q = torch.log_softmax(logits.float(), dim=-1)
            loss = -(p * log_q).sum(-1).mean()  # cross-entropy to p: KL(p || q) up to p's entropy
            loss.backward()
            torch.nn.utils.clip_grad_norm_(draft.parameters(), 1.0)
            optimizer.step(), scheduler.step(), optimizer.zero_grad()
            losses.append(loss.item())
        progress.set_postfix(loss=" ".join(f"{x:.2f}" for x in losses))
    for draft in drafts:
        draft.eval()


# --- the cache entries -----------------------------------------------------------------------------------

def build(recipe: Recipe = Recipe(), root: Path | None = None) -> Path:
    """The family's directory, built first if it is missing or incomplete. Safe when processes race."""
    return cached(family_dir(recipe, root), lambda out: _build_into(out, recipe))


def medusa_dir(family: Path, recipe: MedusaRecipe) -> Path:
    return family.parent / f"{family.name}-medusa-{recipe.key(family)}"


def build_medusa(family: Path, recipe: MedusaRecipe = MEDUSA_RECIPE) -> Path:
    """Medusa heads for a built family's target, trained first if missing (minutes on a CPU for the full recipe)."""
    return cached(medusa_dir(family, recipe), lambda out: _train_medusa_into(out, family, recipe))


def ladder_dir(family: Path, recipe: LadderRecipe) -> Path:
    return family.parent / f"{family.name}-ladder-{recipe.key(family)}"


def build_ladder(family: Path, recipe: LadderRecipe) -> Path:
    """A ladder of drafts for a built family's target, distilled first if missing (an hour on 2 CPU cores for the
    full ladder). A killed build resumes from its last checkpoint, kept beside the entry."""
    path = ladder_dir(family, recipe)
    checkpoint = path.with_name(f"{path.name}.state.pt")
    return cached(path, lambda out: _distill_ladder_into(out, family, recipe, checkpoint))


def stream(documents: list[list[int]]) -> torch.Tensor:
    """The documents' tokens, one after another: [N]."""
    return torch.tensor([t for doc in documents for t in doc], dtype=torch.long)


def built_target(family: Path) -> tuple[GPTNeoXForCausalLM, PreTrainedTokenizerFast]:
    """A built family's target, in eval mode, and its tokenizer."""
    return (GPTNeoXForCausalLM.from_pretrained(family / "target").eval(),
            PreTrainedTokenizerFast.from_pretrained(family / "target"))


def family_tokens(family: Path, tokenizer: PreTrainedTokenizerFast, split: str, files: int | None = None
                  ) -> torch.Tensor:
    """A built family's training ("train") or held-out ("heldout") files, the first `files` of them (None: all), as
    its tokenizer's stream: [N]."""
    fields = Recipe.from_dict(json.loads((family / MANIFEST).read_text())["recipe"])
    texts = read_texts(stdlib_files(split, fields.heldout_every, fields.max_files))[:files]
    return stream(training_documents(tokenizer, texts))


def _build_into(out: Path, recipe: Recipe) -> None:
    start = time.perf_counter()
    seconds = {}  # per phase: where a build's time goes, in its manifest

    def phase(name: str) -> None:
        seconds[name] = time.perf_counter() - start - sum(seconds.values())

    torch.manual_seed(recipe.seed)
    texts = read_texts(stdlib_files("train", recipe.heldout_every, recipe.max_files))
    tokenizer = train_tokenizer(texts, recipe.vocab_size)
    documents = training_documents(tokenizer, texts)
    tokens = stream(documents)
    phase("tokenizer")

    target = new_model(recipe.target, tokenizer)
    drafts = [new_model(shape, tokenizer) for shape in recipe.drafts]
    names = [size_name(d) for d in drafts]
    if len(set(names)) < len(names) or size_name(target) in names:
        raise ValueError(f"recipe gives models of equal size names {names}; make every draft a different size.")
    train_target(target, tokens, recipe)
    phase("target")
    distill_drafts(drafts, target, tokens, recipe)
    phase("drafts")

    eos = tokenizer.eos_token_id
    ngrams = [ngram.fit(documents, len(tokenizer), order, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
              for order in NGRAM_ORDERS.values()]
    phase("ngrams")

    manifest = {"recipe": dataclasses.asdict(recipe), "key": recipe.key(), "train_tokens": len(tokens),
                "target": "target", "drafts": {}, "params": {}}
    named = [("target", target), *zip(names, drafts, strict=True), *zip(NGRAM_ORDERS, ngrams, strict=True)]
    for name, model in named:
        model.save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)
        manifest["params"][name] = sum(p.numel() for p in model.parameters())
        if name != "target":
            manifest["drafts"][name] = name
    manifest["target_size"] = size_name(target)
    manifest["build_seconds"] = time.perf_counter() - start
    manifest["phase_seconds"] = seconds
    manifest["autocast"] = str(autocast_dtype(recipe))
    # Threads change floating-point summation order, hence the weights in their last bits: recorded, not keyed.
    manifest["threads"] = torch.get_num_threads()
    manifest["ngrams"] = {name: ngram.describe(model) for name, model in zip(NGRAM_ORDERS, ngrams, strict=True)}
    seal(out, manifest)


def _distill_ladder_into(out: Path, family: Path, recipe: LadderRecipe, checkpoint: Path) -> None:
    start = time.perf_counter()
    target, tokenizer = built_target(family)
    tokens, held = family_tokens(family, tokenizer, "train"), family_tokens(family, tokenizer, "heldout")
    manifest = distill.distill_into(out, target, tokenizer, str(family / "target"), tokens,
                                    held[: recipe.heldout_tokens], list(recipe.shapes), recipe.training, checkpoint)
    manifest |= {"recipe": dataclasses.asdict(recipe), "family": family.name,
                 "params": {name: c["params"] for name, c in manifest["drafts"].items()},
                 "build_seconds": time.perf_counter() - start}
    seal(out, manifest)


def _train_medusa_into(out: Path, family: Path, recipe: MedusaRecipe) -> None:
    start = time.perf_counter()
    torch.manual_seed(recipe.seed)
    target, tokenizer = built_target(family)
    tokens = family_tokens(family, tokenizer, "train")
    heads = medusa.train(target, tokens, recipe.heads, recipe.steps, recipe.batch_size, recipe.seq_len, recipe.lr,
                         recipe.seed, location=str(family / "target"))
    heads.save_pretrained(out)
    held = family_tokens(family, tokenizer, "heldout", files=20)
    seal(out, {"recipe": dataclasses.asdict(recipe), "family": family.name, "heads": recipe.heads,
               "params": sum(p.numel() for p in heads.parameters()),
               "top1_agreement": medusa.acceptance_preview(heads, target, held),
               "build_seconds": time.perf_counter() - start})


if __name__ == "__main__":  # the old path of `specsweep-build-family`, kept working
    runpy.run_module("specsweep.cli.build_family", run_name="__main__", alter_sys=True)
