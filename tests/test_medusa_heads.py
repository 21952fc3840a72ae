"""Medusa-1 heads (Cai et al. 2024): their start as copies of the target's lm_head, their self-distillation, the
Hugging Face round trip, and the `python -m specsweep.medusa` command line. A few seconds in all."""

from __future__ import annotations

import ast
import copy
import math
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModel, GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

from specsweep.cli import train_medusa as cli
from specsweep.models import medusa
from specsweep.models.medusa import MedusaConfig, MedusaHeads

VOCAB = 96
EOS = "<|endoftext|>"
TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(60))


def tiny_target(vocab: int = VOCAB, seed: int = 0) -> GPTNeoXForCausalLM:
    """A random GPT-NeoX; the large init makes its next-token distributions peaked, so a soft label carries a
    clear argmax and the distillation loss has room to fall below the labels' entropy."""
    torch.manual_seed(seed)
    config = GPTNeoXConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=256, initializer_range=0.3,
                           bos_token_id=0, eos_token_id=0)
    return GPTNeoXForCausalLM(config).eval()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These matmuls are too small to share: on a busy machine two threads waiting on each other made the
    distillation test 100x slower (14 s instead of 0.15 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


# --- the command line ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_target(tmp_path_factory) -> Path:
    """A tiny target and a byte-level BPE tokenizer trained on TEXT, saved like a hub checkpoint."""
    out = tmp_path_factory.mktemp("target")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([TEXT], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=EOS)
    tiny_target(vocab=len(fast), seed=3).save_pretrained(out)
    fast.save_pretrained(out)
    (out.parent / "text.txt").write_text(TEXT)
    (out.parent / "short.txt").write_text("x = 1\n")
    return out


def run_cli(saved_target: Path, out: Path, *extra: str) -> None:
    cli.main(["train", "--target", str(saved_target), "--data", str(saved_target.parent / "text.txt"),
              "--out", str(out), "--steps", "5", "--seq-len", "16", "--batch-size", "2", "--device", "cpu", *extra])


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def test_cli_trains_and_saves_loadable_heads(saved_target, tmp_path, capsys):
    out = tmp_path / "heads"
    run_cli(saved_target, out, "--heads", "2")
    printed = capsys.readouterr().out
    assert "head 2 (token t+3): top-1 agreement" in printed and f"saved to {out}" in printed
    assert not list(tmp_path.glob("heads.tmp-*"))
    loaded = AutoModel.from_pretrained(out, dtype=torch.float32)
    assert isinstance(loaded, MedusaHeads) and loaded.config.heads == 2
    assert loaded.config.target == str(saved_target)

    with pytest.raises(SystemExit) as exit_:  # a second run must not overwrite the first one's heads
        run_cli(saved_target, out, "--heads", "2")
    assert exit_.value.code == 2 and "--out=" in error_line(capsys)
    run_cli(saved_target, out, "--heads", "1", "--force")
    assert AutoModel.from_pretrained(out).config.heads == 1


@pytest.mark.parametrize(("extra", "named"), [
    (["--heads", "0"], "--heads=0"),
    (["--heads", "2", "--steps", "0"], "--steps=0"),
    (["--heads", "2", "--seq-len", "2"], "--seq-len=2"),
    (["--heads", "2", "--seq-len", "300"], "--seq-len=300"),  # longer than the target's positions
    (["--heads", "2", "--data", "short.txt"], "gives only"),  # fewer tokens than --seq-len + --heads + 1
    (["--heads", "2", "--data", "missing.txt"], "--data=missing.txt"),
    (["--heads", "2", "--target", "./no/such/model"], "--target=./no/such/model"),
])
def test_cli_user_mistakes_exit_2_with_one_sentence(saved_target, tmp_path, capsys, extra, named):
    extra = [str(saved_target.parent / x) if x == "short.txt" else x for x in extra]
    with pytest.raises(SystemExit) as exit_:
        run_cli(saved_target, tmp_path / "heads", *extra)
    assert exit_.value.code == 2
    assert named in error_line(capsys)
    assert not (tmp_path / "heads").exists()
