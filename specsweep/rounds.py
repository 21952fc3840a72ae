"""Speculative decoding's rounds at any lookahead, replayed from one autoregressive decode, and their cost.

Under greedy decoding a round that starts after t new tokens keeps the run of positions t, t+1, ... where the draft's
argmax, given the target's own prefix, is the target's token (at most the round's lookahead), then one token from the
target. So the target's autoregressive output and one teacher-forced forward of the draft over it (the *matches*) give
every round at every γ exactly, with no decoding (`greedy_rounds`). Under sampling, the per-position acceptance
Σ_x min(p(x), q(x)) along the target's trajectory gives Leviathan et al.'s (2023) α position by position, and from it
the expected rounds (`expected_ms`): an estimate, where greedy replay is exact.

A latency profile (`Costs`) prices each forward at its context; `call_ms` sums a call the way the engine runs it
(`specsweep.decoding.engine.decode_rounds`): the draft prefills the prompt, the target's first verification is its
prefill of the prompt and the first drafts, every later verification reads 1 + k tokens, and a draft whose every
proposal was kept reads two tokens at its next round's first step. Standard library only: the study prices a
machine's grid without torch.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from specsweep.errors import ConfigError


@dataclass(frozen=True)
class Round:
    start: int  # new tokens before the round (t)
    lookahead: int  # drafts proposed (k)
    accepted: int  # drafts kept (n); one token from the target follows them
    fed: int = 1  # tokens the draft's first forward of the round reads: 2 after a round that kept all its drafts


def lookahead(gamma: int, max_new_tokens: int, start: int) -> int:
    """The engine's lookahead after `start` new tokens: γ, less where the bonus token would pass the budget."""
    return max(0, min(gamma, max_new_tokens - start - 1))


def greedy_rounds(matches: Sequence[bool], gamma: int, max_new_tokens: int) -> list[Round]:
    """The rounds speculative decoding runs at lookahead γ, from the matches: matches[t] says whether the draft's
    argmax given the target's first t new tokens is the target's token t. len(matches) is the target's new tokens
    (fewer than max_new_tokens where its output ends at an EOS, which ends the last round there)."""
    rounds, t, fed, n_out = [], 0, 1, len(matches)
    while t < n_out:
        k = lookahead(gamma, max_new_tokens, t)
        n = 0
        while n < k and t + n < n_out and matches[t + n]:
            n += 1
        rounds.append(Round(t, k, n, fed))
        fed = 2 if k and n == k else 1
        t = min(t + n + 1, n_out)
    return rounds


@dataclass(frozen=True)
class Counts:
    """What a replayed call counts, in `DecodeStats`' terms (forwards after each model's first)."""

    new_tokens: int
    rounds: int
    draft_forwards: int
    accepted: int

    @property
    def tokens_per_round(self) -> float:
        return self.new_tokens / self.rounds if self.rounds else float("nan")


def count(rounds: Sequence[Round], new_tokens: int) -> Counts:
    drafted = sum(r.lookahead for r in rounds)
    return Counts(new_tokens, len(rounds), max(drafted - 1, 0), sum(r.accepted for r in rounds))


# --- costs -------------------------------------------------------------------------------------------------------

def _interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Linear between the profiled points; beyond the last two, their line (costs grow with context)."""
    if len(xs) == 1:
        return ys[0]
    i = min(max(bisect.bisect_left(xs, x), 1), len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class ModelCosts:
    """One model's profiled forwards: ms of a k-token forward after `context` cached tokens, and of a prefill."""

    contexts: list[int]
    forward_ms: dict[int, list[float]]  # k -> ms at each context, after a forward of the same model
    prefill_lengths: list[int]
    prefill_ms: list[float]
    after_other_ms: dict[int, list[float]] | None = None  # the same, right after the other model's forward

    def forward(self, k: int, context: int, after_other: bool = False) -> float:
        table = self.after_other_ms if after_other and self.after_other_ms else self.forward_ms
        if k not in table:
            raise ConfigError(f"the profile has no {k}-token forward; profile k up to {k} (it has "
                              f"{', '.join(map(str, sorted(table)))}).")
        return _interpolate(self.contexts, table[k], context)

    def prefill(self, length: int) -> float:
        return _interpolate(self.prefill_lengths, self.prefill_ms, length)

    @classmethod
    def from_json(cls, data: dict[str, Any], after: dict[str, list[float]] | None = None) -> ModelCosts:
        """From profile.json's entry of a model; `after`: its forwards right after the other model's (a draft's
        entry holds its own, `after_other_ms`, and the target's after it, `target_after_ms`)."""
        def table(found: dict[str, list[float]]) -> dict[int, list[float]]:
            return {int(k): list(v) for k, v in found.items()}

        after = after if after is not None else data.get("after_other_ms")
        return cls(list(data["contexts"]), table(data["forward_ms"]), list(data["prefill_lengths"]),
                   list(data["prefill_ms"]), table(after) if after else None)


@dataclass(frozen=True)
class Costs:
    """What a call's parts cost on one machine: the models' forwards and the loop's own work (sampling, the
    acceptance test, bookkeeping) per round, per draft step and per autoregressive token."""

    target: ModelCosts
    draft: ModelCosts | None
    round_ms: float = 0.0
    draft_step_ms: float = 0.0
    token_ms: float = 0.0
    verify: ModelCosts | None = None  # the target's forwards right after this draft's (a verification's)


def round_ms(r: Round, prompt_length: int, costs: Costs) -> float:
    """One round: the draft's k forwards, the target's verification, and the loop's work."""
    s = prompt_length + r.start  # the sequence's length when the round begins; the caches hold all but its last
    total = 0.0
    for i in range(r.lookahead):  # a round's first draft step follows the target's verification
        if r.start == 0 and i == 0:
            total += costs.draft.prefill(s)
        elif i == 0:
            total += costs.draft.forward(r.fed, s - r.fed, after_other=True)
        else:
            total += costs.draft.forward(1, s - 1 + i)
    verify = costs.verify or costs.target  # the target right after the draft's steps, where the profile has it
    total += costs.target.prefill(s + r.lookahead) if r.start == 0 else \
        verify.forward(r.lookahead + 1, s - 1, after_other=r.lookahead > 0)
    return total + costs.round_ms + costs.draft_step_ms * r.lookahead


def call_ms(rounds: Sequence[Round], prompt_length: int, costs: Costs) -> float:
    """A speculative call's wall time, its rounds priced one by one."""
    return sum(round_ms(r, prompt_length, costs) for r in rounds)


def autoregressive_ms(new_tokens: int, prompt_length: int, costs: Costs) -> float:
    """The target alone: its prefill gives the first token, then one one-token step per token."""
    if not new_tokens:
        return 0.0
    steps = sum(costs.target.forward(1, prompt_length + j - 1) for j in range(1, new_tokens))
    return costs.target.prefill(prompt_length) + steps + costs.token_ms * new_tokens


def expected_ms(acceptance: Sequence[float], gamma: int, max_new_tokens: int, prompt_length: int,
                costs: Costs | None) -> tuple[float, float]:
    """Under sampling: (expected wall time, expected rounds) of a call whose draft at position t is accepted with
    probability acceptance[t] (Σ min(p, q) along the target's trajectory), independently: an estimate. A backward
    recursion over positions, E(t) = cost(t) + Σ_n P(n kept) E(t + n + 1). `costs` None: the rounds only."""
    n_out = len(acceptance)
    time, rounds = [0.0] * (n_out + 1), [0.0] * (n_out + 1)
    for t in range(n_out - 1, -1, -1):
        k = lookahead(gamma, max_new_tokens, t)
        cost = round_ms(Round(t, k, 0), prompt_length, costs) if costs else 0.0
        at_least, e_time, e_rounds = 1.0, cost, 1.0
        for n in range(k + 1):
            keep_next = acceptance[t + n] if n < k and t + n < n_out else 0.0
            exactly = at_least * (1 - keep_next)  # P(n kept): the first n accepted, the next (if any) rejected
            after = min(t + n + 1, n_out)
            e_time, e_rounds = e_time + exactly * time[after], e_rounds + exactly * rounds[after]
            at_least *= keep_next
        time[t], rounds[t] = e_time, e_rounds
    return time[0], rounds[0]


def matches_of(entry: dict[str, Any]) -> list[bool]:
    """A greedy trace's matches, as traces keep them: "1" where the draft's choice is the target's token."""
    return [m == "1" for m in entry["matches"]]


def replay(entry: dict[str, Any], gamma: int, max_new_tokens: int, costs: Costs | None = None
           ) -> tuple[float, float, list[Round] | None]:
    """One prompt's trace (`matches` or `acceptance`, its `prompt_tokens`) at γ: (wall ms as `costs` price it, 0
    without them; rounds; the rounds themselves). Greedy: exact; sampling: expected, and no rounds to list."""
    if "matches" in entry:
        found = greedy_rounds(matches_of(entry), gamma, max_new_tokens)
        return (call_ms(found, entry["prompt_tokens"], costs) if costs else 0.0), len(found), found
    ms, expected = expected_ms(entry["acceptance"], gamma, max_new_tokens, entry["prompt_tokens"], costs)
    return ms, expected, None


def oracle_ms(matches: Sequence[bool], max_new_tokens: int, prompt_length: int, costs: Costs,
              gammas: Sequence[int] = range(1, 8)) -> float:
    """Greedy: the least wall time of any choice of γ per round made in hindsight, knowing every match (a dynamic
    program over (new tokens, tokens the draft's next first step reads)): the ceiling no adaptive rule can pass."""
    n_out = len(matches)
    best = {(n_out, 1): 0.0, (n_out, 2): 0.0}
    for t in range(n_out - 1, -1, -1):
        for fed in (2, 1):
            options = []
            for gamma in gammas:
                (r,) = greedy_rounds(matches[t:t + gamma + 1], gamma, max_new_tokens - t)[:1]
                r = Round(t, r.lookahead, r.accepted, fed if t else 1)
                after = min(t + r.accepted + 1, n_out)
                options.append(round_ms(r, prompt_length, costs)
                               + best[(after, 2 if r.lookahead and r.accepted == r.lookahead else 1)])
            best[(t, fed)] = min(options)
    return best[(0, 1)]
