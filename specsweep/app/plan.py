"""The plan of a sweep, before its first job: every cell composed and passed through `cell.check` (no model,
tokenizer or dataset is loaded), the distinct problems, and what the sweep is about to do (cells, cells left after
dedupe and resume, tokens to generate). Hydra's sweeper plugin (hydra_plugins/specsweep_sweeper) runs it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from specsweep import record, schema
from specsweep.app import cell
from specsweep.errors import ConfigError, UnknownDraft, first_line


@dataclass(frozen=True)
class Plan:
    cells: int  # jobs the sweep launches
    keys: dict[str, schema.Config]  # distinct cells (identity key -> typed config): what will be measured
    done: set[str]  # keys already done in the sweep directory (resume)
    problems: Counter  # one sentence per distinct problem -> cells that have it
    order: tuple[str | None, ...] = ()  # each cell's key, in the sweep's order (None: a cell with a problem)

    def todo(self) -> list[int]:
        """The positions of the cells to launch: all but those already done (a resumed sweep)."""
        return [i for i, key in enumerate(self.order) if key is None or key not in self.done]

    def tokens(self) -> int:
        """Tokens to generate for the cells not done yet: prompts x new tokens x repeats x decoders (the method,
        its autoregressive baseline, the A/A control and the reference row where set); warm-up not counted."""
        return sum(calls(spec) * spec.dataset.num_samples * spec.bench.max_new_tokens * spec.bench.repeats
                   for key, spec in self.keys.items() if key not in self.done)

    def describe(self) -> str:
        todo = [spec for key, spec in self.keys.items() if key not in self.done]
        shape = {(s.dataset.num_samples, s.bench.max_new_tokens, s.bench.repeats, calls(s)) for s in todo}
        per_cell = ("{} prompts x {} new tokens x {} repeats x {} decoders per cell".format(*shape.pop())
                    if len(shape) == 1 else "cells of different sizes")
        return (f"sweep plan: {self.cells} cells, {len(self.keys)} to measure after dedupe, {len(self.done)} of them "
                f"already done; {per_cell}; {self.tokens():,} tokens to generate")


def calls(spec: schema.Config) -> int:
    """Decoders per prompt and repeat: the method, its baseline, the A/A control, the reference row and the method
    without per-forward timing, as the bench asks."""
    return 2 + spec.bench.control + spec.bench.reference + spec.bench.uninstrumented


def plan(config: DictConfig, cells: Sequence[Sequence[str]], loader: Any) -> Plan:
    """Compose and check every cell of a sweep; nothing is loaded."""
    keys: dict[str, schema.Config] = {}
    problems: Counter = Counter()
    unknown: dict[tuple, UnknownDraft] = {}  # one sentence for all sizes a family lacks: "draft=6M, draft=29M ..."
    unknown_cells: Counter = Counter()
    order: list[str | None] = []
    for overrides in cells:
        composed = loader.load_sweep_config(master_config=config, sweep_overrides=list(overrides))
        with open_dict(composed):
            del composed["hydra"]
            composed.output_dir = "(planned)"  # ${hydra:runtime.output_dir} exists only inside a job
        order.append(None)
        try:
            spec = cell.typed(composed)
            order[-1] = cell.check(spec).key
            keys.setdefault(order[-1], spec)
        except UnknownDraft as error:
            kind = error.kind()
            unknown[kind] = unknown[kind].merged(error) if kind in unknown else error
            unknown_cells[kind] += 1
        except (ConfigError, OmegaConfBaseException) as error:  # a value the schema refuses, or one left unset
            problems[first_line(error)] += 1
    problems.update({str(error): unknown_cells[kind] for kind, error in unknown.items()})
    return Plan(len(cells), keys, done_keys(Path(config.hydra.sweep.dir)), problems, tuple(order))


def done_keys(sweep_dir: Path) -> set[str]:
    return set(done_jobs(sweep_dir))


def done_jobs(sweep_dir: Path) -> dict[str, Path]:
    """Identity key -> the directory of a finished job of it, in the sweep directory."""
    if not sweep_dir.is_dir():
        return {}
    statuses = ((job_dir, record.read_status(job_dir)) for job_dir in sweep_dir.iterdir() if job_dir.is_dir())
    return {status["key"]: job_dir for job_dir, status in statuses if status and status.get("status") == "done"}
