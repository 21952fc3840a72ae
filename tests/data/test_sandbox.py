"""specsweep.data.sandbox: the child process pass@1 runs model-written code in, with a time limit, a memory limit, its
own directory and none of our environment."""

from __future__ import annotations

import os
import time
from pathlib import Path

from specsweep.data.sandbox import run_program


def test_sandbox_times_out_an_endless_loop():
    start = time.perf_counter()
    assert run_program("while True:\n    pass\n", timeout=0.5) is False
    assert time.perf_counter() - start < 3


def test_sandbox_timeout_kills_the_programs_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    source = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    time.sleep(60)\n"
        f"open({str(pid_file)!r}, 'w').write(str(pid))\n"
        "while True:\n    pass\n"
    )
    assert run_program(source, timeout=1.0) is False
    assert _is_dead(int(pid_file.read_text()))


def _is_dead(pid: int, patience: float = 2.0) -> bool:
    """Gone, or a zombie nobody has reaped yet (in a container, pid 1 may never reap it)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_sandbox_limits_memory():
    # mmap reserves address space without touching it: fast, yet it counts against RLIMIT_AS.
    source = "import mmap\nmmap.mmap(-1, 512 << 20)\n"
    assert run_program(source) is True
    assert run_program(source, memory_bytes=256 << 20) is False


def test_sandbox_runs_elsewhere_without_our_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPECSWEEP_TEST_SECRET", "token")
    source = (
        "import os\n"
        "open('stray.txt', 'w').write('x')\n"
        f"assert os.getpid() != {os.getpid()}\n"
        f"assert os.getcwd() != {str(tmp_path)!r}\n"
        "assert 'SPECSWEEP_TEST_SECRET' not in os.environ\n"
    )
    assert run_program(source) is True
    assert not (tmp_path / "stray.txt").exists()


def test_sandbox_returns_false_for_broken_programs():
    assert run_program("def f(:\n") is False
    assert run_program("raise SystemExit(3)\n") is False
    assert run_program("'\udcff'\n") is False  # not even valid UTF-8 source
    assert run_program("") is True
