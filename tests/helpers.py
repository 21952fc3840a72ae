"""What tests share: tiny real models built from config, the real config tree, and the real sweep command."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

import specsweep.schema  # noqa: F401  (registers the structured configs)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
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


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The real config tree, composed as `python -m specsweep` would, with `output_dir` set (no Hydra run)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=overrides)
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    return cfg


def sweep(sweep_dir: Path, env: dict[str, str], *overrides: str, experiment: str | None = "smoke"
          ) -> subprocess.CompletedProcess:
    """`python -m specsweep -m experiment=smoke ...` into `sweep_dir`, in a subprocess."""
    chosen = [f"experiment={experiment}"] if experiment else []
    command = [sys.executable, "-m", "specsweep", "-m", *chosen, f"hydra.sweep.dir={sweep_dir}", *overrides]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
