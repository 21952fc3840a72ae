"""The round arithmetic of `specsweep.rounds`: replayed rounds, their prices, the expected rounds under sampling and
the oracle bound, on hand-made matches and costs (the engine's own counts are checked in tests/decoding)."""

from __future__ import annotations

import math

import pytest

from specsweep import rounds

FLAT = rounds.ModelCosts([0, 1000], {k: [float(k), float(k)] for k in range(1, 9)}, [1, 1000], [5.0, 5.0])
CHEAP = rounds.ModelCosts([0, 1000], {1: [0.25, 0.25], 2: [0.3, 0.3]}, [1, 1000], [1.0, 1.0])
COSTS = rounds.Costs(FLAT, CHEAP, round_ms=0.1, draft_step_ms=0.01, token_ms=0.05)


def test_a_draft_that_always_matches_keeps_gamma_plus_one_tokens_a_round_until_the_budget_ends():
    found = rounds.greedy_rounds([True] * 10, gamma=3, max_new_tokens=10)
    assert [(r.start, r.lookahead, r.accepted) for r in found] == [(0, 3, 3), (4, 3, 3), (8, 1, 1)]
    assert [r.fed for r in found] == [1, 2, 2]  # after a round that kept every draft, its next step reads two


def test_a_draft_that_never_matches_gives_one_token_a_round():
    found = rounds.greedy_rounds([False] * 5, gamma=4, max_new_tokens=5)
    assert [r.accepted for r in found] == [0] * 5
    assert [r.lookahead for r in found] == [4, 3, 2, 1, 0]  # the bonus token never passes the budget
    assert rounds.count(found, 5).tokens_per_round == 1.0


def test_an_output_that_ends_at_an_eos_ends_the_last_round_there():
    found = rounds.greedy_rounds([True, False, True, True], gamma=7, max_new_tokens=32)
    assert [(r.start, r.accepted) for r in found] == [(0, 1), (2, 2)]  # the second round's kept drafts reach the EOS
    assert rounds.count(found, 4).rounds == 2


def test_a_call_is_priced_forward_by_forward():
    (first,) = rounds.greedy_rounds([True, True], gamma=1, max_new_tokens=3)[:1]
    # draft prefill 1.0, target prefill of prompt + 1 draft 5.0, loop 0.1 + 0.01
    assert rounds.round_ms(first, 10, COSTS) == pytest.approx(1.0 + 5.0 + 0.11)
    later = rounds.Round(start=2, lookahead=3, accepted=1, fed=2)
    assert rounds.round_ms(later, 10, COSTS) == pytest.approx(0.3 + 0.25 + 0.25 + 4.0 + 0.1 + 0.03)
    assert rounds.autoregressive_ms(3, 10, COSTS) == pytest.approx(5.0 + 1.0 + 1.0 + 3 * 0.05)


def test_a_rounds_first_draft_step_and_its_verification_are_priced_after_the_other_models_forward():
    after = rounds.ModelCosts([0, 1000], {1: [0.25, 0.25], 2: [0.3, 0.3]}, [1, 1000], [1.0, 1.0],
                              after_other_ms={1: [0.5, 0.5], 2: [0.6, 0.6]})
    verify = rounds.ModelCosts([0, 1000], {k: [float(k)] * 2 for k in range(1, 9)}, [1, 1000], [5.0, 5.0],
                               after_other_ms={k: [2.0 * k] * 2 for k in range(2, 9)})
    costs = rounds.Costs(FLAT, after, verify=verify)
    later = rounds.Round(start=2, lookahead=3, accepted=1, fed=2)
    assert rounds.round_ms(later, 10, costs) == pytest.approx(0.6 + 0.25 + 0.25 + 8.0)


def test_expected_rounds_follow_the_acceptance_at_its_limits():
    _, always = rounds.expected_ms([1.0] * 10, 3, 10, 5, None)
    _, never = rounds.expected_ms([0.0] * 10, 3, 10, 5, None)
    assert always == pytest.approx(3) and never == pytest.approx(10)
    _, half = rounds.expected_ms([0.5] * 200, 2, 200, 5, None)
    assert 200 / half == pytest.approx((1 - 0.5 ** 3) / 0.5, rel=0.02)  # Leviathan et al.'s expected tokens


def test_the_oracle_is_no_slower_than_any_fixed_gamma():
    matches = [i % 7 not in (3, 4) for i in range(60)]
    fixed = [rounds.call_ms(rounds.greedy_rounds(matches, g, 60), 10, COSTS) for g in range(1, 8)]
    oracle = rounds.oracle_ms(matches, 60, 10, COSTS)
    assert oracle <= min(fixed) + 1e-9
    assert oracle < min(fixed)  # runs of different lengths: choosing γ per round gains something here
    assert math.isfinite(oracle)


def test_a_forward_the_profile_lacks_is_one_sentence():
    with pytest.raises(rounds.ConfigError, match="no 9-token forward"):
        FLAT.forward(9, 10)
