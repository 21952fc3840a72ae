"""Train Medusa-1 heads for a target model and save them in Hugging Face format.

    specsweep-train-medusa train --target <hub id or dir> --data <file or dataset> --heads K --out <dir>
        [--steps 300] [--batch-size 8] [--seq-len 256] [--lr 1e-3] [--field text] [--split train] [--seed 0]
        [--device auto] [--force]

`--data` is "stdlib" (the standard-library files the embedded family trains on), a plain-text file, a
.jsonl/.json/.csv/.parquet file, a dataset directory or a hub dataset id (its `--field` column). The texts are
tokenized with the target's tokenizer, joined with its eos token into one stream; the last 5% of the stream (at
most 65,536 tokens) is held out to report each head's top-1 agreement with the target. The heads load back with
`AutoModel.from_pretrained(out)` once `specsweep.models.medusa` is imported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from specsweep.cli.args import HELDOUT, HELDOUT_MAX, Parser, check_training_args, load_target, training_texts
from specsweep.data.training import training_documents
from specsweep.errors import ConfigError
from specsweep.models import embedded
from specsweep.models.medusa import acceptance_preview, train
from specsweep.models.store import save_atomically


def parse(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = Parser(prog="specsweep-train-medusa", description="Train Medusa-1 decoding heads on a frozen target "
                                                               "(self-distillation).")
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("train", help="train heads and save them with save_pretrained")
    sub.add_argument("--target", required=True, help="the target: a hub id or a model directory")
    sub.add_argument("--data", required=True, help='"stdlib", a text or .jsonl/.json/.csv/.parquet file, a dataset '
                                                   "directory or a hub dataset id")
    sub.add_argument("--heads", type=int, required=True, help="K, the number of heads (head i predicts token t+1+i)")
    sub.add_argument("--out", required=True, help="the directory to save the heads in")
    sub.add_argument("--steps", type=int, default=300)
    sub.add_argument("--batch-size", type=int, default=8)
    sub.add_argument("--seq-len", type=int, default=256)
    sub.add_argument("--lr", type=float, default=1e-3)
    sub.add_argument("--field", default="text", help="the text column of a dataset")
    sub.add_argument("--split", default="train", help="the split of a dataset")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--device", default="auto", help='"auto" (cuda when there is one, else cpu), cpu, cuda, cuda:1')
    sub.add_argument("--force", action="store_true", help="replace a non-empty --out")
    return sub, parser.parse_args(argv)


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What can be checked before anything loads; each failure is one sentence and exit status 2."""
    if args.heads >= 1 and args.seq_len <= args.heads:
        parser.error(f"--seq-len={args.seq_len} is invalid for --heads={args.heads}; it must be more than the number "
                     "of heads.")
    check_training_args(parser, args, {"--heads": args.heads, "--steps": args.steps, "--batch-size": args.batch_size})


def main(argv: list[str] | None = None) -> None:
    parser, args = parse(argv)
    check(parser, args)
    device = args.device
    try:
        target, tokenizer = load_target(args.target, device)
        target.requires_grad_(False)
        positions = getattr(target.config, "max_position_embeddings", None)
        if isinstance(positions, int) and args.seq_len > positions:
            raise ConfigError(f"--seq-len={args.seq_len} is longer than the target's context; it must be at most its "
                              f"max_position_embeddings={positions}.")
        texts = training_texts(args.data, args.field, args.split)
        stream = embedded.stream(training_documents(tokenizer, texts))
        least = args.seq_len + args.heads + 1
        if len(stream) < least:
            raise ConfigError(f"--data={args.data} gives only {len(stream)} tokens; with --seq-len={args.seq_len} and "
                              f"--heads={args.heads} it must give at least {least}.")
        # Keep at least a window plus a target for every head to train on; the rest of the tail is held out.
        held = min(len(stream) // HELDOUT, HELDOUT_MAX, len(stream) - least)
        fitted, heldout = stream[: len(stream) - held], stream[len(stream) - held :]
        start = time.perf_counter()
        heads = train(target, fitted, args.heads, args.steps, args.batch_size, args.seq_len, lr=args.lr,
                      seed=args.seed, location=args.target)
        seconds = time.perf_counter() - start
        agreement = acceptance_preview(heads, target, heldout, seq_len=args.seq_len, batch_size=args.batch_size)
        out = Path(args.out).expanduser()
        save_atomically(out, [heads], args.force)
    except ConfigError as error:
        parser.error(str(error))
    print(f"trained {args.heads} heads on {len(fitted)} tokens in {args.steps} steps ({seconds:.0f} s)")
    for i, value in enumerate(agreement, start=1):
        score = f"{value:.3f}" if value == value else "not measured (too few held-out tokens)"  # nan != nan
        print(f"head {i} (token t+{i + 1}): top-1 agreement {score} on {len(heldout)} held-out tokens")
    print(f"saved to {out}")


if __name__ == "__main__":
    sys.exit(main())
