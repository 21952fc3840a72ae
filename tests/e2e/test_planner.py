"""`hydra/sweeper=planned` end to end on the micro family: it traces and profiles first, measures cells in order of
predicted speedup, writes its plan, resumes without measuring again, and its traces and profile predict a study
with `specsweep-predict`; a profile that does not fit the traces is one sentence."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from specsweep import record
from specsweep.study import forecast
from specsweep.study.aggregate import job_dirs
from tests.helpers import ROOT, sweep

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("planner")]
GRID = ("hydra/sweeper=planned", "draft=16K,37K", "gamma=1,2,3")


@pytest.fixture(scope="module")
def planned(specsweep_home, tmp_path_factory):
    env = {**__import__("os").environ, "SPECSWEEP_HOME": str(specsweep_home), "WANDB_MODE": "disabled",
           "HF_HUB_OFFLINE": "1"}
    sweep_dir = tmp_path_factory.mktemp("planned") / "sweep"
    done = sweep(sweep_dir, env, *GRID)
    return sweep_dir, env, done


def predict(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specsweep.predict", *arguments], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_the_planner_traces_profiles_and_measures_in_order_of_predicted_speedup(planned):
    sweep_dir, _, done = planned
    assert done.returncode == 0, done.stderr
    log = done.stdout + done.stderr
    assert "planner: tracing 2 drafts" in log and "planner: stopped after measuring" in log
    plan = json.loads((sweep_dir / forecast.PLAN_JSON).read_text())
    assert plan["stopped"] and len(plan["cells"]) == 6 and 1 <= len(plan["order"]) <= 6
    cells = {(c["draft"], c["gamma"]): c for c in plan["cells"]}
    assert sum(c["p_best"] for c in cells.values()) == pytest.approx(1.0)
    assert all(c["skipped"] for c in cells.values() if not c["measured"])
    assert plan["fraction_of_grid"] > 0
    first = max(cells.values(), key=lambda c: c["replay_speedup"])
    assert plan["order"][0] == [first["draft"], first["gamma"]]
    dirs = job_dirs(sweep_dir)
    assert len([d for d in dirs if (d / record.METRICS_JSON).exists()]) == len(plan["order"])
    for job in dirs:
        if (job / record.METRICS_JSON).exists():  # float32 greedy: the job's own replay equals what it counted
            metrics = json.loads((job / record.METRICS_JSON).read_text())
            m, counts = metrics["metrics"], metrics["counts"]
            assert m["replay_tokens_per_round"] == m["tokens_per_round"]
            assert (m["replay_target_forwards"], m["replay_draft_forwards"]) == \
                (counts["target_forwards"], counts["draft_forwards"])
    study = (sweep_dir / "study.md").read_text()
    assert "Planned sweeps: what the planner measured" in study and "replay [95% CI]" in study
    table = pd.read_csv(sweep_dir / "results.csv", dtype={"draft": str})
    assert set(table["status"]) <= {"done", "skipped"} and table["replay_speedup"].notna().all()


def test_a_planned_sweep_run_again_measures_nothing_again(planned):
    sweep_dir, env, _ = planned
    times = {d.name: (d / record.METRICS_JSON).stat().st_mtime_ns for d in job_dirs(sweep_dir)
             if (d / record.METRICS_JSON).exists()}
    again = sweep(sweep_dir, env, *GRID)
    assert again.returncode == 0, again.stderr
    assert "planner: measuring" not in again.stdout + again.stderr
    assert times == {name: (sweep_dir / name / record.METRICS_JSON).stat().st_mtime_ns for name in times}


def test_a_sweeps_traces_and_a_profile_predict_its_study(planned, tmp_path):
    sweep_dir, _, _ = planned
    done = predict(str(sweep_dir / forecast.TRACES_JSON), "--profile", str(sweep_dir / forecast.PROFILE_JSON),
                   "--out", str(tmp_path / "predicted"))
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "predicted" / "results.csv", dtype={"draft": str})
    assert len(table) == 2 * 7 and table["predicted"].all() and (table["speedup"] > 0).all()
    assert "(predicted)" in (tmp_path / "predicted" / "study.md").read_text()
    # From the jobs' own traces (samples.jsonl) the prediction is the same for the cells' drafts.
    again = predict(str(sweep_dir), "--profile", str(sweep_dir / forecast.PROFILE_JSON), "--out",
                    str(tmp_path / "from_jobs"), "--beside", str(sweep_dir))
    assert again.returncode == 0, again.stderr
    beside = pd.read_csv(tmp_path / "from_jobs" / "results.csv", dtype={"draft": str})
    assert beside.loc[beside["status"] == "done", "speedup"].notna().all()
    assert "How often the prediction from traces and a latency profile held" in \
        (tmp_path / "from_jobs" / "study.md").read_text()


@pytest.mark.parametrize(("edit", "sentence"), [
    (lambda p: p["models"]["target"].update(dtype="bfloat16"), "profiles the target with dtype=bfloat16"),
    (lambda p: p["costs"]["target"].update(contexts=[1, 2]), "profiles target at contexts up to 2"),
    (lambda p: p["models"].pop("16K"), "does not profile draft 16K"),
])
def test_a_profile_that_does_not_fit_the_traces_is_one_sentence(planned, tmp_path, edit, sentence):
    sweep_dir, _, _ = planned
    profile = json.loads((sweep_dir / forecast.PROFILE_JSON).read_text())
    edit(profile)
    (tmp_path / "profile.json").write_text(json.dumps(profile))
    done = predict(str(sweep_dir / forecast.TRACES_JSON), "--profile", str(tmp_path / "profile.json"), "--out",
                   str(tmp_path / "out"))
    assert done.returncode == 2 and sentence in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_the_planner_refuses_a_method_without_drafts_before_any_job(planned, tmp_path):
    _, env, _ = planned
    done = sweep(tmp_path / "sweep", env, "hydra/sweeper=planned", "method=autoregressive", "gamma=1,2")
    assert done.returncode == 1 and "method=autoregressive has no draft" in done.stdout + done.stderr
    assert not job_dirs(tmp_path / "sweep")


def test_the_profile_command_writes_a_profile_of_every_draft(planned, tmp_path):
    _, env, _ = planned
    done = subprocess.run([sys.executable, "-m", "specsweep.profile", "debug=smoke", "bench.threads=1",
                           f"hydra.run.dir={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert profile["threads"] == 1 and set(profile["models"]) == {"target", "16K", "37K", "unigram", "bigram"}
    target = profile["costs"]["target"]
    assert sorted(map(int, target["forward_ms"])) == list(range(1, 9))
    assert all(ms > 0 for row in target["forward_ms"].values() for ms in row)
    draft = profile["costs"]["37K"]  # timed as a decode runs them too: after the other model's forward
    assert sorted(map(int, draft["after_other_ms"])) == [1, 2]
    assert sorted(map(int, draft["target_after_ms"])) == list(range(2, 9))
