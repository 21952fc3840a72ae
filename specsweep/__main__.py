"""The sweep command:  python -m specsweep [-m] [group=choice ...] [key=value ...]

A thin Hydra entry point over `specsweep.app.job.run`. A failing job records its failure in its status.json; in
a multirun the sweep goes on (unless fail_fast=true), and the end-of-sweep summary says what failed."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from specsweep import schema  # noqa: F401  (schema registers the structured configs)
from specsweep.app import job
from specsweep.errors import ConfigError

log = logging.getLogger("specsweep")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        metrics = job.run(cfg, sweep_dir=Path(hydra_cfg.sweep.dir) if multirun else None)
    except Exception as error:
        if cfg.fail_fast:
            raise
        if isinstance(error, ConfigError):
            log.error("%s", error)
        else:
            log.exception("job failed: %s", error)
        if not multirun:
            sys.exit(1)
        return None
    if metrics.get("skipped"):
        where = metrics.get("same_as") or "this directory"
        log.info("%s: already measured in %s; not run again", cfg.output_dir, where)
    return metrics["metrics"].get("speedup")


if __name__ == "__main__":
    main()
