"""The provenance of a job's numbers: code version, libraries, hardware, numerics switches and threads, as
metrics.json records them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

LIBRARIES = ("specsweep", "torch", "transformers", "tokenizers", "datasets", "evaluate", "hydra-core", "omegaconf",
             "wandb", "pandas")


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
        "time": now(),
    }


def fit_threads(threads: int | None = None) -> None:
    """`threads` (bench.threads) where set; otherwise the CPUs SLURM gave this task, not every core of its node:
    array tasks that share a node and each run torch's default (all cores) oversubscribe it, and OpenMP's spinning
    threads then slow every task many times over."""
    if threads is not None:
        torch.set_num_threads(threads)
        return
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


def now() -> str:
    """UTC, ISO 8601, to the second: when a file was written."""
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
