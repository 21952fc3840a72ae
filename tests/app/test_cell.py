"""The cell checks of the optimisation switches (specsweep.app.cell): the combinations a device or method cannot run
give their one sentence before any model loads, and a switch's default keeps the cells' keys."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from specsweep.app import cell
from specsweep.decoding import METHODS
from specsweep.errors import ConfigError
from tests.helpers import compose_config

CPU = torch.device("cpu")


def check(overrides: list[str], device: torch.device = CPU) -> None:
    spec = cell.typed(compose_config(overrides, Path("out")))
    cell.check_optimization(spec.optimization, METHODS[spec.method.name], device)


@pytest.mark.parametrize("overrides,device,words", [
    (["optimization.quantization=bnb-8bit"], CPU, ["optimization.quantization=bnb-8bit", "CUDA", "cpu"]),
    (["optimization.quantization=bnb-4bit"], CPU, ["optimization.quantization=bnb-4bit", "CUDA", "int8-dynamic"]),
    (["optimization.quantization=int8-dynamic"], torch.device("cuda"), ["int8-dynamic", "CPU only", "cuda"]),
    (["optimization.quantization=int8-dynamic", "optimization.dtype=bfloat16"], CPU, ["dtype=float32", "bfloat16"]),
    (["method=assisted", "optimization.compile=true"], CPU, ["optimization.compile=true", "assisted", "speculative"]),
    (["method=prompt_lookup", "optimization.compile=true"], CPU, ["compile=true", "prompt_lookup"]),
    (["optimization.attn=flash"], CPU, ["optimization.attn='flash'", "eager, sdpa"]),
    (["optimization.dtype=fp8"], CPU, ["optimization.dtype='fp8'", "float32, bfloat16, float16"]),
    (["optimization.quantization=int4"], CPU, ["optimization.quantization='int4'", "int8-dynamic, bnb-8bit"]),
    (["+optimization.draft.quantization=bnb-4bit"], CPU, ["optimization.draft.quantization=bnb-4bit", "CUDA"]),
    (["+optimization.draft.kv_cache=false"], CPU, ["optimization.draft", "kv_cache", "attn, dtype"]),
    (["optimization.compile=true", "optimization.compile_backend=inducter"], CPU,
     ["optimization.compile_backend='inducter'", "inductor"]),
    (["optimization.cache=paged"], CPU, ["optimization.cache='paged'", "dynamic, static"]),
    (["optimization.cache=static", "optimization.kv_cache=false"], CPU, ["optimization.cache=static", "kv_cache"]),
    (["method=assisted", "optimization.cache=static"], CPU, ["optimization.cache=static", "assisted", "speculative"]),
])
def test_invalid_combinations_give_one_sentence(overrides, device, words):
    with pytest.raises(ConfigError) as error:
        check(overrides, device)
    message = str(error.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_a_draft_override_is_not_checked_for_a_method_without_a_draft():
    check(["method=autoregressive", "+optimization.draft.quantization=bnb-4bit"])


def test_a_dynamic_cache_keeps_the_keys_cells_had_before_the_cache_could_be_chosen():
    spec = cell.typed(compose_config([], Path("out")))
    assert "cache" not in cell.identity(spec)["optimization"]
    static = cell.typed(compose_config(["optimization.cache=static"], Path("out")))
    assert cell.key(static) != cell.key(spec) and cell.axes(static)["setting"] == "cache=static"


def test_bettertransformer_and_sdpa_are_one_cell():
    specs = [cell.typed(compose_config([f"optimization.attn={attn}"], Path("out")))
             for attn in ("bettertransformer", "sdpa")]  # typed() resolves the alias
    assert specs[0].optimization.attn == "sdpa" and cell.key(specs[0]) == cell.key(specs[1])


def test_float16_on_cpu_is_allowed_with_a_warning():
    with pytest.warns(UserWarning, match=r"optimization.dtype=float16 on CPU"):
        check(["optimization.dtype=float16"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check(["optimization.dtype=bfloat16"])
