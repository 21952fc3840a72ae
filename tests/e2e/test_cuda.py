"""The GPU path, where there is a GPU (`cuda` marker: skipped, with that reason, elsewhere): a smoke sweep on the micro
family in float32 (exact) and bfloat16 (divergences classified), the memory block's peaks, bitsandbytes loading on a
stand-in, compiled forwards with inductor and the fast path (a static cache, forwards compiled for fixed shapes)."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from specsweep.app import job
from specsweep.study import aggregate, cells, tables
from tests.helpers import FAST, compose_config, sweep

pytestmark = pytest.mark.cuda


def test_a_float32_sweep_on_cuda_is_exact_and_reports_its_memory(micro_env, tmp_path):
    done = sweep(tmp_path / "sweep", micro_env, "device=cuda", "optimization.dtype=float32", "bench.max_new_tokens=32")
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "sweep" / aggregate.RESULTS_CSV)
    assert (table["exact_match"] == 1.0).all() and table["hardware"].notna().all()
    assert (table["target_weight_bytes"] > 0).all() and table["extra_memory_bytes"].notna().all()


def test_a_bfloat16_sweep_on_cuda_classifies_every_divergence(micro_env, tmp_path):
    done = sweep(tmp_path / "sweep", micro_env, "device=cuda", "optimization.dtype=bfloat16", "gamma=5",
                 "dataset.num_samples=8", "bench.max_new_tokens=64")
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "sweep" / aggregate.RESULTS_CSV)
    grids = pd.concat([tables.grid(frame) for _, frame in cells.groups(table)])
    diverged = grids[grids["exact_match"] != "1.000"]
    assert diverged["flag"].str.contains("near-tie|not explained by rounding").all()  # a margin for every one


def test_the_memory_block_has_the_peaks_of_method_and_baseline(micro_env, tmp_path):
    memory = job.run(compose_config(FAST + ["device=cuda", "draft=37K"], tmp_path))["memory"]
    assert memory["peak_bytes"]["method"] > 0 and memory["peak_bytes"]["baseline"] > 0
    assert memory["extra_bytes"] == memory["peak_bytes"]["method"] - memory["peak_bytes"]["baseline"]


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed")
@pytest.mark.parametrize("quantization", ["bnb-8bit", "bnb-4bit"])
def test_bitsandbytes_loads_and_decodes(quantization, hub_cache, micro_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(hub_cache))
    cfg = compose_config(FAST + ["model_family=pythia", "dataset=stdlib_heldout", "device=cuda",
                                 f"optimization.quantization={quantization}"], tmp_path)
    result = job.run(cfg)
    assert result["applied"]["target"]["quantized_modules"] and result["metrics"]["speedup"] > 0


def test_compiled_forwards_with_inductor(micro_env, tmp_path):
    result = job.run(compose_config(FAST + ["device=cuda", "optimization.compile=true", "bench.warmup=2"], tmp_path))
    assert result["metrics"]["exact_match"] == 1.0 and result["metrics"]["compile_seconds"] > 0


@pytest.mark.parametrize("method", ["speculative", "autoregressive"])
def test_the_fast_path_with_inductor_is_exact(micro_env, tmp_path, method):
    """cache=static, compile=true on CUDA: fixed-shape graphs under CUDA graphs (reduce-overhead), the draft's fused
    round and the prefill compiled over dynamic lengths, all in the warm-up; float32, so greedy output is exact."""
    result = job.run(compose_config(FAST + ["device=cuda", f"method={method}", "gamma=3", "optimization.cache=static",
                                            "optimization.compile=true", "optimization.dtype=float32"], tmp_path))
    metrics = result["metrics"]
    assert metrics["exact_match"] == 1.0 and metrics["compile_seconds"] > 0 and metrics["compile_seconds_timed"] == 0
