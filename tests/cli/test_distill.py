"""`python -m specsweep.distill` on tiny stand-ins of hub architectures: the drafts and the family it writes sweep at
once through `python -m specsweep -m`, losslessly; a killed run resumes; a user's mistakes exit 2 with one
sentence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from specsweep.cli import distill as cli
from tests.helpers import ROOT, error_line, shape, sweep

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

EOS = "<eos>"
TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(120))
TINY = ["--steps", "6", "--seq-len", "32", "--batch-size", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "text.txt").write_text(TEXT)
    (root / "short.txt").write_text("x = 1\n")
    return root


def save_target(out: Path, kind: str) -> Path:
    """A tiny random model of the architecture with a byte-level BPE tokenizer, saved like a hub checkpoint."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=300, special_tokens=[EOS],
                                                              show_progress=False,
                                                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS, pad_token=EOS)
    transformers.set_seed(0)
    AutoModelForCausalLM.from_config(shape(kind, 2, len(fast), fast.eos_token_id)).save_pretrained(out)
    fast.save_pretrained(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["LlamaConfig", "GPT2Config"])
def test_distilled_drafts_sweep_at_once(kind, corpus, tmp_path, micro_env, capsys):
    target = save_target(tmp_path / "target", kind)
    out = tmp_path / "drafts"
    cli.main(["--target", str(target), "--shapes", "1x16,2x16", "--data", str(corpus / "text.txt"), "--out",
              str(out), "--loss", "tvd", *TINY])
    printed = capsys.readouterr().out
    family = json.loads((out / "distill.json").read_text())
    assert set(family["drafts"]) == {name for name in os.listdir(out) if (out / name / "config.json").is_file()}
    for name, card in family["drafts"].items():
        saved = json.loads((out / name / "distill.json").read_text())
        assert saved == card and saved["training"]["loss"] == "tvd" and saved["heldout_perplexity"] > 1
        assert AutoConfig.from_pretrained(out / name).model_type == AutoConfig.from_pretrained(target).model_type
    assert not (tmp_path / "drafts.partial").exists()
    command = printed.strip().splitlines()[-1]
    assert command.startswith("python -m specsweep -m 'hydra.searchpath=[file://")
    done = sweep(tmp_path / "sweep", micro_env, f"hydra.searchpath=[file://{out}]", "model_family=drafts",
                 f"draft={','.join(family['drafts'])}", "gamma=3",
                 "dataset.prefix_lines=6")  # within the GPT-2 stand-in's 512 positions at its 300-token vocabulary
    assert done.returncode == 0, done.stderr[-3000:]
    results = pd.read_csv(tmp_path / "sweep" / "results.csv", dtype={"draft": str})
    cells = results[results["method"].eq("speculative")]
    assert len(cells) == 2 and cells["status"].eq("done").all()
    assert cells["exact_match"].eq(1.0).all()  # greedy speculative output equals the baseline's
    assert cells["draft_loss"].eq("tvd").all() and cells["draft_heldout_perplexity"].gt(1).all()


@pytest.mark.slow
def test_a_killed_run_resumes(corpus, tmp_path):
    target = save_target(tmp_path / "target", "LlamaConfig")
    args = ["--target", str(target), "--sizes", "20K", "--data", str(corpus / "text.txt"), "--steps", "300",
            "--seq-len", "32", "--batch-size", "2", "--checkpoint-every", "10", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "specsweep.distill", *args, "--out", str(tmp_path / "out")]
    running = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = tmp_path / "out.partial" / "state.pt"
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and running.poll() is None:
        time.sleep(0.02)
    running.send_signal(signal.SIGKILL)
    running.wait()
    assert state.exists() and not (tmp_path / "out").exists()  # nothing that looks complete
    step = torch.load(state, weights_only=False)["step"]
    assert step >= 10
    short = [a if a != "300" else str(step + 5) for a in args]  # the same run, told to stop sooner, is refused
    refused = subprocess.run([sys.executable, "-m", "specsweep.distill", *short, "--out", str(tmp_path / "out")],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "holds a partial run with other arguments" in refused.stderr
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming the partial run" in again.stderr
    assert (tmp_path / "out" / "distill.json").is_file() and not (tmp_path / "out.partial").exists()


def test_mistakes_get_one_sentence(corpus, tmp_path, capsys):
    target = save_target(tmp_path / "target", "GPT2Config")
    base = ["--target", str(target), "--data", str(corpus / "text.txt"), *TINY]
    cases = [
        (["--shapes", "1x"], "--shapes entry '1x' is invalid; it must be LAYERSxWIDTH"),
        (["--sizes", "lots"], "--sizes entry 'lots' is invalid"),
        (["--shapes", "1x16", "--steps", "0"], "--steps=0 is invalid"),
        (["--shapes", "1x16", "--data", str(corpus / "short.txt")], "gives only"),
        (["--shapes", "1x16", "--name", "a-b"], "--name='a-b' is invalid"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit) as stopped:
            cli.main([*base, *extra, "--out", str(tmp_path / "out")])
        assert stopped.value.code == 2
        assert message in error_line(capsys)
    seq2seq = tmp_path / "t5"
    transformers.T5ForConditionalGeneration(transformers.T5Config(vocab_size=300, d_model=16, d_ff=32, num_layers=1,
                                                                  num_heads=2, d_kv=8)).save_pretrained(seq2seq)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--target", str(seq2seq), "--shapes", "1x16", "--out", str(tmp_path / "out"), *TINY])
    assert stopped.value.code == 2
    assert "is a t5 model without a causal LM head" in error_line(capsys)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(SystemExit):
        cli.main([*base, "--shapes", "1x16", "--out", str(tmp_path / "full")])
    assert "exists and is not empty" in error_line(capsys)
