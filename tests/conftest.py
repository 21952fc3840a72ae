"""Fixtures: tiny real transformers models built from config (no downloads, milliseconds per forward), and the
micro family built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from specsweep.models import embedded
from tests.helpers import perturbed, save_stand_ins, tiny_model

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist worker per core: one thread each (the sweeps they start inherit it), or
    # OpenMP's spinning threads of every worker fight over the same cores.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


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


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory) -> Path:
    """An HF_HOME holding tiny stand-ins of every hub family's models at their hub ids."""
    home = tmp_path_factory.mktemp("hf")
    save_stand_ins(home)
    return home


@pytest.fixture(scope="module")
def one_thread():
    """For modules whose matmuls are too small to share between threads: on a busy machine two threads waiting on
    each other made Medusa's distillation 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def micro_env(specsweep_home, monkeypatch) -> dict[str, str]:
    """The environment of a sweep on the micro family: its cache home, W&B off, no hub."""
    monkeypatch.setenv("SPECSWEEP_HOME", str(specsweep_home))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return dict(os.environ)


def pytest_collection_modifyitems(config, items) -> None:
    # The modules with slow tests first (a stable sort keeps every other order, and a module's tests together, so
    # its module fixtures are built once): pytest-xdist hands tests out in this order, so the long ones start early
    # and the short ones fill the workers' gaps at the end, instead of one worker finishing a long tail alone.
    slow = {item.nodeid.split("::")[0] for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device, and this machine has none")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
