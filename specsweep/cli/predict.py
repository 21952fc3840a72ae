"""Another machine's study, predicted:

    specsweep-predict <sweep dir or traces.json> --profile <profile.json> --out <dir>

Traces do not depend on the machine: a sweep's speculative jobs keep them (samples.jsonl), and a planned sweep writes
traces.json. A profile (`specsweep-profile` on the machine in question) prices them. The output is a study like
`specsweep-aggregate`'s (results.csv, study.md, plots, report.html, and predicted.csv), every cell marked predicted;
with `--beside <sweep>`, that sweep's measured study with the prediction beside each cell.
Reads files only: no torch is imported. `python -m specsweep.predict` is the same command.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from specsweep import record
from specsweep.cli.args import Parser
from specsweep.errors import ConfigError
from specsweep.study import aggregate, forecast
from specsweep.study.diagnose import TOLERANCE


def main(argv: list[str] | None = None) -> None:
    parser = Parser(description="Predict a sweep's study for the machine a latency profile was made on.")
    parser.add_argument("source", type=Path, help="a sweep directory or a traces.json")
    parser.add_argument("--profile", type=Path, required=True, help="profile.json (specsweep-profile)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the predicted study")
    parser.add_argument("--beside", type=Path, help="a sweep measured on the profiled machine: its study, with the "
                                                    "prediction beside each measured cell")
    parser.add_argument("--seed", type=int, default=0, help="seeds the bootstrap over prompts")
    args: argparse.Namespace = parser.parse_args(argv)
    if not args.source.exists():
        parser.error(f"{args.source} is neither a sweep directory nor a traces.json.")
    if args.beside is not None and not args.beside.is_dir():
        parser.error(f"--beside={args.beside} is not a sweep directory.")
    if not args.profile.is_file():
        parser.error(f"--profile={args.profile} is not a file; make one with specsweep-profile.")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        traces = forecast.load_traces(args.source)
        profile = forecast.read_json(args.profile, "profile")
        prediction = forecast.predict(traces, profile, seed=args.seed, profile_path=args.profile)
    except ConfigError as error:
        parser.error(str(error))
    args.out.mkdir(parents=True, exist_ok=True)
    record.write_atomic(args.out / forecast.PREDICTED_CSV, prediction.to_csv(index=False))
    if args.beside is None:
        table = forecast.predicted_rows(prediction, traces, profile)
        table = table.reindex(columns=list(dict.fromkeys([*table.columns, *aggregate.STUDY_COLUMNS])))
    else:
        measured = aggregate.collect(args.beside)
        table = pd.DataFrame(forecast.join(measured.to_dict("records"), forecast.by_cell(prediction)))
    # The study is made from the table on disk, as `specsweep-aggregate <out>/results.csv` makes it again.
    record.write_atomic(args.out / aggregate.RESULTS_CSV, table.to_csv(index=False))
    aggregate.summarize([args.out / aggregate.RESULTS_CSV], args.out, TOLERANCE)


if __name__ == "__main__":
    main()
