"""The study of a sweep: real sweep directories made by `python -m specsweep -m` on the micro family."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from specsweep import record
from specsweep.study import aggregate, cells, document, plots, tables
from specsweep.study.format import SPEEDUP
from specsweep.tracking import wandb_group, wandb_run_id
from tests.helpers import ROOT
from tests.helpers import sweep as multirun

# One worker runs the module, so its module fixture is built once under pytest-xdist.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("aggregate_sweep")]
# XL is a size the config names but the built micro family lacks: two cells pass the checks and fail to load.
GRID = ["+model_family.drafts.XL=XL", "draft=16K,37K,XL", "gamma=1,3"]


@pytest.fixture(scope="module")
def env(specsweep_home) -> dict[str, str]:
    return os.environ | {"SPECSWEEP_HOME": str(specsweep_home), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
                         "WANDB_SILENT": "true"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, env) -> tuple[Path, subprocess.CompletedProcess]:
    """A 3 x 2 grid with two failing cells, logged to W&B offline; the callback aggregates it at the end."""
    sweep_dir = tmp_path_factory.mktemp("sweeps") / "grid"
    return sweep_dir, multirun(sweep_dir, env, "logger=wandb", *GRID)


@pytest.fixture
def copy_of(sweep, tmp_path) -> Path:
    copied = tmp_path / "copy"
    shutil.copytree(sweep[0], copied, ignore=shutil.ignore_patterns("wandb"))
    return copied


def test_the_callback_writes_the_study_at_the_end_of_a_multirun(sweep):
    sweep_dir, done = sweep
    assert done.returncode == 1, done.stderr  # the sweep completed, but not every cell: it says so
    for name in [aggregate.RESULTS_CSV, aggregate.STUDY_MD, aggregate.REPORT_HTML]:
        assert (sweep_dir / name).stat().st_size > 0, name
    pngs = sorted((sweep_dir / aggregate.PLOTS_DIR).glob("*.png"))
    assert [p.stem.split("__")[1] for p in pngs] == sorted(plots.PLOTS)
    for png in pngs:
        image = matplotlib.image.imread(png)
        assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 0.05, png  # a picture, not blank
    assert "Optimal draft and γ per target" in done.stdout and "4 of 6 jobs done" in done.stdout


def test_the_tidy_table_has_a_row_per_job_with_axes_and_metrics(sweep):
    table = aggregate.collect(sweep[0])
    assert len(table) == 6 and sorted(table["status"]) == ["done"] * 4 + ["failed"] * 2
    assert set(table["draft"]) == {"16K", "37K", "XL"} and set(table["gamma"]) == {1, 3}
    for column in ["sampling.temperature", "bench.max_new_tokens", "optimization.kv_cache", "setting", "hardware",
                   "speedup", "speedup_low", "speedup_high", "predicted_speedup", "gamma_star", "alpha", "c",
                   "draft_params", "target_params", "exact_match", "rougeL", "baseline_rougeL", "git_commit"]:
        assert column in table, column
    failed = table[table["status"] == "failed"]
    assert failed["error"].str.contains("names XL, which the built family").all()
    assert pd.read_csv(sweep[0] / aggregate.RESULTS_CSV).shape == table.shape


def test_the_study_grid_shows_every_cell_with_its_prediction(sweep):
    table = aggregate.collect(sweep[0])
    ((labels, frame),) = list(cells.groups(table))
    assert labels["method"] == "speculative" and labels["setting"] == "default"
    grid = tables.grid(frame)
    assert list(grid["draft"]) == ["16K", "16K", "37K", "37K", "XL", "XL"]  # by size; unknown size last
    assert list(grid["γ"]) == [1, 3, 1, 3, 1, 3]
    assert list(grid["status"]) == ["done"] * 4 + ["failed"] * 2
    for column in ["alpha", "acceptance_rate", "c", "ms/token", SPEEDUP, tables.CONTROL_COLUMN, "predicted", "γ*",
                   "measured / predicted", "flag", "exact_match", "ΔROUGE-L"]:
        assert column in grid, column
    assert list(grid["exact_match"][:4]) == ["1.000"] * 4  # greedy: lossless
    assert list(grid["ΔROUGE-L"][:4]) == ["+0.000"] * 4  # identical outputs, identical quality
    assert all(cell.endswith("]") and "× [" in cell for cell in grid[SPEEDUP][:4])
    assert all("× [" in cell for cell in grid[tables.CONTROL_COLUMN][:4])  # the A/A control, timed in every cell

    best = tables.optimum(table)
    fastest = table.loc[table["speedup"].idxmax()]
    assert (best.loc[0, "rank"], best.loc[0, "draft"], best.loc[0, "γ"]) == ("best", fastest["draft"], fastest["gamma"])
    # Timed cells: how many tie with the best is the machine's noise; each other row is one whose interval reaches it.
    others = table[table["status"].eq("done") & (table["key"] != fastest["key"])]
    tied = others[others["speedup_high"] >= fastest["speedup_low"]]
    assert list(best["rank"][1:]) == ["tied for best (intervals overlap)"] * len(tied)
    assert best.loc[0, "scaling"] == f"{fastest['target_params'] / fastest['draft_params']:.1f}×"
    markdown = (sweep[0] / aggregate.STUDY_MD).read_text()
    assert markdown.count("\n## ") == 4  # the optimum, the grid, its prediction at every γ, the unfinished jobs
    assert "| XL " in markdown and "failed" in markdown


def test_missing_cells_are_shown_not_dropped(copy_of):
    shutil.rmtree(next(copy_of.glob("*draft=37K,gamma=3*")))  # the job never ran
    (next(copy_of.glob("*draft=16K,gamma=3*")) / record.STATUS).unlink()  # killed before its status
    table = aggregate.collect(copy_of)
    never = table[table["job"].str.startswith("(never launched)")]
    assert list(never["job"]) == ["(never launched) draft=37K,gamma=3"]  # planned in multirun.yaml
    assert list(table["status"]).count("missing") == 2
    ((_, frame),) = list(cells.groups(table))
    status = tables.grid(frame).set_index(["draft", "γ"])["status"]
    assert status["37K", 3] == "missing" and status["16K", 3] == "missing" and status["16K", 1] == "done"


def test_a_corrupt_metrics_file_is_reported_by_name_and_skipped(copy_of):
    corrupt = next(copy_of.glob("*draft=37K,gamma=1*")) / record.METRICS_JSON
    corrupt.write_text('{"metrics": {"speedup": 1.')
    (next(copy_of.glob("*draft=XL,gamma=1*")) / ".hydra" / "config.yaml").write_text("draft: [unclosed\n")
    done = subprocess.run([sys.executable, "-m", "specsweep.aggregate", str(copy_of)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert str(corrupt) in done.stdout + done.stderr
    table = pd.read_csv(copy_of / aggregate.RESULTS_CSV)
    assert sorted(table["status"]) == ["corrupt"] + ["done"] * 3 + ["failed"] * 2
    assert "3 of 6 jobs done" in done.stdout


def test_two_sweeps_merge(sweep, env, tmp_path):
    second = tmp_path / "second"
    assert multirun(second, env, "draft=16K", "gamma=2").returncode == 0
    merged = tmp_path / "merged"
    done = subprocess.run([sys.executable, "-m", "specsweep.aggregate", str(sweep[0]), str(second), "--out",
                           str(merged)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # the first sweep's failed cells are still failed
    table = pd.read_csv(merged / aggregate.RESULTS_CSV)
    assert len(table) == 7 and set(table["sweep"]) == {str(sweep[0]), str(second)}
    ((_, frame),) = list(cells.groups(table))
    grid = tables.grid(frame)
    assert list(grid["γ"]) == [1, 2, 3] * 3
    assert grid.set_index(["draft", "γ"]).loc[("37K", 2), "status"] == "missing"  # the merged grid has a hole

    refused = subprocess.run([sys.executable, "-m", "specsweep.aggregate", str(sweep[0]), str(second)], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--out is required when merging 2 sweeps" in refused.stderr


def test_a_failed_cell_is_a_failed_wandb_run_with_its_error(sweep):
    for job_dir in sweep[0].glob("*_*"):
        status = record.read_status(job_dir)
        if status and status["status"] == "failed":
            (run_dir,) = job_dir.glob("wandb/offline-run-*")
            assert run_dir.name.endswith(wandb_run_id(wandb_group(sweep[0]), status["key"]))
            (log,) = run_dir.glob("run-*.wandb")
            assert status["error"].split(":")[0].encode() in log.read_bytes()  # the error's type, with its text


def test_the_study_is_logged_to_a_wandb_run_in_the_sweep_group(sweep, env):
    sweep_dir = sweep[0]
    (run_dir,) = (sweep_dir / "wandb").glob("offline-run-*")
    assert run_dir.name.endswith(wandb_run_id(wandb_group(sweep_dir), "study"))
    (log,) = run_dir.glob("run-*.wandb")
    blob = log.read_bytes()
    job = json.loads(next(sweep_dir.glob("0_*/metrics.json")).read_text())["wandb"]
    assert b"study" in blob and job["group"].encode() in blob
    tables = [p.name for p in run_dir.glob("files/media/table/**/*.table.json")]
    assert any(name.startswith("results_") for name in tables) and len(tables) >= 3
    assert len(list(run_dir.glob("files/media/images/**/*.png"))) == len(plots.PLOTS)  # one group, every plot
    # Numbers stay numbers in W&B: the dashboard can sort and plot them.
    (optimum,) = run_dir.glob("files/media/table/optimum_*.table.json")
    logged = json.loads(optimum.read_text())
    speedups = [row[logged["columns"].index("speedup")] for row in logged["data"]]
    assert speedups and all(isinstance(value, float) for value in speedups)
    # Aggregating again resumes the study run: the same id, not a second run.
    again = subprocess.run([sys.executable, "-m", "specsweep.aggregate", str(sweep_dir)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 1, again.stderr  # two cells failed
    assert {path.name.rsplit("-", 1)[1] for path in (sweep_dir / "wandb").glob("offline-run-*")} == {
        run_dir.name.rsplit("-", 1)[1]}


def test_the_report_renders_in_chromium(sweep, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is missing; `make test` installs it"
    report = sweep[0] / aggregate.REPORT_HTML
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert dom.count("<table") == 4 and dom.count("<img") == len(plots.PLOTS)  # optimum, grid, prediction, failures
    assert "Optimal draft and γ per target" in dom
    assert "http" not in report.read_text().replace("http://www.w3.org", "")  # self-contained: nothing fetched
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1280,4000", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120)
    pixels = matplotlib.image.imread(shot)[..., :3]
    # The tables are black on white; only the plots (heatmap, coloured lines) put saturated colour on the page.
    saturated = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.3
    assert saturated.mean() > 0.01


def test_the_notebook_runs_on_a_sweep(sweep, env):
    notebook = nbformat.read(ROOT / "notebooks" / "study.ipynb", as_version=4)
    os.environ["SPECSWEEP_RESULTS"] = str(sweep[0] / aggregate.RESULTS_CSV)
    try:
        NotebookClient(notebook, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        del os.environ["SPECSWEEP_RESULTS"]
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(plots.PLOTS)
    assert "6 jobs, 4 done" in "".join(o.get("text", "") for o in outputs)


def test_a_sweep_from_before_status_held_the_cell_gives_the_same_rows(copy_of):
    """Sweeps made before status.json recorded the cell: their rows come from the config each job saved."""
    columns = ["job", "status", "draft", "gamma", "method", "setting", "sampling.temperature", "speedup", "error"]
    now = aggregate.collect(copy_of)[columns]
    for status_file in copy_of.glob("*/" + record.STATUS):
        status = json.loads(status_file.read_text())
        del status["cell"]
        status_file.write_text(json.dumps(status))
    pd.testing.assert_frame_equal(aggregate.collect(copy_of)[columns], now)


def test_our_sweep_passes_the_consistency_diagnosis(sweep):
    study_md = (sweep[0] / aggregate.STUDY_MD).read_text()
    rows = "\n".join(line for line in study_md.splitlines() if line.startswith("|"))  # the tables, not the note
    assert "not conditioned on earlier drafts" not in rows and "α should not depend on γ" not in rows
    assert "pair α" in rows and "S (pair α)" in rows


def test_a_results_csv_gives_the_same_study_as_its_sweep(copy_of, tmp_path):
    assert aggregate.summarize([copy_of], copy_of).shape[0] == 6
    again = tmp_path / "again"
    done = subprocess.run([sys.executable, "-m", "specsweep.aggregate", str(copy_of / aggregate.RESULTS_CSV),
                           "--out", str(again)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # two cells failed, as in the sweep
    assert (again / aggregate.STUDY_MD).read_text() == (copy_of / aggregate.STUDY_MD).read_text()


def test_published_cells_are_set_beside_the_matching_measured_ones(sweep, tmp_path):
    paper = tmp_path / "paper.csv"
    paper.write_text("target,draft,gamma,speedup,alpha,c,note\n"
                     "embedded_micro,37K,3,1.30,0.5,0.1,A paper (a GPU)\n"
                     "embedded_micro,9M,3,2.00,0.6,0.1,A paper (a GPU)\n")  # no cell of ours has a 9M draft
    table = aggregate.collect(sweep[0], published=[paper])
    matched = tables.beside_published(table)
    assert matched[["target", "draft", "γ", "speedup, published", "α, published"]].values.tolist() == [
        ["embedded_micro", "37K", 3, "1.30", "0.500"]]
    assert matched[SPEEDUP].iloc[0].endswith("]") and matched["measured on"].iloc[0] != "A paper (a GPU)"
    assert "## Published beside measured" in document.markdown(table)
    assert tables.beside_published(aggregate.collect(sweep[0])).empty  # no paper, no section
