"""Every hub family config runs on default switches, through the real command line: a tiny random target and
draft of the family's architecture stand in at the family's hub ids, in a local Hugging Face cache, with the Hub
offline. Greedy output must equal autoregressive output under `speculative`, `assisted` and `prompt_lookup`, and
without a KV cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from specsweep import record
from specsweep.study.aggregate import job_dirs
from tests.helpers import CONF, compose_config, sweep

pytestmark = pytest.mark.slow

# family -> the transformers config class of its checkpoints (the hub ids' architectures)
ARCHITECTURES = {
    "bloom": "BloomConfig", "cerebras_gpt": "GPT2Config", "deepseek_coder": "LlamaConfig", "gpt2": "GPT2Config",
    "gpt_neo_xsum": "GPTNeoConfig", "japanese_gpt_neox_xlsum": "GPTNeoXConfig", "llama": "LlamaConfig",
    "pythia": "GPTNeoXConfig", "qwen2_5": "Qwen2Config", "qwen3": "Qwen3Config",
}
SNAPSHOT = "0" * 40
SHORT_PROMPTS = ["dataset=stdlib_heldout", "dataset.num_samples=1", "dataset.prefix_lines=3",
                 "dataset.continuation_lines=2", "bench.max_new_tokens=6", "bench.repeats=1", "logger=none"]


def test_every_hub_family_has_a_stand_in():
    hub = {p.stem for p in (CONF / "model_family").glob("*.yaml")} - {"embedded", "embedded_micro"}
    assert hub == set(ARCHITECTURES)


def shape(kind: str, layers: int, vocab: int, eos: int) -> transformers.PretrainedConfig:
    """A tiny config of the architecture, in each architecture's own names for width and depth."""
    names = {"BloomConfig": dict(hidden_size=32, n_layer=layers, n_head=4),
             "GPT2Config": dict(n_embd=32, n_layer=layers, n_head=4, n_positions=512),
             "GPTNeoConfig": dict(hidden_size=32, num_layers=layers, num_heads=4, max_position_embeddings=512,
                                  attention_types=[[["global", "local"], max(1, layers // 2)]] if layers > 1
                                  else [[["global"], 1]], window_size=16),
             }.get(kind, dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                              intermediate_size=64, max_position_embeddings=512, head_dim=8))
    if kind == "GPTNeoXConfig":
        names.pop("num_key_value_heads")
        names.pop("head_dim")
    return getattr(transformers, kind)(vocab_size=vocab, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
                                       initializer_range=0.3, **names)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """HF_HOME with every hub family's target and default draft saved at its hub id, as a download would leave."""
    home = tmp_path_factory.mktemp("hf")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    text = [path.read_text() for path in sorted(Path(json.__file__).parent.glob("*.py"))]
    tokenizer.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", bos_token="<eos>",
                                   pad_token="<eos>")
    for family, kind in ARCHITECTURES.items():
        cfg = compose_config([f"model_family={family}"])
        for seed, (hub_id, layers) in enumerate([(cfg.model_family.target, 2),
                                                 (cfg.model_family.drafts[cfg.draft], 1)]):
            transformers.set_seed(seed)
            model = transformers.AutoModelForCausalLM.from_config(shape(kind, layers, len(fast), fast.eos_token_id))
            snapshot = home / "hub" / f"models--{hub_id.replace('/', '--')}" / "snapshots" / SNAPSHOT
            model.save_pretrained(snapshot)
            fast.save_pretrained(snapshot)
            (snapshot.parent.parent / "refs").mkdir()
            (snapshot.parent.parent / "refs" / "main").write_text(SNAPSHOT)
    return home


def run_families(hub_cache: Path, env: dict[str, str], sweep_dir: Path, *overrides: str) -> list[dict]:
    done = sweep(sweep_dir, env | {"HF_HOME": str(hub_cache), "HF_HUB_OFFLINE": "1"},
                 f"model_family={','.join(ARCHITECTURES)}", *SHORT_PROMPTS, *overrides, experiment=None)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    return [json.loads((job / record.METRICS_JSON).read_text()) for job in job_dirs(sweep_dir)]


def test_every_family_runs_its_stand_ins_on_default_switches(hub_cache, micro_env, tmp_path):
    jobs = run_families(hub_cache, micro_env, tmp_path / "sweep", "method=speculative,assisted,prompt_lookup")
    assert len(jobs) == 3 * len(ARCHITECTURES)
    for job in jobs:
        cell, metrics = job["cell"], job["metrics"]
        assert metrics["exact_match"] == 1.0, cell  # greedy output is the target's, token for token
        if cell["method"] != "prompt_lookup":
            assert job["counts"]["drafted"] > 0, cell
    attention = {job["cell"]["model_family"]: job["applied"]["target"]["attn"] for job in jobs}
    assert attention["bloom"] == attention["gpt_neo_xsum"] == "eager"  # no SDPA in these architectures
    assert attention["pythia"] == attention["llama"] == attention["qwen3"] == "sdpa"
    assert {job["applied"]["target"]["dtype"] for job in jobs} == {"float32"}  # auto, on a CPU


def test_every_family_runs_without_a_kv_cache(hub_cache, micro_env, tmp_path):
    jobs = run_families(hub_cache, micro_env, tmp_path / "sweep", "optimization=no_kv_cache")
    assert len(jobs) == len(ARCHITECTURES)
    for job in jobs:
        assert job["metrics"]["exact_match"] == 1.0 and job["applied"]["target"]["kv_cache"] is None, job["cell"]
