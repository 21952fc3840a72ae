"""`specsweep-theory` (its old path `python -m specsweep.theory` here) reproduces Leviathan et al. 2023's expected-speed
table and prices a given grid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from specsweep import theory

ROOT = Path(__file__).resolve().parents[2]

# Leviathan et al. 2023: alpha, gamma, OPERATIONS, SPEED, all at c = c_hat = 0.
LEVIATHAN_TABLE = [
    (0.6, 2, 1.53, 1.96),
    (0.7, 3, 1.58, 2.53),
    (0.8, 2, 1.23, 2.44),
    (0.8, 5, 1.63, 3.69),
    (0.9, 2, 1.11, 2.71),
    (0.9, 10, 1.60, 6.86),
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "specsweep.theory", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def rows(stdout: str) -> list[dict[str, str]]:
    """The Markdown table's body rows, as column -> cell text."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
            for line in lines[2:]]


def test_no_arguments_prints_seed_004_table() -> None:
    result = run()
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert [(float(r["alpha"]), int(r["gamma"]), float(r["c"])) for r in table] == [
        (alpha, gamma, 0.0) for alpha, gamma, _, _ in LEVIATHAN_TABLE]
    for row, (_, _, operations, speed) in zip(table, LEVIATHAN_TABLE, strict=True):
        assert row["operations"] == f"{operations:.2f}"
        assert row["walltime"] == f"{speed:.2f}"


@pytest.mark.parametrize(("alpha", "gamma", "operations", "speed"), LEVIATHAN_TABLE)
def test_operations_factor_matches_seed_004(alpha: float, gamma: int, operations: float, speed: float) -> None:
    assert theory.operations_factor(alpha, gamma) == pytest.approx(operations, abs=0.005)
    assert theory.operations_factor(alpha, gamma, c_hat=0.0) == pytest.approx(
        (1 - alpha) * (gamma + 1) / (1 - alpha ** (gamma + 1)))


def test_operations_factor_counts_draft_operations_and_alpha_one_limit() -> None:
    assert theory.operations_factor(0.8, 4, c_hat=0.1) == pytest.approx(
        (1 - 0.8) * (4 * 0.1 + 4 + 1) / (1 - 0.8 ** 5))
    assert theory.operations_factor(1.0, 4, c_hat=0.1) == pytest.approx((4 * 0.1 + 4 + 1) / 5)
    assert theory.operations_factor(0.0, 3) == pytest.approx(4.0)


def test_user_grid_matches_the_formula() -> None:
    result = run("--alpha", "0.593", "--gamma", "1", "3", "--c", "0.124")
    assert result.returncode == 0, result.stderr
    by_gamma = {int(r["gamma"]): r for r in rows(result.stdout)}
    assert sorted(by_gamma) == [1, 3]
    assert by_gamma[1]["alpha"] == "0.593" and by_gamma[1]["c"] == "0.124"
    assert by_gamma[1]["walltime"] == "1.42"
    assert by_gamma[3]["walltime"] == "1.57"
    for row in by_gamma.values():
        assert row["gamma_star"] == "3"
        assert row["walltime_at_gamma_star"] == "1.57"


def test_grid_is_cross_product_of_alpha_gamma_c() -> None:
    result = run("--alpha", "0.5", "0.9", "--gamma", "2", "4", "--c", "0", "0.1")
    assert result.returncode == 0, result.stderr
    got = {(float(r["alpha"]), int(r["gamma"]), float(r["c"])) for r in rows(result.stdout)}
    assert got == {(a, g, c) for a in (0.5, 0.9) for g in (2, 4) for c in (0.0, 0.1)}


@pytest.mark.parametrize(("args", "flag"), [
    (["--alpha", "1.5", "--gamma", "2"], "--alpha"),
    (["--alpha", "0.8", "--gamma", "0"], "--gamma"),
    (["--alpha", "0.8", "--gamma", "2.5"], "--gamma"),
    (["--c", "-0.1"], "--c"),
])
def test_bad_value_exits_with_one_sentence(args: list[str], flag: str) -> None:
    result = run(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1].split("error: ", 1)[1]
    value = repr(args[args.index(flag) + 1])
    assert message.startswith(f"{flag}={value} is invalid; it must be ")
    assert message.replace(value, "").count(".") == 1 and message.endswith(".")  # one sentence
