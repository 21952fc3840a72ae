"""What every command line shares: a parser whose errors are one line, and the validators that turn a bad value
into one sentence naming the option, the value and what is allowed (exit status 2, no traceback)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from specsweep.errors import ConfigError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage block: the message already names the option, the bad value and what is allowed.
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(parser: argparse.ArgumentParser, flag: str, raw: str, kind: Callable[[str], Any], allowed: str,
           ok: Callable[[Any], bool]) -> Any:
    """`raw` as `kind` (taken as a string, so that a bad value gets this sentence rather than argparse's)."""
    try:
        value = kind(raw.strip())
    except ValueError:
        parser.error(f"{flag}={raw!r} is invalid; it must be {allowed}.")
    if not ok(value):
        parser.error(f"{flag}={raw!r} is invalid; it must be {allowed}.")
    return value


def device(parser: argparse.ArgumentParser, flag: str, name: str) -> Any:
    """A torch.device, or one sentence saying which names are allowed (torch is imported here, not at start)."""
    from specsweep.models.switches import device as resolve

    try:
        return resolve(name, flag)
    except ConfigError as error:
        parser.error(str(error))
