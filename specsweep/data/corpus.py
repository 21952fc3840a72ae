"""The standard-library corpus: the running interpreter's own Python sources, split by path hash into the files
the embedded family trains on and the files held out for evaluation, and the held-out files cut into windows (the
`stdlib_heldout` dataset's rows). Text only: nothing here knows of models."""

from __future__ import annotations

import functools
import hashlib
import io
import sysconfig
from pathlib import Path
from typing import Any

from specsweep.errors import ConfigError

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


def stdlib_rows(prefix_lines: int, continuation_lines: int) -> list[dict[str, Any]]:
    """Windows of prefix_lines + continuation_lines lines from every held-out standard-library file.

    The windows tile each file without overlap, from an offset derived from the file's path (so prompts do not
    all open on a module docstring); windows whose prefix or continuation is mostly blank are skipped. The
    list depends only on the interpreter's standard library and the two lengths, never on a seed."""
    # The hash split is per path, so any recipe's held-out files are (a subset of) these.
    root = stdlib_root()
    rows, longest = [], 0
    for path in stdlib_files("heldout"):
        relative = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = io.StringIO(text, newline="\n").readlines()  # only "\n" ends a line: not str.splitlines' \f
        rows += windows(relative, lines, prefix_lines, continuation_lines)
        longest = max(longest, len(lines))
    if not rows:
        raise ConfigError(f"dataset.prefix_lines={prefix_lines} and dataset.continuation_lines={continuation_lines} "
                          "leave no window in the held-out standard-library files; their sum must be at most "
                          f"{longest} lines (the longest file), less to find windows that are not mostly blank.")
    return rows


def windows(relative: str, lines: list[str], prefix_lines: int, continuation_lines: int) -> list[dict[str, Any]]:
    width = prefix_lines + continuation_lines
    offset = int.from_bytes(hashlib.sha256(relative.encode()).digest()[:4], "big") % width
    rows = []
    for start in range(offset, len(lines) - width + 1, width):
        prefix = lines[start : start + prefix_lines]
        continuation = lines[start + prefix_lines : start + width]
        if mostly_blank(prefix) or mostly_blank(continuation):
            continue
        # The cut goes before the prefix's trailing newlines: byte-level BPE merges a newline with the next
        # line's indentation, so a prompt ending in a bare newline ends on a token the models rarely saw, and
        # they derail (blank lines forever). The continuation starts with those newlines instead.
        text = "".join(prefix)
        cut = len(text.rstrip())
        rows.append({"path": relative, "line": start + 1, "prefix": text[:cut],
                     "continuation": text[cut:] + "".join(continuation)})
    return rows


def mostly_blank(lines: list[str]) -> bool:
    return 2 * sum(1 for line in lines if line.strip()) < len(lines)
