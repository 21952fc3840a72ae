"""The study of sweeps, from the command line and at the end of every multirun.

    python -m specsweep.aggregate outputs/multirun/<date>/<time>             # written into that directory
    python -m specsweep.aggregate <sweep> <another sweep> --out <directory>  # merged
    python -m specsweep.aggregate experiments/<name>/results.csv             # the study again, from its table
    python -m specsweep.aggregate [<sweep> ...] --published <csv> --out <dir>  # a paper's table, beside ours

A sweep whose config names `published` (an experiment file does) gets that table beside it without --published.

Both run `specsweep.study.aggregate.summarize`, which reads only the jobs' files: no torch is imported here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from specsweep.errors import ConfigError
from specsweep.study.aggregate import summarize
from specsweep.study.tables import TOLERANCE

log = logging.getLogger(__name__)


class AggregateCallback(Callback):
    """Hydra calls this once a multirun ends. Jobs never raise (they record failures), so it always runs."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            table = summarize([sweep_dir], sweep_dir, published=named_published([sweep_dir]))
        except Exception:  # Hydra turns a callback's exception into a warning and exits 0: say it, and exit 1
            log.exception("aggregating %s failed; the jobs' results are on disk, retry with "
                          "python -m specsweep.aggregate %s", sweep_dir, sweep_dir)
            sys.exit(1)
        if not table.empty and (table["status"] != "done").any():
            sys.exit(1)  # the sweep finished, but not every cell: the exit code says so


def named_published(sweep_dirs: list[Path]) -> list[Path]:
    """The published tables the sweeps' configs name (`published`, set by an experiment file), from the config
    Hydra saved with each sweep."""
    named = []
    for sweep_dir in sweep_dirs:
        saved = sweep_dir / "multirun.yaml"
        if saved.is_file() and (path := OmegaConf.load(saved).get("published")):
            named.append(Path(path))
    return list(dict.fromkeys(named))


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
    if table.empty or (table["status"] != "done").any():
        sys.exit(1)


if __name__ == "__main__":
    main()
