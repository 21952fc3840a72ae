"""Leviathan et al. (2023), section 3: what speculative decoding should gain for a given alpha, gamma and c."""

from __future__ import annotations

GAMMAS = range(1, 8)  # the lookaheads a study sweeps (seed 000: 1, 3, 5, 7; seed 002: 1 to 7)


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
