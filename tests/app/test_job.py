"""One cell, run through `specsweep.app.job.run` on the real config tree and the micro family (no Hydra run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specsweep import record
from specsweep.app import job
from specsweep.errors import ConfigError
from tests.helpers import FAST, compose_config


def test_a_cell_writes_complete_results(micro_env, tmp_path):
    result = job.run(compose_config(FAST + ["draft=37K", "gamma=2"], tmp_path))
    on_disk = json.loads((tmp_path / record.METRICS_JSON).read_text())
    assert on_disk["key"] == result["key"] and record.read_status(tmp_path)["status"] == "done"
    metrics = on_disk["metrics"]
    for name in ["acceptance_rate", "alpha", "tokens_per_round", "c", "ms_per_token",
                 "tokens_per_s", "speedup", "speedup_low", "speedup_high", "predicted_speedup", "gamma_star",
                 "control_speedup", "control_speedup_low", "control_speedup_high", "exact_match", "rouge1",
                 "rouge2", "rougeL"]:
        assert metrics[name] is not None, name
    assert set(metrics) <= set(record.metric_keys())  # every name it wrote is declared in the schema
    assert on_disk["counts"]["rounds"] > 0 and len(metrics["accepted_per_position"]) == 2
    for name in ["speedup", "tokens_per_s", "control_speedup"]:
        assert metrics[f"{name}_low"] <= metrics[name] <= metrics[f"{name}_high"], name
    assert metrics["tokens_per_s"] * metrics["ms_per_token"] == pytest.approx(1000)  # from the same totals
    assert metrics["exact_match"] == 1.0  # greedy speculative output is the autoregressive output
    samples = [json.loads(line) for line in (tmp_path / record.SAMPLES).read_text().splitlines()]
    assert len(samples) == 2 and all(s["tokens_match"] and len(s["ms_per_token"]) == 2 for s in samples)
    assert all(s["first_divergence"] is None and s["divergence_margin"] is None for s in samples)  # float32: exact
    assert metrics["divergence_margin"] is None
    memory = on_disk["memory"]
    for role in ("target", "draft"):
        assert memory[role]["weight_bytes"] > 0 and memory[role]["kv_cache_bytes"] > 0, role
    assert memory["target"]["weight_bytes"] > memory["draft"]["weight_bytes"]
    assert metrics["extra_memory_bytes"] == memory["extra_bytes"] == (memory["draft"]["weight_bytes"]
                                                                      + memory["draft"]["kv_cache_bytes"])
    provenance = on_disk["provenance"]
    assert provenance["versions"]["torch"] and provenance["threads"] >= 1 and provenance["device"] == "cpu"
    assert on_disk["config"]["draft"] == "37K" and "${" not in json.dumps(on_disk["config"])  # resolved
    assert on_disk["params"]["target"] > on_disk["params"]["draft"] > 0
    applied = on_disk["applied"]
    assert applied["target"]["dtype"] == "float32" and applied["draft"]["kv_cache"] == "DynamicCache"
    assert applied["target"]["attn"] == "sdpa" and applied["draft"]["quantized_modules"] == []


def test_a_done_cell_is_not_run_again(micro_env, tmp_path):
    cfg = compose_config(FAST + ["draft=16K", "gamma=1"], tmp_path)
    first = job.run(cfg)
    again = job.run(cfg)
    assert again["skipped"] and again["metrics"] == first["metrics"]


def test_methods_that_ignore_draft_and_gamma_run_once_per_sweep(micro_env, tmp_path):
    cells = [tmp_path / "a", tmp_path / "b"]
    first = job.run(compose_config(FAST + ["method=autoregressive", "draft=16K", "gamma=1"], cells[0]), tmp_path)
    second = job.run(compose_config(FAST + ["method=autoregressive", "draft=37K", "gamma=3"], cells[1]), tmp_path)
    assert second["same_as"] == "a" and second["metrics"] == first["metrics"]
    status = record.read_status(cells[1])
    assert status["status"] == "done" and status["same_as"] == "a"


@pytest.mark.parametrize("override,words", [
    (["draft=6M"], ["draft=6M", "16K, 37K"]),
    (["gamma=0"], ["gamma=0", "1..7"]),
    (["gamma=8"], ["gamma=8", "1..7"]),
    (["dataset.num_samples=0"], ["dataset.num_samples=0", "at least 1"]),
    (["dataset.reference_field=summary"], ["summary", "continuation"]),
    (["sampling.temperature=-1"], ["sampling.temperature=-1"]),
    (["device=cuda:7"], ["device=cuda:7"]),
    (["method=assisted", "optimization=no_kv_cache"], ["optimization.kv_cache=false", "assisted"]),
    (["method=prompt_lookup", "optimization=no_kv_cache"], ["optimization.kv_cache=false", "prompt_lookup"]),
    (["optimization.quantization=bnb-4bit"], ["optimization.quantization=bnb-4bit", "CUDA"]),
    (["method=assisted", "optimization.compile=true"], ["optimization.compile=true", "assisted"]),
])
def test_bad_input_fails_with_one_sentence_and_leaves_no_results(micro_env, tmp_path, override, words):
    with pytest.raises(ConfigError) as error:
        job.run(compose_config(FAST + override, tmp_path))
    message = str(error.value)
    assert "\n" not in message and all(w in message for w in words), message
    status = record.read_status(tmp_path)
    assert status["status"] == "failed" and message in status["error"]
    assert not (tmp_path / record.METRICS_JSON).exists() and not (tmp_path / record.SAMPLES).exists()


def test_a_family_of_local_paths_loads_and_runs(micro_env, specsweep_home, tmp_path):
    """A hub-style family whose entries are directories: a saved micro family."""
    from specsweep.models import families

    root = families.built_family("micro")
    cfg = compose_config(FAST + ["model_family=pythia", "dataset=stdlib_heldout", f"model_family.target={root}/target",
                                 f"+model_family.drafts.local={root}/16K", "draft=local"], tmp_path)
    assert job.run(cfg)["metrics"]["exact_match"] == 1.0


def test_a_hub_model_that_is_not_cached_gives_one_sentence(micro_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    cfg = compose_config(FAST + ["model_family=pythia", "dataset=stdlib_heldout", "draft=70M"], tmp_path / "job")
    with pytest.raises(ConfigError) as error:
        job.run(cfg)
    message = str(error.value)
    assert "model_family.target='EleutherAI/pythia-2.8b'" in message and "local Hugging Face cache" in message
    assert "hf download" in message and "\n" not in message


def test_pass_at_1_runs_only_when_opted_in(micro_env, tmp_path):
    """HumanEval lists pass@1; it runs model-written code (sandboxed) only with dataset.execute_code=true."""
    humaneval = FAST + ["dataset=humaneval", "dataset.num_samples=1"]
    without = job.run(compose_config(humaneval, tmp_path / "off"))["metrics"]
    assert "pass_at_1" not in without and without["exact_match"] == 1.0
    opted_in = job.run(compose_config(humaneval + ["dataset.execute_code=true"], tmp_path / "on"))["metrics"]
    assert opted_in["pass_at_1"] == 0.0  # six tokens of a micro model do not solve HumanEval/..


def test_a_model_that_does_not_load_is_one_sentence_and_a_recorded_failure(micro_env, tmp_path):
    import shutil

    from specsweep.models import families

    broken = tmp_path / "broken"
    shutil.copytree(families.built_family("micro") / "target", broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    cfg = compose_config(FAST + [f"model_family.target={broken}"], tmp_path / "job")
    with pytest.raises(ConfigError) as error:
        job.run(cfg)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"model_family.target='{broken}' could not be loaded")
    assert "complete Hugging Face model directory" in message
    assert record.read_status(tmp_path / "job")["status"] == "failed"


def test_the_uninstrumented_control_records_what_the_timing_costs(micro_env, tmp_path):
    metrics = job.run(compose_config(FAST + ["draft=37K", "bench.uninstrumented=true"], tmp_path))["metrics"]
    low, cost, high = (metrics[f"instrumentation_cost{suffix}"] for suffix in ("_low", "", "_high"))
    assert low <= cost <= high
    assert metrics["c"] is not None  # the timed method still measures its forwards


def test_a_job_keeps_only_the_models_it_needs(micro_env, tmp_path):
    """Jobs of a sweep share a process: the target stays loaded while the draft changes, the old draft goes."""
    from specsweep.models import families

    job.run(compose_config(FAST + ["draft=16K"], tmp_path / "first"))
    job.run(compose_config(FAST + ["draft=37K"], tmp_path / "second"))
    assert sorted(Path(key[0]).name for key in families.HELD) == ["37K", "target"]


COMPILED = ["optimization.compile=true", "optimization.compile_backend=eager"]


@pytest.mark.parametrize("method,more", [("speculative", []), ("medusa", []), ("speculative", COMPILED)])
def test_a_static_cache_cell_decodes_into_static_caches_baseline_included(micro_env, tmp_path, method, more):
    result = job.run(compose_config(FAST + [f"method={method}", "gamma=2", "optimization.cache=static",
                                            "bench.reference=true", *more], tmp_path))
    assert result["metrics"]["exact_match"] == 1.0
    assert result["applied"]["target"]["kv_cache"] == "StaticCache"
    assert result["cell"]["setting"].startswith("cache=static")
    # Preallocated for the longest sequence: the recorded bytes are the whole buffer, not the tokens written.
    assert result["memory"]["target"]["kv_cache_bytes"] > 0


def test_a_job_records_what_was_applied_and_times_the_reference_row(micro_env, tmp_path):
    overrides = FAST + ["draft=37K", "gamma=2", "bench.reference=true", "optimization.quantization=int8-dynamic"]
    record = job.run(compose_config(overrides, tmp_path))
    metrics, applied = record["metrics"], record["applied"]
    assert metrics["exact_match"] == 1.0  # speculative output is the int8 target's autoregressive output
    assert metrics["reference_speedup_low"] <= metrics["reference_speedup"] <= metrics["reference_speedup_high"]
    assert metrics["reference_ms_per_token"] > 0 and metrics["compile_seconds"] == 0
    for role in ("target", "draft"):
        assert applied[role] == {"attn": "sdpa", "dtype": "float32", "quantized_modules": ["PerTokenInt8Linear"],
                                 "compiled": False, "kv_cache": "DynamicCache"}


def test_compilation_happens_in_the_warm_up_and_is_reported_apart(micro_env, tmp_path):
    overrides = FAST + ["draft=37K", "gamma=2", "optimization.compile=true", "optimization.compile_backend=eager"]
    record = job.run(compose_config(overrides, tmp_path))
    metrics = record["metrics"]
    assert metrics["compile_seconds"] > 0 and metrics["compile_seconds_timed"] == 0
    assert metrics["exact_match"] == 1.0
    assert record["applied"]["target"]["compiled"] and record["applied"]["draft"]["compiled"]
