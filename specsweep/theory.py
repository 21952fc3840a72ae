"""Leviathan et al. (2023), section 3: what speculative decoding should gain for a given alpha, gamma and c.

`python -m specsweep.theory` prints these predictions as a Markdown table; without --alpha/--gamma it
reproduces Leviathan et al. 2023's expected-speed table (c = c_hat = 0).
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Callable, Sequence

import pandas as pd

GAMMAS = range(1, 8)  # the lookaheads a study sweeps (Hayashizaki et al. 2024: 1, 3, 5, 7; Liu et al. 2024: 1 to 7)

# Leviathan et al. 2023: the (alpha, gamma) pairs the paper priced at c = c_hat = 0.
LEVIATHAN_PAIRS = ((0.6, 2), (0.7, 3), (0.8, 2), (0.8, 5), (0.9, 2), (0.9, 10))


def expected_tokens(alpha: float, gamma: int) -> float:
    """Expected tokens per target forward, (1 - alpha^(gamma+1)) / (1 - alpha), the bonus token included."""
    if alpha >= 1:
        return gamma + 1.0
    return (1 - alpha ** (gamma + 1)) / (1 - alpha)


def predicted_speedup(alpha: float, gamma: int, c: float, verify_cost: float = 1.0) -> float:
    """Walltime improvement S = (1 - alpha^(gamma+1)) / ((1 - alpha)(gamma c + 1)).

    Leviathan et al. price a (gamma+1)-token verification at one target step (verify_cost=1); pass the
    measured `verify_cost` for the prediction that fits the machine that measured c.
    """
    return expected_tokens(alpha, gamma) / (gamma * c + verify_cost)


def gamma_star(alpha: float, c: float, gammas: range = GAMMAS) -> int:
    """The lookahead that maximises the predicted speedup."""
    return max(gammas, key=lambda gamma: predicted_speedup(alpha, gamma, c))


def operations_factor(alpha: float, gamma: int, c_hat: float = 0.0) -> float:
    """Expected factor of increase in arithmetic operations (Theorem 3.11).

    (1 - alpha)(gamma c_hat + gamma + 1) / (1 - alpha^(gamma+1)), c_hat the draft/target ratio of arithmetic
    operations per token. Written as a division by expected_tokens, which also handles the alpha -> 1 limit:
    an iteration costs gamma draft steps and gamma + 1 target token-evaluations but yields expected_tokens.
    """
    return (gamma * c_hat + gamma + 1) / expected_tokens(alpha, gamma)


def table(pairs: Sequence[tuple[float, int]], cs: Sequence[float], c_hat: float = 0.0) -> pd.DataFrame:
    """One row per (alpha, gamma) pair and c: the predictions, and the best lookahead in GAMMAS for that alpha and c."""
    rows = []
    for (alpha, gamma), c in itertools.product(pairs, cs):
        best = gamma_star(alpha, c)
        rows.append({
            "alpha": alpha, "gamma": gamma, "c": c,
            "expected_tokens": expected_tokens(alpha, gamma),
            "operations": operations_factor(alpha, gamma, c_hat),
            "walltime": predicted_speedup(alpha, gamma, c),
            "gamma_star": best,
            "walltime_at_gamma_star": predicted_speedup(alpha, best, c),
        })
    return pd.DataFrame(rows)


def _checked(parser: argparse.ArgumentParser, flag: str, raw: str, convert: Callable[[str], float],
             ok: Callable[[float], bool], allowed: str) -> float:
    """`raw` converted, or exit through parser.error with one sentence: the flag, the value, what is allowed."""
    try:
        value = convert(raw)
    except ValueError:
        parser.error(f"{flag} got {raw!r}, but it must be {allowed}.")
    if not ok(value):
        parser.error(f"{flag} got {raw!r}, but it must be {allowed}.")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m specsweep.theory",
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

    cs = [_checked(parser, "--c", raw, float, nonneg, "a finite number >= 0") for raw in args.c]
    c_hat = _checked(parser, "--c-hat", args.c_hat, float, nonneg, "a finite number >= 0")
    if args.alpha is None and args.gamma is None:
        pairs: Sequence[tuple[float, int]] = LEVIATHAN_PAIRS
    else:
        alphas = [_checked(parser, "--alpha", raw, float, lambda a: 0 <= a <= 1, "a number in [0, 1]")
                  for raw in args.alpha] if args.alpha else sorted({a for a, _ in LEVIATHAN_PAIRS})
        gammas = [_checked(parser, "--gamma", raw, as_int, lambda g: g >= 1, "an integer >= 1")
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
