"""What every command line shares: a parser whose errors are one line, and the validators that turn a bad value
into one sentence naming the option, the value and what is allowed (exit status 2, no traceback)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from specsweep.errors import ConfigError

# What `--target` and `--data` may name as plain files (besides a dataset's formats, `sources.LOCAL_FORMATS`): a path
# ending so that does not exist gets its sentence.
TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst", ".py"}
# The held-out tail of a training stream: one token in HELDOUT, at most HELDOUT_MAX (a standard error under 0.2% on
# an agreement; 5% of a large dataset would outlast training).
HELDOUT, HELDOUT_MAX = 20, 1 << 16


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


def check_target_and_data(parser: argparse.ArgumentParser, target: str, data: str) -> None:
    """`--target` (a model directory with its config.json, or a hub id) and `--data` ("stdlib", an existing file or
    directory, or a hub dataset id): a path that cannot be one gets its sentence before anything loads."""
    from pathlib import Path

    from specsweep.data.sources import LOCAL_FORMATS
    from specsweep.errors import looks_like_path

    suffixes = {*TEXT_SUFFIXES, *LOCAL_FORMATS}
    where = Path(target).expanduser()
    if where.exists() and not (where / "config.json").is_file():
        parser.error(f"--target={target} has no config.json; it must be a model directory written by "
                     "save_pretrained or a hub id.")
    if not where.exists() and looks_like_path(target, suffixes):
        parser.error(f"--target={target} does not exist; it must be a model directory or a hub id.")
    if data != "stdlib" and not Path(data).expanduser().exists() and looks_like_path(data, suffixes):
        parser.error(f"--data={data} does not exist; it must be \"stdlib\", a text or "
                     ".jsonl/.json/.csv/.parquet file, a dataset directory or a hub dataset id.")


def training_texts(data: str, field: str, split: str) -> list[str]:
    """`specsweep.data.training.training_texts`, its errors naming this command's flags, not a dataset config's."""
    from specsweep.data.training import training_texts as texts

    try:
        return texts(data, field, split)
    except ConfigError as error:
        raise ConfigError(str(error).replace("dataset.path=", "--data=").replace("dataset.split=", "--split=")) \
            from None


def check_training_args(parser: argparse.ArgumentParser, args: argparse.Namespace, counts: dict[str, int]) -> None:
    """What the commands that train on a target share: each of `counts` (flag -> value) at least 1, a positive
    `--lr`, `--target` and `--data`, an `--out` that can be written, and `--device` (resolved in place)."""
    from pathlib import Path

    from specsweep.models.store import out_problem

    for flag, value in counts.items():
        if value < 1:
            parser.error(f"{flag}={value} is invalid; it must be at least 1.")
    if not args.lr > 0:
        parser.error(f"--lr={args.lr} is invalid; it must be a positive learning rate.")
    check_target_and_data(parser, args.target, args.data)
    problem = out_problem(Path(args.out).expanduser(), args.force)
    if problem:
        parser.error(problem)
    args.device = device(parser, "--device", args.device)


def load_target(target: str, device: Any) -> tuple[Any, Any]:
    """A causal target and its tokenizer for a command that trains on it, in eval mode on `device`: float32 on the
    CPU, where half precision is slow, the checkpoint's own dtype on an accelerator. A failure is one sentence."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from specsweep.errors import first_line

    try:
        dtype = torch.float32 if device.type == "cpu" else "auto"
        model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype).to(device).eval()
        return model, AutoTokenizer.from_pretrained(target)
    except (OSError, ValueError) as error:
        raise ConfigError(f"--target={target} could not be loaded ({first_line(error)}); it must be a causal "
                          "language model's directory or hub id, with its tokenizer.") from None
