"""`specsweep-train-medusa train`: heads trained on a text file save loadably, an existing --out is kept unless
--force, and a user's mistakes exit 2 with one sentence. A few seconds in all."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModel, PreTrainedTokenizerFast

from specsweep.cli import train_medusa as cli
from specsweep.models.medusa import MedusaHeads
from tests.helpers import error_line, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

EOS = "<|endoftext|>"
TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(60))


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
    tiny_model(seed=3, vocab=len(fast)).save_pretrained(out)
    fast.save_pretrained(out)
    (out.parent / "text.txt").write_text(TEXT)
    (out.parent / "short.txt").write_text("x = 1\n")
    return out


def run_cli(saved_target: Path, out: Path, *extra: str) -> None:
    cli.main(["train", "--target", str(saved_target), "--data", str(saved_target.parent / "text.txt"),
              "--out", str(out), "--steps", "5", "--seq-len", "16", "--batch-size", "2", "--device", "cpu", *extra])


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
