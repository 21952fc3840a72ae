"""Run one Python program in a child process with resource limits; report whether it exited cleanly.

pass@1 runs model-written code. It is usually just wrong, but it can loop forever, allocate all memory, fill
the disk or litter the working directory, and none of that may take the sweep down with it. The guard rails:
a separate interpreter in isolated mode (no user site, no PYTHON* variables), a throwaway working directory,
an environment without the parent's variables (no tokens leak), a wall-clock timeout that kills the whole
process group, and rlimits on address space, CPU time and file size.

This is not a security boundary against hostile code: the child has the same user, file system and network
as the sweep. Run untrusted models in a container.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

# Written output is only there to be thrown away with the directory; a program writing more is broken.
_FILE_SIZE_LIMIT = 16 << 20

# The limits are set by a tiny bootstrap in the child, which then execs the program, instead of by
# subprocess's preexec_fn: the sweep process runs torch's threads, and the docs warn that preexec_fn can
# deadlock the child when the parent has threads. Soft and hard limits are equal so the program cannot
# raise them again.
_BOOTSTRAP = """\
import os, resource, sys
path, cpu_seconds, memory_bytes, file_bytes = sys.argv[1], *map(int, sys.argv[2:5])
for limit, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_CPU, cpu_seconds),
                     (resource.RLIMIT_FSIZE, file_bytes), (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(limit, (value, value))
os.execv(sys.executable, [sys.executable, "-I", path])
"""


def run_program(source: str, timeout: float = 10.0, memory_bytes: int = 1 << 30) -> bool:
    """True iff `source`, run as a Python script, exits with status 0 within `timeout` seconds.

    A program that fails, crashes, runs out of memory (`memory_bytes` of address space) or time returns False;
    bad programs never raise. Failing to start the interpreter at all does raise (OSError): that is a broken
    installation, and scoring it as "every program failed" would hide it.
    """
    with tempfile.TemporaryDirectory(prefix="specsweep-sandbox-") as workdir:
        path = Path(workdir) / "program.py"
        # surrogatepass: text that is not valid UTF-8 still reaches the interpreter, which rejects it (False).
        path.write_text(source, encoding="utf-8", errors="surrogatepass")
        limits = [str(math.ceil(timeout) + 1), str(memory_bytes), str(_FILE_SIZE_LIMIT)]
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOTSTRAP, str(path), *limits],
            cwd=workdir,
            env=_child_env(workdir),
            stdin=subprocess.DEVNULL,
            # Nobody reads the output, and a pipe could fill up and stall a chatty program until the timeout.
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own process group, so a timeout also kills whatever the program spawned.
            start_new_session=True,
        )
        return _wait(process, timeout) == 0


def _child_env(workdir: str) -> dict[str, str]:
    """Only what an interpreter needs: the sweep's environment holds API tokens the program has no business seeing.
    HOME points into the throwaway directory so writes to ~ vanish with it."""
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": workdir, "LC_ALL": "C.UTF-8"}


def _wait(process: subprocess.Popen, timeout: float) -> int | None:
    """The exit status, or None after killing the process group at the timeout."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # The leader is not reaped yet, so its pid still names the group and cannot have been reused.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None
