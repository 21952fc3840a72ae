"""Leviathan et al. (2023)'s predictions as a Markdown table: expected tokens per target forward, the factor of
arithmetic operations, the walltime speedup S and the best lookahead γ* for given α, γ and c.

    specsweep-theory                                   # the paper's six (α, γ) pairs at c = c_hat = 0
    specsweep-theory --alpha 0.6 0.8 --gamma 1 3 5 --c 0.05 0.2
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from specsweep.cli.args import Parser, number
from specsweep.theory import GAMMAS, LEVIATHAN_PAIRS, table


def main(argv: list[str] | None = None) -> None:
    parser = Parser(
        prog="specsweep-theory",
        description="Leviathan et al. (2023) predictions: expected tokens per target forward, factor of arithmetic "
                    "operations, walltime speedup S and the best lookahead gamma_star in 1..7. Without --alpha and "
                    "--gamma: Leviathan et al.'s six (alpha, gamma) pairs; otherwise every alpha x gamma x c.",
    )
    # Strings, not type=float/int, so a bad value gets our message saying what is allowed.
    parser.add_argument("--alpha", nargs="+", metavar="A",
                        help="acceptance rates in [0, 1] (default with --gamma alone: 0.6 0.7 0.8 0.9)")
    parser.add_argument("--gamma", nargs="+", metavar="G",
                        help="lookaheads, integers >= 1 (default with --alpha alone: 1 to 7)")
    parser.add_argument("--c", nargs="+", metavar="C", default=["0"],
                        help="draft/target walltime cost ratios >= 0 (default 0)")
    parser.add_argument("--c-hat", metavar="C_HAT", default="0",
                        help="draft/target arithmetic-operations ratio >= 0 for the operations column (default 0)")
    args = parser.parse_args(argv)

    def nonneg(value: float) -> bool:
        return math.isfinite(value) and value >= 0

    def as_int(raw: str) -> int:
        return int(raw.strip())

    cs = [number(parser, "--c", raw, float, "a finite number >= 0", nonneg) for raw in args.c]
    c_hat = number(parser, "--c-hat", args.c_hat, float, "a finite number >= 0", nonneg)
    if args.alpha is None and args.gamma is None:
        pairs: Sequence[tuple[float, int]] = LEVIATHAN_PAIRS
    else:
        alphas = [number(parser, "--alpha", raw, float, "a number in [0, 1]", lambda a: 0 <= a <= 1)
                  for raw in args.alpha] if args.alpha else sorted({a for a, _ in LEVIATHAN_PAIRS})
        gammas = [number(parser, "--gamma", raw, as_int, "an integer >= 1", lambda g: g >= 1)
                  for raw in args.gamma] if args.gamma else list(GAMMAS)
        pairs = list(itertools.product(alphas, gammas))

    df = table(pairs, cs, c_hat)
    # alpha and c keep the precision they were given (0.593 must not print as 0.59); factors get 2 decimals.
    floatfmt = ("g", "g", "g", ".2f", ".2f", ".2f", "g", ".2f")
    print(f"c_hat = {c_hat:g}; operations and walltime are factors (x) over plain decoding; "
          f"gamma_star maximises walltime over gamma {GAMMAS.start}..{GAMMAS.stop - 1}.")
    print(df.to_markdown(index=False, floatfmt=floatfmt))


if __name__ == "__main__":
    main()
