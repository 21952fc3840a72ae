"""Writing a model directory a command line was asked for (`--out`): refused with one sentence when it holds
something already (unless `--force`), and written so that it appears whole or not at all. Standard library only, so
a command line can check its arguments before it imports torch."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from specsweep.errors import ConfigError


def out_problem(out: Path, force: bool) -> str | None:
    """Why `--out` cannot be written, in one sentence; None when it can."""
    if out.exists() and not out.is_dir():
        return f"--out={str(out)!r} is a file; it must be a directory that does not exist or is empty."
    if out.is_dir() and any(out.iterdir()) and not force:
        return f"--out={str(out)!r} exists and is not empty; pass --force to replace it, or name a new directory."
    return None


def save_atomically(out: Path, parts: Iterable[Any], force: bool) -> None:
    """Each part's `save_pretrained` (a model, its tokenizer) into a sibling directory, renamed to `out` once all are
    written. `out` is checked again first: it may have been filled while the command ran."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for part in parts:
            part.save_pretrained(staging)
        problem = out_problem(out, force)
        if problem:
            raise ConfigError(f"{problem.removesuffix('.')} (it was filled while this ran); nothing was saved.")
        if out.exists():  # rename() replaces an empty directory only: move the old one aside first
            old = out.with_name(f"{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
