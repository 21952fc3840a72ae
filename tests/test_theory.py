"""The theory (`specsweep.theory`) matches Leviathan et al. 2023."""

from __future__ import annotations

import pytest

from specsweep import theory


@pytest.mark.parametrize("alpha,gamma,speed", [
    # Leviathan et al. 2023's expected speed with c ~ 0.
    (0.6, 2, 1.96), (0.7, 3, 2.53), (0.8, 2, 2.44), (0.8, 5, 3.69), (0.9, 2, 2.71), (0.9, 10, 6.86),
])
def test_predicted_speedup_matches_leviathan_et_al_with_c_0(alpha, gamma, speed):
    assert theory.predicted_speedup(alpha, gamma, c=0.0) == pytest.approx(speed, abs=0.005)


def test_prediction_with_a_measured_verification_cost():
    assert theory.predicted_speedup(0.8, 4, 0.1, verify_cost=1.3) == pytest.approx(
        theory.expected_tokens(0.8, 4) / (4 * 0.1 + 1.3))
    assert theory.predicted_speedup(0.8, 4, 0.1) == theory.predicted_speedup(0.8, 4, 0.1, verify_cost=1.0)


def test_the_reference_study_should_have_found_gamma_3_for_29M():
    """alpha=0.593 and c=0.124 (Hayashizaki et al. 2024, 29M at gamma 1) predict gamma*=3, about 1.57x."""
    assert theory.predicted_speedup(0.593, 1, 0.124) == pytest.approx(1.42, abs=0.01)
    assert theory.gamma_star(0.593, 0.124) == 3
    assert theory.predicted_speedup(0.593, 3, 0.124) == pytest.approx(1.57, abs=0.01)
