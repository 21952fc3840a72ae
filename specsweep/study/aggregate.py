"""Turn sweep directories into the study: results.csv, study.md, plots/ and report.html.

Reads only the jobs' files on disk (the schema of `specsweep.record`), so it works on a sweep that crashed, was
resumed, or ran on another machine, and it needs neither torch nor the job code. `specsweep.cli.aggregate` is its
command line and `specsweep.app.callbacks` its end-of-sweep callback.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from specsweep import record, schema
from specsweep.study import dashboard, document, forecast, plots, report
from specsweep.study.cells import CELL, GROUP
from specsweep.study.diagnose import TOLERANCE
from specsweep.study.format import table_markdown
from specsweep.study.published import read as read_published

log = logging.getLogger(__name__)
RESULTS_CSV, STUDY_MD, REPORT_HTML, PLOTS_DIR = "results.csv", "study.md", "report.html", "plots"
INTEGERS = ["gamma", "gamma_star", "draft_params", "target_params", "num_samples", "threads"]
STUDY_COLUMNS = ["sweep", "job", "status", "key", *GROUP, *CELL, "same_as", "error", "time",
                 "draft_params", "target_params", "speedup",
                 "speedup_low", "speedup_high", "predicted_speedup", "gamma_star", "alpha", "acceptance_rate", "c",
                 "ms_per_token", "baseline_ms_per_token", "exact_match"]


def collect(*sources: Path, published: Sequence[Path] = ()) -> pd.DataFrame:
    """One tidy row per job of every source: a sweep directory (its jobs' config axes, status, metrics and
    provenance) or a results.csv an earlier aggregation wrote; then the rows of published tables.
    Jobs that failed, never finished, or left an unreadable metrics.json are rows too, with their status."""
    rows = []
    for source in dict.fromkeys(Path(d).resolve() for d in sources):  # a sweep named twice counts once
        if source.is_file():
            rows += pd.read_csv(source, dtype={"draft": str}).to_dict("records")
            continue
        jobs = [read_job(job_dir) for job_dir in job_dirs(source)]
        rows += forecast.attach(jobs + place_unstarted(source, jobs), source)
    for path in published:
        rows += read_published(path).to_dict("records")
    table = pd.DataFrame(rows)
    # Columns the study reads exist even when no job wrote them (all failed, or written by an older version).
    table = table.reindex(columns=list(dict.fromkeys([*table.columns, *STUDY_COLUMNS, *INTEGERS])))
    for column in INTEGERS:
        table[column] = table[column].astype("Int64")  # not float because some rows lack it: gamma 3, not 3.0
    if not table.empty:
        # A job that failed measured nothing, but it belongs to its sweep's machine, so to the same study group.
        table["hardware"] = table.groupby("sweep")["hardware"].transform(
            lambda machine: machine.fillna(machine.mode().iloc[0]) if machine.notna().any() else machine)
    return table


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The directories Hydra made for jobs (they hold .hydra/) or that hold a job status, in launch order."""
    found = [p for p in sweep_dir.iterdir()
             if p.is_dir() and ((p / ".hydra").is_dir() or (p / record.STATUS).exists())]
    return sorted(found, key=launch_order)


def launch_order(job_dir: Path) -> tuple[int, str]:
    """Job directories start with Hydra's job number ("3_draft=1.2M,gamma=7"): sort 2 before 10."""
    number = job_dir.name.split("_", 1)[0]
    return (int(number) if number.isdigit() else 1 << 30, job_dir.name)


def read_job(job_dir: Path) -> dict[str, Any]:
    """A job's row: its status and cell (from status.json, written when it started), then its metrics."""
    row: dict[str, Any] = {"sweep": str(job_dir.parent), "job": job_dir.name}
    status = record.read_status(job_dir)
    row["status"] = status["status"] if status else "missing"
    if status:
        row |= {k: status.get(k) for k in ("same_as", "key", "time")} | (status.get("cell") or legacy_cell(job_dir))
    if row["status"] == "done":
        try:
            return row | flatten(json.loads((job_dir / record.METRICS_JSON).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("%s is unreadable and left out of the study: %s", job_dir / record.METRICS_JSON, error)
            row |= {"status": "corrupt", "error": f"{job_dir / record.METRICS_JSON} is unreadable: {error}"}
    elif status:
        row["error"] = status.get("error")
    elif (job_dir / record.STATUS).exists():
        row["error"] = f"{job_dir / record.STATUS} is unreadable"
    else:
        row["error"] = "the job left no status (killed before it started?)"
    return row


def legacy_cell(job_dir: Path) -> dict[str, Any]:
    """The axes of a job from before status.json held its cell: from the config its metrics.json or Hydra saved,
    where the method's capabilities were still config keys."""
    try:
        config = json.loads((job_dir / record.METRICS_JSON).read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        saved = load_yaml(job_dir / ".hydra" / "config.yaml")
        if saved is None:
            return {}
        saved.output_dir = str(job_dir)  # was ${hydra:...}, which only resolves inside Hydra
        config = OmegaConf.to_container(saved, resolve=True)
    try:
        return schema.axes(config, config["method"].get("uses_draft", True), config["method"].get("uses_gamma", True))
    except (KeyError, TypeError, AttributeError) as error:
        log.warning("the config of %s has no cell: %s", job_dir, error)
        return {}


def flatten(metrics: record.MetricsRecord) -> dict[str, Any]:
    scalars = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in metrics["metrics"].items()}
    counts = {k: json.dumps(v) if isinstance(v, list) else v for k, v in metrics.get("counts", {}).items()
              if k not in scalars}  # rounds, drafted, accepted, rejections, new_tokens, ...
    provenance = metrics.get("provenance", {})
    return (metrics["cell"] | scalars | counts | {"key": metrics.get("key")}
            | {f"{role}_params": count for role, count in metrics.get("params", {}).items()}
            | {f"draft_{name}": value for name, value in card_columns(metrics.get("cards", {}).get("draft")).items()}
            | {"num_samples": metrics.get("num_samples"), "load_seconds": metrics.get("load_seconds"),
               "target_dtype": metrics.get("applied", {}).get("target", {}).get("dtype"),
               "drafts_conditioned": metrics.get("method_settings", {}).get("drafts_conditioned"),
               **{f"{role}_{name}": value for role, sizes in metrics.get("memory", {}).items()
                  if role in ("target", "draft", "heads") for name, value in sizes.items()},
               "hardware": provenance.get("gpu") or provenance.get("cpu"), "threads": provenance.get("threads"),
               "git_commit": provenance.get("git_commit"), "git_dirty": provenance.get("git_dirty"),
               **{f"slurm_{name}": value for name, value in (provenance.get("slurm") or {}).items()},
               "time": provenance.get("time"),
               **{f"wandb_{k}": v for k, v in (metrics.get("wandb") or {}).items() if k != "dir"}})


def card_columns(card: dict[str, Any] | None) -> dict[str, Any]:
    """A distilled draft's card as columns (draft_shape, draft_loss, draft_heldout_perplexity, ...)."""
    if not card:
        return {}
    training = card.get("training", {})
    return {"shape": card.get("shape"), "layers": card.get("layers"), "hidden": card.get("hidden"),
            "loss": training.get("loss"), "policy": training.get("policy"),
            "heldout_perplexity": card.get("heldout_perplexity"), "agreement": card.get("agreement")}


def cell_columns(row: dict[str, Any]) -> dict[str, Any]:
    """What places a row in the study: its group, cell and config axes."""
    return {k: v for k, v in row.items() if "." in k or k in (*GROUP, *CELL, "seed", "device")}


def place_unstarted(sweep_dir: Path, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells that never wrote a status get their place in the study from their overrides: a job directory
    killed before its job started, and cells planned in the sweep's multirun.yaml but never launched (rows
    with status `missing`). Each takes the rest of its row from the started job that shares the most of its
    override values (so a method that ignores `draft` keeps draft=None); a planned cell that would repeat a
    row already there (a method run once for every draft) is left out."""
    started = [job for job in jobs if job["status"] != "missing"]
    if not started:
        return []
    overrides = {job["job"]: job_overrides(Path(job["sweep"]) / job["job"]) or {} for job in jobs}

    def placed(values: dict[str, Any]) -> dict[str, Any]:
        # The method decides which axes apply, so a template of the same method comes first.
        def likeness(job: dict[str, Any]) -> tuple[bool, int]:
            same = sum(overrides[job["job"]].get(k) == v for k, v in values.items())
            return values.get("method", job.get("method")) == job.get("method"), same

        return infer(max(started, key=likeness), values, started)

    for job in jobs:
        if job["status"] == "missing" and overrides[job["job"]]:
            job |= placed(overrides[job["job"]])
    seen = {signature(job) for job in jobs}
    rows = []
    planned = planned_sweep(sweep_dir) or {}
    for values in itertools.product(*planned.values()):
        named = dict(zip(planned, values, strict=True))
        if any(all(done.get(k) == v for k, v in named.items()) for done in overrides.values()):
            continue
        row = placed(named)
        if signature(row) in seen:
            continue
        seen.add(signature(row))
        label = ",".join(f"{key}={value}" for key, value in named.items())
        rows.append(row | {"sweep": str(sweep_dir), "job": f"(never launched) {label}", "status": "missing",
                           "error": "the sweep ended before launching this job"})
    return rows


def signature(row: dict[str, Any]) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in cell_columns(row).items()))


def infer(template: dict[str, Any], overrides: dict[str, str], started: list[dict[str, Any]]) -> dict[str, Any]:
    """A started job's cell columns with another cell's override values put in, as Hydra parses them. A config
    group chosen by name (`optimization=int8`) takes its columns from a started job that chose it; when none did,
    only its name is known, and its setting says so."""
    row = cell_columns(template)
    for key, text in overrides.items():
        column = key.lstrip("+~")
        if column in CELL and row.get(column) is None:
            continue  # the template's method ignores this axis
        if f"{column}.name" not in row:
            row[column] = text if column == "draft" else parsed(text)  # a size name stays text: 1.2M
            continue
        chose = next((cell_columns(job) for job in started if job.get(f"{column}.name") == text), {})
        group = {k: v for k, v in chose.items() if k.startswith(f"{column}.")}
        row = {k: v for k, v in row.items() if not k.startswith(f"{column}.")} | group
        row[column] = row[f"{column}.name"] = text
        if column == "optimization":
            row["setting"] = chose.get("setting", f"optimization={text}")
    if any(key.startswith("optimization.") for key in overrides):
        row["setting"] = schema.setting_label({k.removeprefix("optimization."): v for k, v in row.items()
                                               if k.startswith("optimization.")})
    return row


def planned_sweep(sweep_dir: Path) -> dict[str, list[str]] | None:
    """The swept keys of a multirun and their values: the sweeper's params, then the command line's, which win.
    `hydra.*` overrides say where the sweep runs, not what it measures."""
    saved = load_yaml(sweep_dir / "multirun.yaml")
    if saved is None:
        return None
    params = OmegaConf.select(saved, "hydra.sweeper.params") or {}
    task = OmegaConf.select(saved, "hydra.overrides.task") or []
    values = override_values([f"{k}={v}" for k, v in params.items()] + list(task))
    return {key: choices for key, choices in values.items() if len(choices) > 1 and not key.startswith("hydra.")}


def job_overrides(job_dir: Path) -> dict[str, str] | None:
    """The overrides one job of a multirun ran with, from Hydra's .hydra/overrides.yaml."""
    saved = load_yaml(job_dir / ".hydra" / "overrides.yaml")
    return None if saved is None else {key: values[0] for key, values in override_values(list(saved)).items()}


def override_values(overrides: list[str]) -> dict[str, list[str]]:
    """key -> its values, by Hydra's own override parser ("gamma=1,3" -> ["1", "3"])."""
    values = {}
    for override in parser().parse_overrides(overrides):
        values[override.get_key_element()] = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                                              else [override.get_value_element_as_str()])
    return values


def parsed(text: str) -> Any:
    """An override's value as Hydra reads it: "3" -> 3, "true" -> True, "1.2M" -> "1.2M"."""
    try:
        return parser().parse_override(f"value={text}").value()
    except Exception:  # not valid override syntax: the text as it is
        return text


@functools.cache
def parser() -> OverridesParser:
    """Hydra's override parser, built once (it is an ANTLR grammar: slow to build, reused for every job)."""
    return OverridesParser.create()


def load_yaml(path: Path) -> Any:
    try:
        return OmegaConf.load(path)
    except Exception:  # missing or not YAML: the caller falls back
        return None


def summarize(sweep_dirs: list[Path], out: Path, tolerance: float = TOLERANCE,
              published: Sequence[Path] = ()) -> pd.DataFrame:
    """Write the study of `sweep_dirs` (and published tables) into `out`, print its tables, log it to W&B when
    the jobs were logged there, and return the tidy table."""
    table = collect(*sweep_dirs, published=published)
    if table.empty:
        print(f"no jobs in {', '.join(map(str, [*sweep_dirs, *published]))}")
        return table
    out.mkdir(parents=True, exist_ok=True)
    record.write_atomic(out / RESULTS_CSV, table.to_csv(index=False))
    sections = document.sections(table, tolerance)
    record.write_atomic(out / STUDY_MD, document.render_markdown(sections, tolerance))
    images = plots.save(table, out / PLOTS_DIR, tolerance)
    done = int(table["status"].eq("done").sum())
    line = f"{done} of {len(table)} jobs done"
    record.write_atomic(out / REPORT_HTML, report.render(sections, images, sweep_dirs, document.note(tolerance), line))
    dashboard.log_study(table, images, out)

    for heading, frame in sections:
        print(f"\n## {heading}\n\n{table_markdown(frame)}")
    print(f"\n{line}; table: {out / RESULTS_CSV}; study: {out / STUDY_MD}; report: {out / REPORT_HTML}")
    return table


def named_published(sweep_dirs: list[Path]) -> list[Path]:
    """The published tables the sweeps' configs name (`published`, set by an experiment file), from the config
    Hydra saved with each sweep."""
    named = []
    for sweep_dir in sweep_dirs:
        saved = sweep_dir / "multirun.yaml"
        if saved.is_file() and (path := OmegaConf.load(saved).get("published")):
            named.append(Path(path))
    return list(dict.fromkeys(named))
