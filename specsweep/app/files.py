"""A job's life on disk: status.json, metrics.json and samples.jsonl (their schema is `specsweep.record`),
each written whole or not at all.

status.json is written first ("running", with the cell) and last, so a job killed midway leaves "running",
never a "done" beside partial results. A cell whose status is "done" is never measured again in the same sweep
directory.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

from specsweep.app.provenance import now
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
        write_json(out / STATUS, Status(status="done", key=key, cell=cell, same_as=done.name, time=now()))
    record["skipped"] = True
    return record


def start(out: Path, key: str, cell: dict[str, Any]) -> None:
    """Clear what an earlier, failed attempt left, then mark the job running."""
    for name in (METRICS_JSON, SAMPLES):
        (out / name).unlink(missing_ok=True)
    write_json(out / STATUS, Status(status="running", key=key, cell=cell, time=now()))


def fail(out: Path, key: str, cell: dict[str, Any], error: BaseException) -> Status:
    status = Status(status="failed", key=key, cell=cell, time=now(), error=f"{type(error).__name__}: {error}",
                    traceback="".join(traceback.format_exception(error)))
    write_json(out / STATUS, status)
    return status


def finish(out: Path, record: MetricsRecord, samples: list[Sample]) -> None:
    write_atomic(out / SAMPLES, "".join(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in samples))
    write_json(out / METRICS_JSON, record)
    write_json(out / STATUS, Status(status="done", key=record["key"], cell=record["cell"], time=now()))
