"""Sweeps on a real SLURM: a private single-node cluster (tests/e2e/slurm_cluster.py) runs a micro-family sweep through
hydra/launcher=slurm; then a job cancelled mid-run with scancel is the only cell that a re-run submits again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from specsweep import record
from specsweep.study import aggregate
from tests.e2e import slurm_cluster
from tests.helpers import ROOT

LAUNCHER = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=10"]
GRID = ["debug=smoke", "model_family=embedded_micro", "draft=16K,37K", "gamma=1,3", "logger=none"]

# One worker runs the module, so its module fixture is built once under pytest-xdist.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]


@pytest.fixture(scope="module")
def cluster(specsweep_home) -> dict[str, str]:
    absent = slurm_cluster.missing()
    assert not absent, f"{', '.join(absent)} missing: `make test` installs Debian's slurm-wlm and munge"
    if os.geteuid() != 0:
        pytest.skip("a private SLURM starts munged as the munge user, which needs root")
    with slurm_cluster.cluster() as env:
        yield env | {"SPECSWEEP_HOME": str(specsweep_home), "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}


def command(sweep_dir: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "specsweep", "-m", *GRID, *LAUNCHER, f"hydra.sweep.dir={sweep_dir}", *more]


def statuses(sweep_dir: Path) -> dict[str, dict]:
    return {d.name: record.read_status(d) for d in sorted(sweep_dir.glob("[0-9]*_*")) if record.read_status(d)}


def test_a_sweep_runs_as_a_slurm_array_and_ends_in_the_study(cluster, tmp_path):
    done = subprocess.run(command(tmp_path / "sweep"), cwd=ROOT, env=cluster, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    jobs = sorted((tmp_path / "sweep").glob("[0-9]*_*"))
    assert len(jobs) == 4
    for job_dir in jobs:
        slurm = json.loads((job_dir / record.METRICS_JSON).read_text())["provenance"]["slurm"]
        assert slurm["job_id"] and slurm["array_task_id"] == job_dir.name.split("_")[0], slurm
        assert slurm["node"] == os.uname().nodename
    table = pd.read_csv(tmp_path / "sweep" / aggregate.RESULTS_CSV)
    assert (table["status"] == "done").all() and table["slurm_job_id"].notna().all()
    assert (table["threads"] == 1).all()  # the CPUs SLURM gave each task (cpus_per_task=1), not the node's
    assert (tmp_path / "sweep" / aggregate.STUDY_MD).exists()


def test_a_cancelled_cell_is_the_only_one_that_runs_again(cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    slow = ["bench.max_new_tokens=96", "bench.repeats=5", "dataset.num_samples=8"]  # long enough to be caught
    launching = subprocess.Popen(command(sweep_dir, *slow), cwd=ROOT, env=cluster, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    try:
        victim = None
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline:  # a cell that has started measuring
            running = [name for name, status in statuses(sweep_dir).items() if status["status"] == "running"]
            victim = running[0] if running else None
            time.sleep(0.5)
        assert victim, "no cell started within 5 minutes"
        task = victim.split("_")[0]
        queue = subprocess.run(["squeue", "-h", "-o", "%i"], env=cluster, capture_output=True, text=True).stdout
        array_task = next(job for job in queue.split() if job.endswith(f"_{task}"))
        subprocess.run(["scancel", array_task], env=cluster, check=True)
        # The other tasks finish; the launcher would wait on the cancelled one (without SLURM's accounting database
        # submitit cannot see its state), so it is stopped as a user who logged out would leave it.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and subprocess.run(["squeue", "-h"], env=cluster, capture_output=True,
                                                             text=True).stdout.strip():
            time.sleep(1)
    finally:
        launching.terminate()
        launching.wait(timeout=60)
    assert statuses(sweep_dir)[victim]["status"] != "done"  # cancelled: nothing looks complete
    finished = {name: (sweep_dir / name / record.METRICS_JSON).stat().st_mtime_ns
                for name, status in statuses(sweep_dir).items() if status["status"] == "done"}
    assert len(finished) == 3, statuses(sweep_dir)

    again = subprocess.run(command(sweep_dir, *slow), cwd=ROOT, env=cluster, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "3 of 4 cells are done and are not launched again" in again.stdout + again.stderr
    assert all(status["status"] == "done" for status in statuses(sweep_dir).values())
    assert finished == {name: (sweep_dir / name / record.METRICS_JSON).stat().st_mtime_ns for name in finished}
