"""Medusa-1 heads (Cai et al. 2024): their start as copies of the target's lm_head, their self-distillation and the
Hugging Face round trip (the command line that trains them is tested in tests/cli/test_train_medusa.py). A few
seconds in all."""

from __future__ import annotations

import ast
import copy
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, GPTNeoXConfig, GPTNeoXForCausalLM

from specsweep.models import medusa
from specsweep.models.medusa import MedusaConfig, MedusaHeads

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

VOCAB = 96


def tiny_target(vocab: int = VOCAB, seed: int = 0) -> GPTNeoXForCausalLM:
    """A random GPT-NeoX; the large init makes its next-token distributions peaked, so a soft label carries a
    clear argmax and the distillation loss has room to fall below the labels' entropy."""
    torch.manual_seed(seed)
    config = GPTNeoXConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=256, initializer_range=0.3,
                           bos_token_id=0, eos_token_id=0)
    return GPTNeoXForCausalLM(config).eval()


@pytest.fixture(scope="module")
def target() -> GPTNeoXForCausalLM:
    return tiny_target()


def periodic_stream(length: int) -> torch.Tensor:
    """A cycle of 23 distinct tokens: the present token fixes every future one, so the target's distribution
    i tokens later is a function of what the heads see now."""
    period = torch.randperm(VOCAB, generator=torch.Generator().manual_seed(1))[:23]
    return period.repeat(length // 23 + 1)[:length]


def test_fresh_heads_are_the_target_lm_head(target):
    heads = MedusaHeads.from_target(target, heads=3, location="tiny")
    logits, hidden = medusa.last_hidden(target, torch.randint(0, VOCAB, (2, 11)))
    with torch.no_grad():
        out = heads(hidden)
    assert out.shape == (2, 11, 3, VOCAB)
    for i in range(3):  # zero residual block, copied output layer: every head starts as the lm_head
        torch.testing.assert_close(out[..., i, :], logits, rtol=0, atol=1e-6)
    assert heads.config.target == "tiny" and heads.config.hidden_size == 32 and heads.config.vocab_size == VOCAB
    assert heads.dtype == target.dtype and heads.device == target.device


def test_last_hidden_is_the_lm_head_input(target):
    logits, hidden = medusa.last_hidden(target, torch.randint(0, VOCAB, (3, 9)))
    assert hidden.shape == (3, 9, 32) and logits.shape == (3, 9, VOCAB)
    torch.testing.assert_close(target.get_output_embeddings()(hidden), logits)  # after the final norm, not before


def test_distillation_learns_the_future_and_leaves_the_target_alone(target):
    stream = periodic_stream(2600)
    fitted, heldout = stream[:2000], stream[2000:]
    before = {name: p.detach().clone() for name, p in target.state_dict().items()}
    heads = MedusaHeads.from_target(target, heads=3)
    fresh = medusa.acceptance_preview(heads, target, heldout, seq_len=32)
    losses = medusa.distill(heads, target, medusa.windows(fitted, batch_size=4, seq_len=32, seed=0), steps=60,
                            lr=1e-2, progress=False)
    after = medusa.acceptance_preview(heads, target, heldout, seq_len=32)

    assert len(losses) == 60 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 1.0, losses
    # Chance: always guessing the target's most frequent greedy token.
    logits, _ = medusa.last_hidden(target, heldout[: 32 * 8].view(8, 32))
    counts = logits.argmax(-1).flatten().bincount(minlength=VOCAB)
    chance = counts.max().item() / counts.sum().item()
    assert after[0] > max(2 * chance, fresh[0] + 0.25), (fresh, after, chance)
    assert not heads.training
    for name, p in target.state_dict().items():
        assert torch.equal(p, before[name]), name
    assert all(p.grad is None for p in target.parameters())


def test_half_precision_target_trains_float32_heads(target):
    half = copy.deepcopy(target).to(torch.bfloat16)
    heads = MedusaHeads.from_target(half, heads=2)
    assert heads.dtype == torch.bfloat16
    losses = medusa.distill(heads, half, medusa.windows(periodic_stream(200), 2, 16, seed=0), steps=3,
                            progress=False)
    assert heads.dtype == torch.float32 and len(losses) == 3 and all(math.isfinite(x) for x in losses)


def test_train_checks_its_arguments(target):
    with pytest.raises(ValueError, match="heads=0"):
        medusa.train(target, periodic_stream(100), heads=0, steps=1, batch_size=1, seq_len=8)
    with pytest.raises(ValueError, match="at least seq_len"):
        medusa.train(target, periodic_stream(10), heads=2, steps=1, batch_size=1, seq_len=8)


def test_save_and_load_round_trip(target, tmp_path):
    heads = MedusaHeads.from_target(target, heads=2, location="somewhere/tiny")
    with torch.no_grad():  # trained-looking weights: a load that re-initialised anything would show
        for p in heads.parameters():
            p.add_(torch.randn_like(p))
    heads.save_pretrained(tmp_path)
    loaded, info = AutoModel.from_pretrained(tmp_path, dtype=torch.float32, output_loading_info=True)
    assert isinstance(loaded, MedusaHeads) and isinstance(loaded.config, MedusaConfig)
    assert not any(info.values()), info  # no missing ("newly initialized"), unexpected or mismatched weights
    assert loaded.state_dict().keys() == heads.state_dict().keys()
    for name, p in heads.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], p), name
    hidden = torch.randn(2, 5, 32)
    with torch.no_grad():
        assert torch.equal(loaded(hidden), heads(hidden))
    assert (loaded.config.heads, loaded.config.hidden_size, loaded.config.vocab_size, loaded.config.target) == \
        (2, 32, VOCAB, "somewhere/tiny")


def test_registration_is_idempotent():
    medusa._register()
    medusa._register()


def test_layering():
    """The heads module is a model, usable without the sweep machinery: none of it may be imported."""
    tree = ast.parse(Path(medusa.__file__).read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    forbidden = ("hydra", "omegaconf", "specsweep.decoding", "specsweep.study", "specsweep.app")
    assert not [n for n in names if n.startswith(forbidden)], names
