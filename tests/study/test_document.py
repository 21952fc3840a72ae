"""study.md's sections on the edge cases a real sweep reaches rarely: every job failed, a table read back from CSV."""

from __future__ import annotations

import io
import itertools

import pandas as pd

from specsweep.study import document, plots, tables
from tests.study.rows import grid_of, job, table


def test_every_job_failed():
    rows = [job(draft=d, status="failed") for d in ["1M", "3M"]]
    sections = dict(document.sections(table(rows)))
    assert sections["Jobs that did not finish"]["error"].tolist() == ["ValueError: boom"] * 2
    assert tables.optimum(table(rows)).empty and plots.figures(table(rows)) == []
    assert list(grid_of(rows)["status"]) == ["failed", "failed"]


def test_a_table_read_back_from_csv_gives_the_same_study():
    rows = [job(draft=d, gamma=g) for d, g in itertools.product(["1M", "3M"], [1, 3])]
    rows.append(job(method="autoregressive", draft=None, gamma=None, speedup=1.0))
    rows.append(job(draft="9M", status="failed"))
    original = table(rows)
    read_back = pd.read_csv(io.StringIO(original.to_csv(index=False)))
    assert document.markdown(read_back) == document.markdown(original)
