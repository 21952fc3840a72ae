"""A private single-node SLURM cluster for the tests, from Debian's `slurm-wlm` and `munge`: munged as the munge user
with its own key and socket, slurmctld and slurmd on free ports, state and spool under one temporary directory, one
node with this machine's CPUs in one partition. Started by `cluster()`, stopped by pid whatever happens."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")


def missing() -> list[str]:
    """The programs of Debian's slurm-wlm and munge that are not installed."""
    return [name for name in DAEMONS if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@contextlib.contextmanager
def cluster() -> Iterator[dict[str, str]]:
    """Start munged, slurmctld and slurmd under a new directory in /tmp (pytest's own are private to root, and the
    munge user must reach its directory); yield the environment that points clients (sbatch, squeue, scancel,
    submitit) at them; stop all three by pid, and remove the directory, at the end."""
    root = Path(tempfile.mkdtemp(prefix="specsweep-slurm-"))
    root.chmod(0o755)
    munge = root / "munge"
    munge.mkdir(parents=True)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    user = pwd.getpwnam("munge")
    for path in (munge, key):
        os.chown(path, user.pw_uid, user.pw_gid)
    key.chmod(0o400)
    munge.chmod(0o700)
    sock = munge / "munge.socket"
    host = socket.gethostname()
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=specsweep", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", f"AuthInfo=socket={sock}", "CredType=cred/munge",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}", f"SlurmdLogFile={root / 'slurmd.log'}",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU_Memory", "ReturnToService=2",
        "MpiDefault=none", "SchedulerType=sched/backfill", "KillWait=5",
        f"NodeName={host} CPUs={os.cpu_count()} RealMemory=8000 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
    (root / "state").mkdir()
    (root / "spool").mkdir()
    env = os.environ | {"SLURM_CONF": str(conf)}
    started: list[subprocess.Popen] = []
    try:
        started.append(subprocess.Popen(
            ["runuser", "-u", "munge", "--", program("munged"), "--foreground", "--force", f"--key-file={key}",
             f"--socket={sock}", f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
             f"--seed-file={munge / 'munged.seed'}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: sock.exists(), "munged", munge / "munged.log")
        for daemon in ("slurmctld", "slurmd"):
            started.append(subprocess.Popen([program(daemon), "-D", "-f", str(conf)], env=env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        wait_for(lambda: node_idle(env), "slurmd", root / "slurmd.log")
        yield env
    finally:
        for process in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        for process in reversed(started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(root, ignore_errors=True)


def node_idle(env: dict[str, str]) -> bool:
    found = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
    return found.returncode == 0 and found.stdout.strip() in ("idle", "mix", "alloc")


def wait_for(ready, what: str, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    tail = log.read_text()[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{what} did not come up in {seconds:.0f} s; its log ends:\n{tail}")
