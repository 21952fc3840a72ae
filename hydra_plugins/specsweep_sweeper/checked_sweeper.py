"""Hydra's basic sweeper with the whole sweep checked before its first job (Hydra finds sweepers only in the
hydra_plugins package). If any cell is invalid, the sweep stops with one sentence per distinct problem and exit
code 1, before anything is launched or loaded; otherwise it logs its plan and launches the cells that are not done
yet (a resumed sweep submits only those, which matters on a cluster), each under its own job number."""

from __future__ import annotations

import logging
import sys
from itertools import groupby
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

log = logging.getLogger("specsweep")


class CheckedSweeper(BasicSweeper):
    """The same grid, batches and launcher as Hydra's basic sweeper."""

    def sweep(self, arguments: list[str]) -> Any:
        cells, found = self.checked(arguments)
        todo = found.todo()
        if len(todo) < len(cells):
            log.info("resuming: %d of %d cells are done and are not launched again", len(cells) - len(todo),
                     len(cells))
        returns = []
        # Hydra numbers a launch's jobs from its first index on, and the number is part of a job's directory: each
        # run of consecutive cells to do is one launch (one SLURM array), so every cell keeps its directory.
        for _, run in groupby(enumerate(todo), key=lambda pair: pair[1] - pair[0]):
            returns.append(self.launch_cells(cells, [position for _, position in run]))
        return returns

    def checked(self, arguments: list[str]) -> tuple[list, Any]:
        """Every cell composed and checked (exit 1 with one sentence per problem), the plan logged and multirun.yaml
        saved: the cells' overrides and the plan (`specsweep.app.plan.Plan`)."""
        from specsweep.app import plan  # imported here: Hydra imports every plugin module at start-up

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        (cells,) = self.split_arguments(parser.parse_overrides(self._parse_config() + list(arguments)), None)
        found = plan.plan(self.config, cells, self.hydra_context.config_loader)
        if found.problems:
            for problem, count in found.problems.items():
                log.error("%s (%d of %d cells)", problem, count, found.cells)
            log.error("the sweep was not started: fix the cells above, or leave them out of the sweep")
            sys.exit(1)
        log.info("%s", found.describe())
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        return cells, found

    def launch_cells(self, cells: list, positions: list[int]) -> Any:
        """One launch of consecutive cells, each under its own job number (its position in the sweep)."""
        batch = [list(cells[position]) for position in positions]
        self.validate_batch_is_legal(batch)
        return self.launcher.launch(batch, initial_job_idx=positions[0])
