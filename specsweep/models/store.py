"""Model directories written whole or not at all: the one a command line was asked for (`--out`), refused with one
sentence when it holds something already (unless `--force`), and the entries of the build cache (the embedded
family, its Medusa heads), checksummed so that a half-built or altered entry is rebuilt, never loaded. No torch, so
a command line can check its arguments before it imports torch."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock

from specsweep.errors import ConfigError

MANIFEST = "family.json"  # a cache entry's manifest, written last
CARD = "distill.json"  # what specsweep.models.distill writes beside a draft it made


# --- a command line's --out ------------------------------------------------------------------------------

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
        move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into_place(staging: Path, out: Path) -> None:
    """`staging`, whole, renamed to `out`, replacing what `out` held (checked by the caller)."""
    if out.exists():  # rename() replaces an empty directory only: move the old one aside first
        old = out.with_name(f"{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)


# --- the build cache -------------------------------------------------------------------------------------

def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def is_complete(path: Path) -> bool:
    """A finished entry has its manifest and every file it lists, with the checksum it was written with;
    anything else (a build killed midway, a truncated, altered or deleted file) is rebuilt, never loaded."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        return bool(manifest["files"]) and all(
            file_digest(path / name) == digest for name, digest in manifest["files"].items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def cached(path: Path, build_into: Callable[[Path], None]) -> Path:
    """`path`, built by `build_into(staging)` first if it is missing or incomplete: under a lock, into a staging
    directory renamed into place when done, so an entry appears whole or not at all, and processes may race."""
    if is_complete(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if is_complete(path):  # another process finished it while we waited
            return path
        if path.exists():
            shutil.rmtree(path)  # half-built or corrupt: never loaded
        for stale in path.parent.glob(f"{path.name}.tmp-*"):  # left by a killed build: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        staging = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        try:
            build_into(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        os.rename(staging, path)  # atomic: the entry appears whole or not at all
    return path


def seal(out: Path, manifest: dict) -> None:
    """Write the manifest last, with every file's checksum, after the files are on disk (a crash cannot leave
    right names with wrong contents)."""
    files = sorted(f for f in out.rglob("*") if f.is_file())
    for f in files:
        with f.open("rb") as handle:
            os.fsync(handle.fileno())
    manifest["files"] = {f.relative_to(out).as_posix(): file_digest(f) for f in files}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))


def card(location: str) -> dict | None:
    """What `specsweep.models.distill` wrote beside a model it made (its shape, training and held-out figures), or
    None: a hub id, or a directory it did not write."""
    path = Path(location).expanduser() / CARD
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
