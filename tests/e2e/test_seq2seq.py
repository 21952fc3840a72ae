"""An encoder–decoder family runs through the real sweep: tiny random T5s with a shared tokenizer, saved as a user's
own models are, named by a family file on Hydra's search path. Our engine and transformers' assisted generation
both decode it, and greedy output is the target's own."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from tests.cli.test_distill import TEXT
from tests.helpers import sweep

pytestmark = pytest.mark.slow


def save_t5_family(root: Path) -> None:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "</s>"],
                                                              show_progress=False,
                                                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", pad_token="<pad>")
    # (not "target" and "draft": a folder on Hydra's search path is a config group, and `draft` is a key)
    for name, layers, seed in (("t5_target", 2, 0), ("t5_draft", 1, 1)):
        transformers.set_seed(seed)
        config = transformers.T5Config(vocab_size=len(fast), d_model=32, d_ff=64, num_layers=layers, num_heads=4,
                                       d_kv=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        transformers.T5ForConditionalGeneration(config).save_pretrained(root / name)
        fast.save_pretrained(root / name)
    (root / "model_family").mkdir()
    (root / "model_family" / "t5_tiny.yaml").write_text(
        f"defaults:\n  - base_model_family\n\nname: t5_tiny\nsource: hub\ntarget: {root / 't5_target'}\n"
        f"drafts:\n  4K: {root / 't5_draft'}\ndefault_draft: 4K\n")


def test_an_encoder_decoder_family_sweeps_losslessly(tmp_path, micro_env):
    save_t5_family(tmp_path / "t5")
    done = sweep(tmp_path / "sweep", micro_env, f"hydra.searchpath=[file://{tmp_path / 't5'}]",
                 "model_family=t5_tiny", "draft=4K", "method=speculative,assisted", "gamma=1,3",
                 "dataset.prefix_lines=4")
    assert done.returncode == 0, done.stderr[-3000:]
    results = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert len(results) == 4 and results["status"].eq("done").all()
    assert results["exact_match"].eq(1.0).all()  # greedy: the target's own output, through either engine
    assert results["draft_params"].gt(0).all() and "## Optimal draft" in (tmp_path / "sweep" / "study.md").read_text()
