"""Distil a ladder of drafts for any causal target, and write the model family that sweeps them.

    python -m specsweep.distill --target <hub id or dir> (--sizes 250K,1M,4M | --shapes 1x64,4x64,...) --out <dir>
        [--data stdlib] [--field text] [--split train] [--loss fkl] [--policy fixed] [--init target] [--steps 300]
        [--batch-size 16] [--seq-len 256] [--lr 3e-3] [--seed 0] [--name NAME] [--device auto] [--force]

`--data` is "stdlib" (the standard-library files the embedded family trains on), a plain-text file, a
.jsonl/.json/.csv/.parquet file, a dataset directory or a hub dataset id (its `--field` column). The last 5% of its
tokens (at most 65,536) are held out: each draft's perplexity and top-1 agreement with the target on them go into its
`distill.json`. A size becomes the shallowest shape no wider than the target with about that many parameters.

The drafts train together (one target forward per step serves them all) in `<out>.partial/`, which a killed run
resumes from; when they are done it is renamed to `<out>`: the drafts (each a Hugging Face model directory with the
target's tokenizer), `distill.json`, and `model_family/<name>.yaml`, which the last line printed sweeps.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from specsweep.cli.args import HELDOUT, HELDOUT_MAX, Parser, check_training_args, load_target, training_texts
from specsweep.errors import ConfigError, first_line
from specsweep.models.store import CARD, move_into_place, out_problem

ARGS = "args.json"  # in <out>.partial: the arguments a partial run was started with


def parse(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    from specsweep.models.distill import INITS, LOSSES, POLICIES, Training

    defaults = Training()
    parser = Parser(prog="python -m specsweep.distill", description="Distil drafts for a causal target and write "
                                                                    "a model family that sweeps them.")
    parser.add_argument("--target", required=True, help="the target: a hub id or a model directory")
    ladder = parser.add_mutually_exclusive_group(required=True)
    ladder.add_argument("--sizes", help="parameter counts, comma-separated: 250K,1M,4M")
    ladder.add_argument("--shapes", help="LAYERSxWIDTH, comma-separated: 1x64,4x64,1x128")
    parser.add_argument("--out", required=True, help="the directory to write the drafts and their family in")
    parser.add_argument("--data", default="stdlib", help='"stdlib", a text or .jsonl/.json/.csv/.parquet file, a '
                                                         "dataset directory or a hub dataset id")
    parser.add_argument("--field", default="text", help="the text column of a dataset")
    parser.add_argument("--split", default="train", help="the split of a dataset")
    parser.add_argument("--loss", default=defaults.loss, choices=LOSSES,
                        help="fkl: forward KL to the target; tvd: total variation (DistillSpec); rkl: reverse KL; "
                             "nll: plain next-token loss, no teacher")
    parser.add_argument("--policy", default=defaults.policy, choices=POLICIES,
                        help="the text trained on: fixed windows of --data, or the target's or each draft's own "
                             "samples continuing them (on-policy)")
    parser.add_argument("--init", default=defaults.init, choices=INITS,
                        help="target: start from the target's token embeddings where the width allows")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seq-len", type=int, default=defaults.seq_len)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every,
                        help="steps between saved states: a killed run resumes from the last one")
    parser.add_argument("--name", help="the model family's name (default: --out's name)")
    parser.add_argument("--device", default="auto", help='"auto" (cuda when there is one, else cpu), cpu, cuda, cuda:1')
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out, or a partial run of other "
                                                             "arguments")
    return parser, parser.parse_args(argv)


def family_name(args: argparse.Namespace) -> str:
    return args.name or re.sub(r"\W", "_", Path(args.out).expanduser().resolve().name)


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What can be checked before anything loads; each failure is one sentence and exit status 2."""
    from specsweep.models.distill import parse_shape, parse_size

    if args.seq_len < 2:
        parser.error(f"--seq-len={args.seq_len} is invalid; it must be at least 2.")
    try:
        args.ladder = [parse_shape(s) for s in args.shapes.split(",")] if args.shapes else \
            [parse_size(s) for s in args.sizes.split(",")]
    except ConfigError as error:
        parser.error(str(error))
    if args.name is not None and not re.fullmatch(r"\w+", args.name):
        parser.error(f"--name={args.name!r} is invalid; it must be letters, digits and underscores (a config name).")
    check_training_args(parser, args, {"--steps": args.steps, "--batch-size": args.batch_size,
                                       "--checkpoint-every": args.checkpoint_every})


def fingerprint(args: argparse.Namespace) -> dict:
    """The arguments that decide the drafts' weights: a partial run resumes only under the same ones."""
    keys = ("target", "sizes", "shapes", "data", "field", "split", "loss", "policy", "init", "steps", "batch_size",
            "seq_len", "lr", "seed")
    return {key: getattr(args, key) for key in keys}


def partial_dir(args: argparse.Namespace) -> Path:
    out = Path(args.out).expanduser().resolve()
    partial = out.with_name(f"{out.name}.partial")
    wanted = fingerprint(args)
    if partial.exists():
        try:
            started = json.loads((partial / ARGS).read_text())
        except (OSError, ValueError):
            started = None
        if started != wanted:
            if not args.force:
                raise ConfigError(f"{partial} holds a partial run with other arguments; pass --force to start over, "
                                  f"or run again with the arguments in its {ARGS}.")
            shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    (partial / ARGS).write_text(json.dumps(wanted, indent=2))
    return partial


def causal_target(args: argparse.Namespace):  # -> tuple[PreTrainedModel, PreTrainedTokenizerBase]
    """The target and its tokenizer, refused first with one sentence when it has no causal LM head."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        config = AutoConfig.from_pretrained(args.target)
    except (OSError, ValueError) as error:
        raise ConfigError(f"--target={args.target} could not be loaded ({first_line(error)}); it must be a causal "
                          "language model's directory or hub id, with its tokenizer.") from None
    if getattr(config, "is_encoder_decoder", False) or type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise ConfigError(f"--target={args.target} is a {config.model_type} model without a causal LM head; it must "
                          "be a decoder-only causal language model (GPT-2, LLaMA, GPT-NeoX, ...).")
    return load_target(args.target, args.device)


def token_streams(args: argparse.Namespace, tokenizer):  # -> tuple[torch.Tensor, torch.Tensor]
    """The training tokens and the held-out tail."""
    from specsweep.data.training import training_documents
    from specsweep.models.embedded import stream

    texts = training_texts(args.data, args.field, args.split)
    tokens = stream(training_documents(tokenizer, texts))
    least = 2 * (args.seq_len + 1)
    if len(tokens) < least:
        raise ConfigError(f"--data={args.data} gives only {len(tokens)} tokens; with --seq-len={args.seq_len} it must "
                          f"give at least {least} (a window to train on and one held out).")
    held = max(args.seq_len + 1, min(len(tokens) // HELDOUT, HELDOUT_MAX))
    return tokens[: len(tokens) - held], tokens[len(tokens) - held :]


def family_yaml(name: str, target: str, out: Path, drafts: dict[str, dict], args: argparse.Namespace) -> str:
    """The model family of the drafts, as `python -m specsweep -m hydra.searchpath=[file://<out>] model_family=<name>`
    composes it."""
    target_location = str(Path(target).expanduser().resolve()) if Path(target).expanduser().exists() else target
    default = list(drafts)[len(drafts) // 2]
    lines = [f"# Drafts for {target} made by `python -m specsweep.distill` (--loss {args.loss}, --policy "
             f"{args.policy}, --steps {args.steps}); each one's distill.json says how it was made and how it does.",
             "defaults:", "  - base_model_family", "", f"name: {name}", "source: hub",
             f"target: {json.dumps(target_location)}", "drafts:",
             *(f"  {json.dumps(n)}: {json.dumps(str(out / n))}  # {c['shape']}" for n, c in drafts.items()),
             f"default_draft: {json.dumps(default)}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser, args = parse(argv)
    check(parser, args)
    try:
        run(args)
    except ConfigError as error:
        parser.error(str(error))


def run(args: argparse.Namespace) -> None:
    from specsweep.models import distill

    target, tokenizer = causal_target(args)
    tokens, held = token_streams(args, tokenizer)
    if args.shapes is None:
        args.ladder = [distill.shape_for_size(target.config, size) for size in args.ladder]
    positions = getattr(target.config, "max_position_embeddings", None) or getattr(target.config, "n_positions", None)
    if isinstance(positions, int) and args.seq_len > positions:
        raise ConfigError(f"--seq-len={args.seq_len} is longer than the target's context; it must be at most "
                          f"{positions}.")
    partial = partial_dir(args)
    training = distill.Training(loss=args.loss, policy=args.policy, init=args.init, steps=args.steps,
                                batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr, seed=args.seed,
                                checkpoint_every=args.checkpoint_every)
    resumed = partial / "state.pt"
    if resumed.exists():
        print(f"resuming the partial run in {partial}", file=sys.stderr)
    manifest = distill.distill_into(partial, target, tokenizer, args.target, tokens, held, args.ladder, training,
                                    checkpoint=resumed)
    out = Path(args.out).expanduser().resolve()
    name = family_name(args)
    (partial / "model_family").mkdir(exist_ok=True)
    (partial / "model_family" / f"{name}.yaml").write_text(family_yaml(name, args.target, out, manifest["drafts"],
                                                                       args))
    (partial / CARD).write_text(json.dumps(manifest, indent=2))  # every draft's card, and the target's figures
    (partial / ARGS).unlink()
    problem = out_problem(out, args.force)
    if problem:
        raise ConfigError(f"{problem.removesuffix('.')} (it was filled while this ran); the drafts are in {partial}.")
    move_into_place(partial, out)
    for draft_name, card in manifest["drafts"].items():
        print(f"{draft_name:>12}  {card['shape']:>7}  held-out perplexity {card['heldout_perplexity']:8.2f}  "
              f"top-1 agreement {card['agreement']:.3f}")
    print(f"target held-out perplexity {manifest['target_heldout']['heldout_perplexity']:.2f}; "
          f"{len(tokens)} training tokens, {manifest['train_seconds']:.0f} s")
    print(f"python -m specsweep -m 'hydra.searchpath=[file://{out}]' model_family={name} "
          f"draft={','.join(manifest['drafts'])} gamma=1,3,5,7")


if __name__ == "__main__":
    sys.exit(main())
