"""The Hydra callback that ends every multirun with its study (conf/hydra/default.yaml names it)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from specsweep.study.aggregate import named_published, summarize

log = logging.getLogger(__name__)


class AggregateCallback(Callback):
    """Hydra calls this once a multirun ends. Jobs never raise (they record failures), so it always runs."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            table = summarize([sweep_dir], sweep_dir, published=named_published([sweep_dir]))
        except Exception:  # Hydra turns a callback's exception into a warning and exits 0: say it, and exit 1
            log.exception("aggregating %s failed; the jobs' results are on disk, retry with "
                          "specsweep-aggregate %s", sweep_dir, sweep_dir)
            sys.exit(1)
        if not table.empty and (~table["status"].isin(["done", "skipped"])).any():
            sys.exit(1)  # the sweep finished, but not every cell it meant to measure: the exit code says so
