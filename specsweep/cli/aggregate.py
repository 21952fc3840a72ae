"""The study of sweeps, from the command line (the same step runs at the end of every multirun:
`specsweep.app.callbacks`).

    specsweep-aggregate outputs/multirun/<date>/<time>             # written into that directory
    specsweep-aggregate <sweep> <another sweep> --out <directory>  # merged
    specsweep-aggregate experiments/<name>/results.csv             # the study again, from its table
    specsweep-aggregate [<sweep> ...] --published <csv> --out <dir>  # a paper's table, beside ours

A sweep whose config names `published` (an experiment file does) gets that table beside it without --published.

Both run `specsweep.study.aggregate.summarize`, which reads only the jobs' files: no torch is imported here.
`python -m specsweep.aggregate` is the same command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from specsweep.errors import ConfigError
from specsweep.study.aggregate import named_published, summarize
from specsweep.study.diagnose import TOLERANCE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Aggregate sweep directories into results.csv, study.md, plots "
                                                 "and report.html.")
    parser.add_argument("sweep_dirs", type=Path, nargs="*",
                        help="sweep directories or results.csv files (merged)")
    parser.add_argument("--published", type=Path, action="append", default=[],
                        help="a published table (CSV: draft, gamma, speedup, alpha or acceptance_rate, ...)")
    parser.add_argument("--out", type=Path,
                        help="where to write (default: the sweep directory, or the results.csv's, if only one)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help="flag cells whose measured/predicted speedup is outside 1 +- this (default %(default)s)")
    args = parser.parse_args(argv)
    for source in [*args.sweep_dirs, *args.published]:
        if not (source.is_dir() or source.is_file()):
            parser.error(f"{source} is not a sweep directory or a CSV file.")
    if not args.sweep_dirs and not args.published:
        parser.error("name a sweep directory, a results.csv or a --published table to aggregate.")
    if args.out is None and len(args.sweep_dirs) + len(args.published) > 1:
        parser.error(f"--out is required when merging {len(args.sweep_dirs) + len(args.published)} sweeps or "
                     f"tables; name a directory for the merged study.")
    if args.out is None and not args.sweep_dirs:
        parser.error("--out is required for a published table alone; name a directory for its study.")
    if not 0 < args.tolerance < 1:
        parser.error(f"--tolerance={args.tolerance} is invalid; it must be between 0 and 1.")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sources = args.sweep_dirs
    out = args.out or (sources[0] if sources[0].is_dir() else sources[0].parent)
    try:
        table = summarize(sources, out, args.tolerance, args.published or named_published(sources))
    except ConfigError as error:
        parser.error(str(error))
    if table.empty or (~table["status"].isin(["done", "skipped"])).any():  # a planner's skipped cells are not lost
        sys.exit(1)


if __name__ == "__main__":
    main()
