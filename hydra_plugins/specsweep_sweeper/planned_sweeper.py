"""`hydra/sweeper=planned`: the checked sweeper's checks and plan, then the planner (`specsweep.app.planner`):
trace and profile first, measure cells in order of predicted speedup, stop when no cell left can reach the
measured best. Each cell keeps its position's job number and directory, so a killed plan resumes like any sweep."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra_plugins.specsweep_sweeper.checked_sweeper import CheckedSweeper

log = logging.getLogger("specsweep")


class PlannedSweeper(CheckedSweeper):
    def sweep(self, arguments: list[str]) -> Any:
        from specsweep import record
        from specsweep.app import plan, planner
        from specsweep.errors import ConfigError
        from specsweep.study import forecast

        cells, found = self.checked(arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            first, grid = planner.grid_of([found.keys.get(key) for key in found.order])
        except ConfigError as error:
            log.error("%s", error)
            sys.exit(1)
        drafts = list(dict.fromkeys(draft for draft, _ in grid))
        calls, repeats = plan.calls(first.spec), first.bench.repeats
        traces, profile = planner.prepare(first, drafts, sweep_dir)
        predicted = planner.predictions(traces, profile, grid, calls, repeats)
        ranked = sorted(predicted, key=lambda c: -predicted[c]["replay_speedup"])
        log.info("planner: %d cells predicted; measuring in order of predicted speedup, from %s", len(predicted),
                 ", ".join(f"{d} γ={g} ({predicted[(d, g)]['replay_speedup']:.2f}×)" for d, g in ranked[:3]))
        guessed = planner.predicted_draws(traces, profile, list(predicted))
        returns, reported = [], set()
        order = planner.measured_order(sweep_dir)  # a resumed plan goes on from where it stopped
        while True:
            done = plan.done_jobs(sweep_dir)
            measured = {c: planner.measured_cell(done[found.order[i]], calls) for c, i in grid.items()
                        if found.order[i] in done}
            order = [c for c in order if c in measured] + [c for c in measured if c not in order]
            seen = planner.measured_draws(measured, len(traces["prompts"]))
            decision = planner.decide(predicted, measured, order, guessed, seen)
            for miss in sorted(set(decision.misses) - reported):
                log.warning("planner: the prediction missed %s; measuring more", miss)
            reported |= set(decision.misses)
            record.write_json(sweep_dir / forecast.PLAN_JSON, planner.summary(predicted, measured, order, decision,
                                                                               traces, profile, guessed, seen))
            if decision.next is None:
                break
            position = grid[decision.next]
            log.info("planner: measuring %s γ=%d (predicted %.2f×)", *decision.next,
                     predicted[decision.next]["replay_speedup"])
            returns.append(self.launch_cells(cells, [position]))
            if found.order[position] not in plan.done_jobs(sweep_dir):  # it failed: never plan it again
                predicted.pop(decision.next)
        log.info("planner: stopped after measuring %d of %d cells; %s", len(order), len(grid),
                 "no other cell can reach the measured best on the same prompts" if decision.reasons
                 else "every cell is measured")
        return returns
