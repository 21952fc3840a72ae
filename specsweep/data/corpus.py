"""The standard-library corpus: the running interpreter's own Python sources, split by path hash into the files
the embedded family trains on and the files held out for evaluation. Text only: nothing here knows of models."""

from __future__ import annotations

import functools
import hashlib
import sysconfig
from pathlib import Path

SKIPPED_PARTS = {"site-packages", "test", "tests", "idle_test"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(split: str, heldout_every: int = 20, max_files: int | None = None) -> list[Path]:
    """The interpreter's standard-library sources in a fixed order, without tests; split "train" or "heldout".
    One file in `heldout_every` (by a hash of its path) is held out; `max_files` keeps only the first few."""
    root = stdlib_root()
    files = sorted(path for path in root.rglob("*.py")
                   if not SKIPPED_PARTS & set(path.relative_to(root).parts))[:max_files]

    def heldout(path: Path) -> bool:
        digest = hashlib.sha256(path.relative_to(root).as_posix().encode()).digest()
        return int.from_bytes(digest[:4], "big") % heldout_every == 0

    return [path for path in files if heldout(path) == (split == "heldout")]


def read_texts(paths: list[Path]) -> list[str]:
    return [path.read_text(encoding="utf-8", errors="replace") for path in paths]


@functools.cache
def corpus_digest(heldout_every: int = 20, max_files: int | None = None) -> str:
    """A hash of the training files' names and contents."""
    root = stdlib_root()
    digest = hashlib.sha256()
    for path in stdlib_files("train", heldout_every, max_files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
