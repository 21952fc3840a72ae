"""Leviathan et al. (2023), section 3: what speculative decoding should gain for a given alpha, gamma and c.

`specsweep-theory` (specsweep.cli.theory) prints these predictions as a Markdown table; without --alpha/--gamma it
reproduces Leviathan et al. 2023's expected-speed table (c = c_hat = 0).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

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


if __name__ == "__main__":  # the old path of specsweep-theory, kept working
    import runpy

    runpy.run_module("specsweep.cli.theory", run_name="__main__", alter_sys=True)
