"""Build the embedded model family (or find it built) and print where it is.

    specsweep-build-family [--micro] [--medusa] [--ladder kd|plain|...]

A sweep builds the family on first use (specsweep.models.embedded, cached under $SPECSWEEP_HOME); this builds it
ahead of one. `--micro` is the seconds-long recipe the tests use, `--medusa` also trains the target's Medusa heads,
`--ladder` distils one of the target's ladders of drafts (model_family.ladder of the embedded_ladder families).
The old `python -m specsweep.models.embedded build` runs this command, so the word `build` is still accepted.
"""

from __future__ import annotations

import argparse
import json

from specsweep.models import embedded
from specsweep.models.store import MANIFEST


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="specsweep-build-family",
                                     description="Build the embedded model family (cached; offline).")
    parser.add_argument("command", nargs="?", choices=["build"], help=argparse.SUPPRESS)  # the old path's word
    parser.add_argument("--micro", action="store_true", help="the seconds-long recipe the tests use")
    parser.add_argument("--medusa", action="store_true", help="also train the target's Medusa heads")
    parser.add_argument("--ladder", action="append", choices=list(embedded.LADDERS), default=[],
                        help="also distil this ladder of drafts for the target (repeatable)")
    args = parser.parse_args(argv)
    path = embedded.build(embedded.MICRO if args.micro else embedded.Recipe())
    manifest = json.loads((path / MANIFEST).read_text())
    print(f"{path}  (target {manifest['target_size']}, drafts {', '.join(manifest['drafts'])}, "
          f"built in {manifest['build_seconds']:.0f} s)")
    if args.medusa:
        heads = embedded.build_medusa(path, embedded.MICRO_MEDUSA_RECIPE if args.micro else embedded.MEDUSA_RECIPE)
        built = json.loads((heads / MANIFEST).read_text())
        agreement = ", ".join(f"{a:.2f}" for a in built["top1_agreement"])
        print(f"{heads}  ({built['heads']} Medusa heads, top-1 agreement {agreement}, "
              f"trained in {built['build_seconds']:.0f} s)")
    for name in args.ladder:
        ladder = embedded.build_ladder(path, embedded.LADDERS[name])
        built = json.loads((ladder / MANIFEST).read_text())
        print(f"{ladder}  (the {name} ladder: {', '.join(built['drafts'])}, distilled in "
              f"{built['build_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
