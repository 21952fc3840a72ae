"""The build cache (specsweep.models.store) on the embedded family's micro recipe: an entry is whole or rebuilt,
never loaded half-built, and processes may race to build it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from specsweep.models import embedded, store


def test_a_half_built_entry_is_rebuilt_not_loaded(tmp_path):
    path = embedded.build(embedded.MICRO, tmp_path)
    (path / "target" / "model.safetensors").unlink()
    assert not store.is_complete(path)
    assert embedded.build(embedded.MICRO, tmp_path) == path and store.is_complete(path)
    weights = path / "target" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated, as by a full disk
    assert not store.is_complete(path)
    assert embedded.build(embedded.MICRO, tmp_path) == path and store.is_complete(path)
    weights = path / "target" / "model.safetensors"
    weights.write_bytes(bytes(len(weights.read_bytes())))  # same size, wrong contents
    assert not store.is_complete(path)
    assert embedded.build(embedded.MICRO, tmp_path) == path and store.is_complete(path)
    (path / store.MANIFEST).write_text("{not json")
    assert not store.is_complete(path)
    assert embedded.build(embedded.MICRO, tmp_path) == path and store.is_complete(path)
    assert not list(tmp_path.glob("families/*.tmp-*"))  # no staging directory left behind


@pytest.mark.slow
def test_two_processes_building_at_once_leave_one_complete_entry(tmp_path):
    command = [sys.executable, "-m", "specsweep.models.embedded", "build", "--micro"]
    env = {"SPECSWEEP_HOME": str(tmp_path), "PATH": ""}
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    entries = sorted(p.name for p in (tmp_path / "families").iterdir() if p.is_dir())
    assert len(entries) == 1 and store.is_complete(tmp_path / "families" / entries[0])
    # Both report the same entry; neither left a staging directory behind.
    assert outs[0][0].split()[0] == outs[1][0].split()[0]


def test_a_killed_build_leaves_nothing_that_survives(tmp_path, monkeypatch):
    path = embedded.family_dir(embedded.MICRO, tmp_path)
    stale = path.with_name(f"{path.name}.tmp-999999")  # what a build killed midway leaves
    (stale / "target").mkdir(parents=True)

    def interrupted(out, recipe):
        (out / "target").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded, "_build_into", interrupted)
    with pytest.raises(KeyboardInterrupt):
        embedded.build(embedded.MICRO, tmp_path)
    assert not list(path.parent.glob("*.tmp-*")) and not path.exists()
