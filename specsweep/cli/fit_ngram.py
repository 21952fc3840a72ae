"""Fit a unigram or bigram draft model on a corpus and save it in Hugging Face format, beside its tokenizer.

    specsweep-fit-ngram --tokenizer <hub id or dir> --text <file or dataset> --order 2 --out <dir>
        [--add-k 0.01] [--top-k 64] [--field text] [--split train] [--force]

--text is what `specsweep.data.training.training_texts` reads: "stdlib" (the files the embedded family trains
on), a plain-text file (one document), or a .jsonl/.json/.csv/.parquet file, a dataset directory or a hub id whose
--field column holds the documents. Each document is tokenized without special tokens and ends with the
tokenizer's EOS token when it has one. A model family then names the output directory as a draft:

    drafts: {bigram: /path/to/dir}

For example, a bigram of the embedded family's tokenizer on the standard library:

    specsweep-fit-ngram --tokenizer ~/.cache/specsweep/families/embedded-<key>/target --text stdlib \\
        --order 2 --out ~/drafts/stdlib-bigram
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from specsweep.cli.args import Parser, number
from specsweep.errors import ConfigError, first_line, looks_like_path
from specsweep.models.store import out_problem, save_atomically


def _parser() -> Parser:
    parser = Parser(prog="specsweep-fit-ngram", description="Fit an add-k smoothed unigram or top-K bigram LM as a "
                                                            "draft model (Hugging Face format) and save it with its "
                                                            "tokenizer.")
    parser.add_argument("--tokenizer", required=True, help="hub id or directory of the target's tokenizer")
    parser.add_argument("--text", required=True,
                        help='"stdlib", a plain-text file, or a .jsonl/.json/.csv/.parquet file, dataset dir or hub id')
    # Strings, not type=int/float, so that a bad value gets our sentence saying what is allowed.
    parser.add_argument("--order", required=True, help="1 (unigram) or 2 (bigram)")
    parser.add_argument("--out", required=True, help="the directory to write (must not exist or be empty)")
    parser.add_argument("--add-k", default="0.01", help="the add-k smoothing constant, > 0 (default 0.01)")
    parser.add_argument("--top-k", default="64", help="next tokens kept per context by a bigram, >= 1 (default 64)")
    parser.add_argument("--field", default="text", help="the column of a dataset that holds the texts")
    parser.add_argument("--split", default="train", help="the split of a dataset to read")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    return parser


def _tokenizer(parser: Parser, name: str) -> Any:
    from transformers import AutoTokenizer

    path = Path(name).expanduser()
    if looks_like_path(name) and not path.is_dir():
        parser.error(f"--tokenizer={name!r} is not a directory ({path.absolute()}); it must be a tokenizer "
                     "directory or a hub id.")
    try:
        return AutoTokenizer.from_pretrained(str(path) if path.is_dir() else name)
    except (OSError, ValueError, TypeError, KeyError) as error:
        parser.error(f"--tokenizer={name!r} could not be loaded ({first_line(error)}); it must be a tokenizer "
                     "directory or a hub id.")


def _texts(parser: Parser, source: str, field: str, split: str) -> list[str]:
    from specsweep.data.training import training_texts

    # A name with a suffix and no "/" cannot be a hub id: report it missing here rather than as an unknown dataset.
    named_file = looks_like_path(source) or (Path(source).suffix and "/" not in source)
    if source != "stdlib" and named_file and not Path(source).expanduser().exists():
        parser.error(f"--text={source!r} does not exist ({Path(source).expanduser().absolute()}); it must be "
                     '"stdlib", a text or .jsonl/.json/.csv/.parquet file, a dataset directory or a hub id.')
    try:
        texts = training_texts(source, field, split)
    except ConfigError as error:
        # training_texts speaks of the dataset config's key; on this command line it is --text.
        parser.error(first_line(error).replace("dataset.path=", "--text="))
    if not any(text.strip() for text in texts):
        parser.error(f"--text={source!r} holds no text; it must hold at least one non-empty document.")
    return texts


def vocab_size(tokenizer: Any) -> int:
    """Rows a model over this tokenizer needs: its length, or its highest id + 1 where ids have gaps."""
    return max(len(tokenizer), max(tokenizer.get_vocab().values(), default=-1) + 1)


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    order = number(parser, "--order", args.order, int, "1 (unigram) or 2 (bigram)", lambda n: n in (1, 2))
    add_k = number(parser, "--add-k", args.add_k, float, "a finite number > 0",
                    lambda k: math.isfinite(k) and k > 0)
    top_k = number(parser, "--top-k", args.top_k, int, "an integer >= 1", lambda k: k >= 1)
    out = Path(args.out).expanduser()
    problem = out_problem(out, args.force)
    if problem:
        parser.error(problem)
    tokenizer = _tokenizer(parser, args.tokenizer)
    texts = _texts(parser, args.text, args.field, args.split)

    from specsweep.data.training import training_documents
    from specsweep.models.ngram import describe, fit  # torch and transformers: after the arguments are checked

    start = time.perf_counter()
    documents = training_documents(tokenizer, texts)
    model = fit(documents, vocab_size(tokenizer), order, add_k=add_k, top_k=top_k, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    seconds = time.perf_counter() - start
    tokens = sum(len(doc) for doc in documents)
    try:
        save_atomically(out, [model, tokenizer], args.force)
    except ConfigError as error:
        parser.error(str(error))
    print(f"{describe(model)}; fitted on {tokens} tokens of {len(documents)} documents in {seconds:.1f} s")
    print(f"saved to {out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
