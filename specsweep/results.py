"""A job's life on disk: status.json, metrics.json and samples.jsonl (their schema is `specsweep.record`),
each written whole or not at all, and the provenance of its numbers.

status.json is written first ("running", with the cell) and last, so a job killed midway leaves "running",
never a "done" beside partial results. A cell whose status is "done" is never measured again in the same sweep
directory.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import traceback
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from specsweep.record import (
    METRICS_JSON,
    SAMPLES,
    STATUS,
    MetricsRecord,
    Sample,
    Status,
    read_status,
    write_atomic,
    write_json,
)

LIBRARIES = ("specsweep", "torch", "transformers", "tokenizers", "datasets", "evaluate", "hydra-core", "omegaconf",
             "wandb", "pandas")


def find_done(out: Path, key: str, sweep_dir: Path | None) -> Path | None:
    """A directory holding a finished run of this cell: this job's own (a resumed sweep) or, in a sweep, a
    sibling with the same identity (a method that ignores the swept draft or gamma)."""
    candidates = [out] + (sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p != out) if sweep_dir else [])
    for job_dir in candidates:
        status = read_status(job_dir)
        if status and status.get("status") == "done" and status.get("key") == key and not status.get("same_as"):
            return job_dir
    return None


def reuse(out: Path, done: Path, key: str, cell: dict[str, Any]) -> MetricsRecord:
    """The record of a cell already measured. For an identical sibling, a copy that says so (`same_as`)."""
    record: MetricsRecord = json.loads((done / METRICS_JSON).read_text())
    if done != out:
        record["same_as"] = done.name
        write_json(out / METRICS_JSON, record)
        write_json(out / STATUS, Status(status="done", key=key, cell=cell, same_as=done.name, time=_now()))
    record["skipped"] = True
    return record


def start(out: Path, key: str, cell: dict[str, Any]) -> None:
    """Clear what an earlier, failed attempt left, then mark the job running."""
    for name in (METRICS_JSON, SAMPLES):
        (out / name).unlink(missing_ok=True)
    write_json(out / STATUS, Status(status="running", key=key, cell=cell, time=_now()))


def fail(out: Path, key: str, cell: dict[str, Any], error: BaseException) -> Status:
    status = Status(status="failed", key=key, cell=cell, time=_now(), error=f"{type(error).__name__}: {error}",
                    traceback="".join(traceback.format_exception(error)))
    write_json(out / STATUS, status)
    return status


def finish(out: Path, record: MetricsRecord, samples: list[Sample]) -> None:
    write_atomic(out / SAMPLES, "".join(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in samples))
    write_json(out / METRICS_JSON, record)
    write_json(out / STATUS, Status(status="done", key=record["key"], cell=record["cell"], time=_now()))


def provenance(device: torch.device) -> dict[str, Any]:
    """What produced the numbers: code version, libraries, hardware, threads."""
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "versions": {name: _version(name) for name in LIBRARIES} | {"python": sys.version.split()[0]},
        "device": str(device),
        "cpu": _cpu_model(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cuda": _cuda(device) if device.type == "cuda" else None,
        "numerics": _numerics(),
        "threads": torch.get_num_threads(),
        "slurm": _slurm(),
        "platform": platform.platform(),
        "time": _now(),
    }


def fit_threads() -> None:
    """Use the CPUs SLURM gave this task, not every core of its node: array tasks that share a node and each run
    torch's default (all cores) oversubscribe it, and OpenMP's spinning threads then slow every task many times over
    (two micro cells at once on this project's 2 cores: 61 s, against 5 s with one thread each)."""
    allocated = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if allocated.isdigit() and 0 < int(allocated) < torch.get_num_threads():
        torch.set_num_threads(int(allocated))


def _slurm() -> dict[str, str | None] | None:
    """Where SLURM ran the job (None outside SLURM): job id, array job and task ids, node, and requeues."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    names = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID", "array_task_id": "SLURM_ARRAY_TASK_ID",
             "node": "SLURMD_NODENAME", "restart_count": "SLURM_RESTART_COUNT"}
    return {name: os.environ.get(variable) for name, variable in names.items()}


def _cuda(device: torch.device) -> dict[str, Any]:
    """The GPU and the CUDA stack that ran the numbers."""
    properties = torch.cuda.get_device_properties(device)
    return {"runtime": torch.version.cuda, "driver": _driver(), "memory_bytes": properties.total_memory,
            "capability": f"{properties.major}.{properties.minor}", "cudnn": torch.backends.cudnn.version()}


def _driver() -> str | None:
    try:
        found = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip().splitlines()[0] if found.returncode == 0 and found.stdout.strip() else None


def _numerics() -> dict[str, Any]:
    """The torch switches that change results without changing the code: TF32 and the SDPA kernels allowed."""
    cuda = torch.backends.cuda
    return {"matmul_allow_tf32": cuda.matmul.allow_tf32, "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "sdpa": {"flash": cuda.flash_sdp_enabled(), "memory_efficient": cuda.mem_efficient_sdp_enabled(),
                     "math": cuda.math_sdp_enabled(), "cudnn": cuda.cudnn_sdp_enabled()}}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
