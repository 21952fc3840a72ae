"""The wheel is the app: built from this tree, installed (not editable) into a scratch virtual environment, it runs a
micro cell and its console scripts from another folder, finding its config inside the package. No network: the
scratch environment borrows this one's installed dependencies and installs only the wheel."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

# One worker runs the module, so its module fixture is built once under pytest-xdist.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheel")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ of a fresh venv holding the wheel of this tree and, through a .pth file, this venv's dependencies."""
    where = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(where / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (where / "dist").glob("specsweep-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "specsweep/conf/config.yaml" in archive.namelist()
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    scratch_python = venv / "bin" / "python"
    purelib = subprocess.run([str(scratch_python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # This venv's site-packages as a plain path entry: its packages import, but its .pth files (our editable
    # install among them) are not processed, so `specsweep` can only come from the wheel.
    ours = [path for path in {sysconfig.get_path("purelib"), *site.getsitepackages()} if Path(path).is_dir()]
    (Path(purelib) / "dependencies.pth").write_text("\n".join(ours) + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(scratch_python), "install", "--no-deps",
                           "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return venv / "bin"


def test_the_installed_wheel_runs_a_cell_from_another_folder(installed, micro_env, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(installed / "python"), "-c", "import specsweep; print(specsweep.__file__)"],
                           cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0 and not where.stdout.startswith(str(ROOT)), where.stdout + where.stderr
    out = elsewhere / "cell"
    cell = ["model_family=embedded_micro", "logger=none", "draft=16K", "dataset.num_samples=2",
            "bench.max_new_tokens=6", "bench.repeats=1", f"hydra.run.dir={out}"]
    done = subprocess.run([str(installed / "specsweep"), *cell], cwd=elsewhere, env=micro_env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads((out / "status.json").read_text())["status"] == "done"
    assert json.loads((out / "metrics.json").read_text())["metrics"]["exact_match"] == 1.0


@pytest.mark.parametrize("script", ["specsweep-aggregate", "specsweep-theory", "specsweep-bench",
                                    "specsweep-fit-ngram", "specsweep-train-medusa", "specsweep-build-family"])
def test_every_console_script_is_installed(installed, script, tmp_path):
    done = subprocess.run([str(installed / script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr
