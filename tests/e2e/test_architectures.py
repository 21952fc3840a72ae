"""Every hub family config runs on default switches, through the real command line: a tiny random target and
draft of the family's architecture stand in at the family's hub ids, in a local Hugging Face cache, with the Hub
offline. Greedy output must equal autoregressive output under `speculative`, `assisted` and `prompt_lookup`, and
without a KV cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specsweep import record
from specsweep.study.aggregate import job_dirs
from tests.helpers import ARCHITECTURES, CONF, compose_config, sweep

pytestmark = pytest.mark.slow

SHORT_PROMPTS = ["dataset=stdlib_heldout", "dataset.num_samples=1", "dataset.prefix_lines=3",
                 "dataset.continuation_lines=2", "bench.max_new_tokens=6", "bench.repeats=1", "logger=none"]


def test_every_hub_family_has_a_stand_in():
    families = {p.stem for p in (CONF / "model_family").glob("*.yaml")}
    hub = {f for f in families if compose_config([f"model_family={f}"]).model_family.source == "hub"}
    assert hub == set(ARCHITECTURES)


def run_families(hub_cache: Path, env: dict[str, str], sweep_dir: Path, *overrides: str) -> list[dict]:
    done = sweep(sweep_dir, env | {"HF_HOME": str(hub_cache), "HF_HUB_OFFLINE": "1"},
                 f"model_family={','.join(ARCHITECTURES)}", *SHORT_PROMPTS, *overrides, debug=None)
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
