"""Hydra's basic sweeper with the whole sweep checked before its first job (Hydra finds sweepers only in the
hydra_plugins package). If any cell is invalid, the sweep stops with one sentence per distinct problem and exit
code 1, before anything is launched or loaded; otherwise it logs its plan and runs as the basic sweeper does."""

from __future__ import annotations

import logging
import sys
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

log = logging.getLogger("specsweep")


class CheckedSweeper(BasicSweeper):
    """The same grid, batches and launcher as Hydra's basic sweeper."""

    def sweep(self, arguments: list[str]) -> Any:
        from specsweep import plan  # imported here: Hydra imports every plugin module at start-up

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        (cells,) = self.split_arguments(parser.parse_overrides(self._parse_config() + list(arguments)), None)
        found = plan.plan(self.config, cells, self.hydra_context.config_loader)
        if found.problems:
            for problem, count in found.problems.items():
                log.error("%s (%d of %d cells)", problem, count, found.cells)
            log.error("the sweep was not started: fix the cells above, or leave them out of the sweep")
            sys.exit(1)
        log.info("%s", found.describe())
        return super().sweep(arguments)
