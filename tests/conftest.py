"""Tiny real transformers models, built from config: no downloads, milliseconds per forward."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

import specsweep.schema  # noqa: F401  (registers the structured configs)
from specsweep import embedded

CONF = Path(__file__).resolve().parents[1] / "conf"


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


@pytest.fixture(scope="session")
def target() -> GPTNeoXForCausalLM:
    return tiny_model(seed=0)


@pytest.fixture(scope="session")
def near_draft(target) -> GPTNeoXForCausalLM:
    """Accepts some drafts and rejects others: both branches of every round get exercised."""
    return perturbed(target, scale=0.5, seed=1)


@pytest.fixture(scope="session")
def far_draft() -> GPTNeoXForCausalLM:
    """An unrelated model of one layer: nearly every draft is rejected."""
    return tiny_model(seed=2, layers=1)


@pytest.fixture(scope="session")
def prompts() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(1, 96, (1, int(length)), generator=generator)
            for length in torch.randint(1, 24, (12,), generator=generator)]


@pytest.fixture(scope="session")
def specsweep_home(tmp_path_factory) -> Path:
    """A cache home holding the built micro family, shared by every test that runs the sweep application."""
    home = tmp_path_factory.mktemp("specsweep_home")
    embedded.build(embedded.MICRO, home)
    return home


@pytest.fixture
def micro_env(specsweep_home, monkeypatch) -> dict[str, str]:
    """The environment of a sweep on the micro family: its cache home, W&B off, no hub."""
    monkeypatch.setenv("SPECSWEEP_HOME", str(specsweep_home))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return dict(os.environ)


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The real config tree, composed as `python -m specsweep` would, with `output_dir` set (no Hydra run)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=overrides)
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    return cfg
