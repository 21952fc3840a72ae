"""The study of sweeps, from the command line and at the end of every multirun.

    python -m specsweep.aggregate outputs/multirun/<date>/<time>             # written into that directory
    python -m specsweep.aggregate <sweep> <another sweep> --out <directory>  # merged

Both run `specsweep.study.aggregate.summarize`, which reads only the jobs' files: no torch is imported here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from specsweep.study.aggregate import summarize
from specsweep.study.tables import TOLERANCE

log = logging.getLogger(__name__)


class AggregateCallback(Callback):
    """Hydra calls this once a multirun ends. Jobs never raise (they record failures), so it always runs."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            table = summarize([sweep_dir], sweep_dir)
        except Exception:  # Hydra turns a callback's exception into a warning and exits 0: say it, and exit 1
            log.exception("aggregating %s failed; the jobs' results are on disk, retry with "
                          "python -m specsweep.aggregate %s", sweep_dir, sweep_dir)
            sys.exit(1)
        if not table.empty and (table["status"] != "done").any():
            sys.exit(1)  # the sweep finished, but not every cell: the exit code says so


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Aggregate sweep directories into results.csv, study.md, plots "
                                                 "and report.html.")
    parser.add_argument("sweep_dirs", type=Path, nargs="+", help="one or more sweep directories (merged)")
    parser.add_argument("--out", type=Path, help="where to write (default: the sweep directory, if only one)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help="flag cells whose measured/predicted speedup is outside 1 +- this (default %(default)s)")
    args = parser.parse_args(argv)
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            parser.error(f"sweep_dirs: {sweep_dir} is not a directory.")
    if args.out is None and len(args.sweep_dirs) > 1:
        parser.error(f"--out is required when merging {len(args.sweep_dirs)} sweeps; name a directory for the "
                     f"merged study.")
    if not 0 < args.tolerance < 1:
        parser.error(f"--tolerance={args.tolerance} is invalid; it must be between 0 and 1.")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    table = summarize(args.sweep_dirs, args.out or args.sweep_dirs[0], args.tolerance)
    if table.empty or (table["status"] != "done").any():
        sys.exit(1)


if __name__ == "__main__":
    main()
