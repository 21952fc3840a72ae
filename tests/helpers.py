"""What tests share: tiny real models built from config, the real config tree, and the real sweep command."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import torch
import transformers
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

import specsweep.schema  # noqa: F401  (registers the structured configs)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "specsweep" / "conf"
# One cell on the micro family in about a second.
FAST = ["model_family=embedded_micro", "logger=none", "dataset.num_samples=2", "bench.max_new_tokens=6",
        "bench.repeats=2"]


def tiny_model(*, seed: int, vocab: int = 96, hidden: int = 32, layers: int = 2, init: float = 0.3,
               eos_token_id: int | None = None) -> GPTNeoXForCausalLM:
    """A random GPT-NeoX. A large init makes its next-token distributions peaked, so greedy decoding has
    clear winners (no near-ties that float rounding could flip) and draft and target disagree visibly."""
    torch.manual_seed(seed)
    config = GPTNeoXConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=2 * hidden, max_position_embeddings=256, initializer_range=init,
        bos_token_id=0, eos_token_id=0,
    )
    model = GPTNeoXForCausalLM(config).eval()
    model.generation_config.eos_token_id = eos_token_id  # generate() must not stop where we don't
    model.generation_config.pad_token_id = 0
    return model


def perturbed(model: GPTNeoXForCausalLM, scale: float, seed: int) -> GPTNeoXForCausalLM:
    """A draft that agrees with `model` often but not always: its weights plus Gaussian noise."""
    torch.manual_seed(seed)
    noisy = copy.deepcopy(model)
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(scale * p.std() * torch.randn_like(p))
    return noisy


def error_line(capsys) -> str:
    """The one line a command line's mistake printed on stderr (argparse's "prog: error: ..."), with no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The real config tree, composed as `python -m specsweep` would, with `output_dir` set (no Hydra run)."""
    with initialize_config_module(version_base="1.3", config_module="specsweep.conf"):
        cfg = compose("config", overrides=overrides)
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    return cfg


# family -> the transformers config class of its checkpoints (the hub ids' architectures)
ARCHITECTURES = {
    "bloom": "BloomConfig", "cerebras_gpt": "GPT2Config", "deepseek_coder": "LlamaConfig", "gpt2": "GPT2Config",
    "gpt_neo_xsum": "GPTNeoConfig", "japanese_gpt_neox_xlsum": "GPTNeoXConfig", "llama": "LlamaConfig",
    "pythia": "GPTNeoXConfig", "qwen2_5": "Qwen2Config", "qwen3": "Qwen3Config",
}
SNAPSHOT = "0" * 40  # a commit hash, as the Hub names a cached snapshot


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


def save_stand_ins(home: Path) -> None:
    """Under HF_HOME `home`: every hub family's target and drafts, as tiny random models of the family's
    architecture sharing one small tokenizer, saved at their hub ids as a download would leave them."""
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
        saved = [(cfg.model_family.target, 2)] + [(hub_id, 1) for hub_id in cfg.model_family.drafts.values()]
        for seed, (hub_id, layers) in enumerate(saved):
            transformers.set_seed(seed)
            model = transformers.AutoModelForCausalLM.from_config(shape(kind, layers, len(fast), fast.eos_token_id))
            snapshot = home / "hub" / f"models--{hub_id.replace('/', '--')}" / "snapshots" / SNAPSHOT
            model.save_pretrained(snapshot)
            fast.save_pretrained(snapshot)
            (snapshot.parent.parent / "refs").mkdir()
            (snapshot.parent.parent / "refs" / "main").write_text(SNAPSHOT)


def sweep(sweep_dir: Path, env: dict[str, str], *overrides: str, experiment: str | None = None,
          debug: str | None = "smoke") -> subprocess.CompletedProcess:
    """`python -m specsweep -m debug=smoke ...` into `sweep_dir`, in a subprocess."""
    chosen = [f"experiment={experiment}"] if experiment else [f"debug={debug}"] if debug else []
    command = [sys.executable, "-m", "specsweep", "-m", *chosen, f"hydra.sweep.dir={sweep_dir}", *overrides]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
