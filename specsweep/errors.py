"""The exception types a user should see as a sentence, not a traceback."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


class ConfigError(ValueError):
    """Bad input: the message is one sentence naming the parameter, the bad value and what is allowed."""


class UnknownDraft(ConfigError):
    """Draft sizes a model family lacks, and the families that have them (`elsewhere`, filled in by whoever knows
    the other families); the cells of a sweep that differ only in the size merge into one sentence."""

    def __init__(self, drafts: list[str], family: str, sizes: list[str], elsewhere: list[str] | None = None) -> None:
        self.drafts, self.family, self.sizes, self.elsewhere = drafts, family, sizes, elsewhere or []
        named = ", ".join(f"draft={draft}" for draft in drafts)
        one = len(drafts) == 1
        hint = (f"; {', '.join(drafts)} {'is a size' if one else 'are sizes'} of {', '.join(self.elsewhere)}: "
                f"add model_family={self.elsewhere[0]}" if self.elsewhere else "")
        super().__init__(f"{named} {'is not a size' if one else 'are not sizes'} of model family {family}; its "
                         f"sizes are {', '.join(sizes) or 'none'}{hint}.")

    def found_in(self, elsewhere: list[str]) -> UnknownDraft:
        return UnknownDraft(self.drafts, self.family, self.sizes, elsewhere)

    def merged(self, other: UnknownDraft) -> UnknownDraft:
        """One error for both (they differ only in the drafts asked for)."""
        return UnknownDraft(list(dict.fromkeys(self.drafts + other.drafts)), self.family, self.sizes, self.elsewhere)

    def kind(self) -> tuple:
        """What must be equal for two of them to merge."""
        return self.family, tuple(self.sizes), tuple(self.elsewhere)


def first_line(error: BaseException) -> str:
    """The first line of an error's message (libraries' messages run on), or its type when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def looks_like_path(name: str, suffixes: Iterable[str] = ()) -> bool:
    """Whether a name that does not exist was meant as a local path, so that its error says it does not exist,
    rather than a hub id ("name" or "org/name"): it starts with "/", "." or "~", has more than one "/", a
    backslash or the platform's own separator, or ends in one of `suffixes` (lowercase, with the dot)."""
    return (name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name
            or os.sep != "/" and os.sep in name or Path(name).suffix.lower() in set(suffixes))
