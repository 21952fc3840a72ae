"""The latency profile:  python -m specsweep.profile [group=choice ...] [key=value ...]   (or specsweep-profile)

Composes the same config as `python -m specsweep` and writes profile.json into the job's directory
(hydra.run.dir): each model's forwards at the contexts the cell's prompts and budget meet, on its device, dtype,
switches and bench.threads. `specsweep-predict <sweep or traces> --profile profile.json` prices any sweep's traces
with it, whichever machine made them. A thin Hydra entry point over `specsweep.app.profile.run`."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from specsweep import schema  # noqa: F401  (schema registers the structured configs)
from specsweep.app import profile
from specsweep.errors import ConfigError

log = logging.getLogger("specsweep")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        out = profile.run(cfg)
    except ConfigError as error:
        log.error("%s", error)
        sys.exit(1)
    log.info("profile: %s", out)


if __name__ == "__main__":
    main()
