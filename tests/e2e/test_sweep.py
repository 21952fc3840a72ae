"""The real command, `python -m specsweep -m ...`, in a subprocess: Hydra's multirun, on the micro family."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from specsweep import record, tracking
from specsweep.study.aggregate import job_dirs
from tests.helpers import ROOT, sweep

pytestmark = pytest.mark.slow


def test_multirun_writes_a_job_per_cell_resumes_and_survives_a_failing_cell(micro_env, tmp_path):
    sweep_dir = tmp_path / "sweep"
    # XL is a size the config names but the built family lacks: checked cells that fail when they load.
    first = sweep(sweep_dir, micro_env, "+model_family.drafts.XL=XL", "draft=16K,37K,XL", "gamma=1,3")
    assert first.returncode == 1, first.stderr  # the sweep finished, but one size does not load
    dirs = job_dirs(sweep_dir)
    assert len(dirs) == 6
    statuses = {d.name: record.read_status(d)["status"] for d in dirs}
    assert sorted(statuses.values()) == ["done"] * 4 + ["failed"] * 2
    failed = [d for d in dirs if statuses[d.name] == "failed"]
    assert all("draft=XL" in d.name and "names XL, which the built family" in record.read_status(d)["error"]
               for d in failed)
    for d in dirs:
        if statuses[d.name] == "done":
            metrics = json.loads((d / record.METRICS_JSON).read_text())["metrics"]
            assert metrics["speedup"] > 0 and metrics["alpha"] is not None and metrics["exact_match"] == 1.0
    table = pd.read_csv(sweep_dir / "results.csv")
    assert len(table) == 6 and (table["status"] == "done").sum() == 4
    assert "results.csv" in first.stdout and "4 of 6 jobs done" in first.stdout

    # The same command again: the four done cells are skipped; only the failing ones run (and fail) again.
    times = {d.name: (d / record.METRICS_JSON).stat().st_mtime_ns for d in dirs if statuses[d.name] == "done"}
    second = sweep(sweep_dir, micro_env, "+model_family.drafts.XL=XL", "draft=16K,37K,XL", "gamma=1,3")
    assert second.returncode == 1
    assert times == {name: (sweep_dir / name / record.METRICS_JSON).stat().st_mtime_ns for name in times}


def test_wandb_offline_writes_a_run_per_job_with_summary_metrics(micro_env, tmp_path):
    env = micro_env | {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = sweep(tmp_path / "sweep", env, "logger=wandb", "draft=37K", "gamma=1,2")
    assert done.returncode == 0, done.stderr
    for job_dir in job_dirs(tmp_path / "sweep"):
        metrics = json.loads((job_dir / record.METRICS_JSON).read_text())
        assert metrics["wandb"]["mode"] == "offline"
        run_dir = Path(metrics["wandb"]["dir"])
        assert run_dir.is_relative_to(job_dir) and len(list(job_dir.glob("wandb/offline-run-*"))) == 1
        # The offline run log is protobuf records (W&B ships no Python reader for it any more): summary keys and
        # their JSON-encoded values are stored verbatim in it.
        (log,) = run_dir.glob("run-*.wandb")
        blob = log.read_bytes()
        for key in ["speedup", "alpha", "tokens_per_s"]:
            assert key.encode() in blob and json.dumps(metrics["metrics"][key]).encode() in blob, key
        assert list(run_dir.glob("files/media/table/samples_*.table.json"))
        # The sweep's group (its name and a hash of its path), and a run id made from it and the cell's key.
        group = tracking.wandb_group(tmp_path / "sweep")
        assert metrics["wandb"]["group"] == group and group.startswith("sweep-") and len(group) == len("sweep-") + 8
        assert metrics["wandb"]["id"] == tracking.wandb_run_id(group, metrics["key"])
    # A job killed after logging and before writing its status runs again, and resumes its run: one id, not two.
    killed = job_dirs(tmp_path / "sweep")[0]
    first_id = json.loads((killed / record.METRICS_JSON).read_text())["wandb"]["id"]
    (killed / record.STATUS).unlink()
    assert sweep(tmp_path / "sweep", env, "logger=wandb", "draft=37K", "gamma=1,2").returncode == 0
    assert json.loads((killed / record.METRICS_JSON).read_text())["wandb"]["id"] == first_id
    assert {path.name.rsplit("-", 1)[1] for path in killed.glob("wandb/offline-run-*")} == {first_id}


@pytest.mark.parametrize("overrides,sentence", [
    (["model_family=embedded_micro", "draft=6M"],
     "draft=6M is not a size of model family embedded_micro; its sizes are 16K, 37K, unigram, bigram; 6M is a size of "
     "japanese_gpt_neox_xlsum: add model_family=japanese_gpt_neox_xlsum."),
    (["model_family=embedded_micro", "gamma=9"],
     "gamma=9 is invalid for method speculative; it must be an integer in 1..7."),
    (["model_family=embedded_micro", "dataset.num_samples=0"],
     "dataset.num_samples=0 is invalid; it must be at least 1."),
    # The hub for real: HF_HUB_OFFLINE=1 and an empty Hugging Face cache.
    (["model_family=pythia", "dataset=stdlib_heldout"],
     "model_family.target='EleutherAI/pythia-2.8b' is not in the local Hugging Face cache"),
    (["model_family=no_such_family"], "Could not find 'model_family/no_such_family'"),
])
def test_a_bad_single_run_exits_non_zero_with_its_sentence(micro_env, tmp_path, overrides, sentence):
    env = micro_env | {"HF_HOME": str(tmp_path / "hf"), "HYDRA_FULL_ERROR": "0"}
    command = [sys.executable, "-m", "specsweep", "logger=none",
               f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert sentence in output and "Traceback" not in output, output
    assert not (tmp_path / "run" / record.METRICS_JSON).exists()


def test_a_sweep_with_invalid_cells_stops_before_its_first_job(micro_env, tmp_path):
    """The mission's own example on the embedded family: every cell names a size the family lacks. The sweep
    stops within seconds, with one sentence per distinct problem that names the family that has the size."""
    done = sweep(tmp_path / "sweep", micro_env, "model_family=embedded", "draft=6M,29M,247M", "gamma=1,3,5,7")
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "Traceback" not in output and not (tmp_path / "sweep").exists()  # nothing launched, nothing built
    assert ("draft=6M, draft=29M, draft=247M are not sizes of model family embedded; its sizes are 275K, 574K, "
            "1.2M, 2.5M, unigram, bigram; 6M, 29M, 247M are sizes of japanese_gpt_neox_xlsum: add "
            "model_family=japanese_gpt_neox_xlsum. (12 of 12 cells)") in output, output


def test_a_sweep_prints_its_plan_before_it_starts(micro_env, tmp_path):
    first = sweep(tmp_path / "sweep", micro_env, "method=autoregressive,speculative", "draft=37K", "gamma=1,2")
    assert first.returncode == 0, first.stderr
    output = first.stdout + first.stderr
    # autoregressive ignores gamma: 4 cells, 3 to measure; 2 prompts x 8 tokens x 1 repeat x 3 decoders each (the
    # method, its baseline and the A/A control).
    assert ("sweep plan: 4 cells, 3 to measure after dedupe, 0 of them already done; 2 prompts x 8 new tokens x "
            "1 repeats x 3 decoders per cell; 144 tokens to generate") in output, output
    again = sweep(tmp_path / "sweep", micro_env, "method=autoregressive,speculative", "draft=37K", "gamma=1,2")
    assert "3 to measure after dedupe, 3 of them already done" in again.stdout + again.stderr


def test_a_sweep_in_which_every_cell_failed_writes_its_failures_and_exits_1(micro_env, tmp_path):
    done = sweep(tmp_path / "sweep", micro_env, "+model_family.drafts.XL=XL", "draft=XL", "gamma=1,2")
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    study = (tmp_path / "sweep" / "study.md").read_text()
    assert "## Jobs that did not finish" in study and study.count("names XL, which the built family") == 2
