"""What the data tests share: rows shaped like XL-Sum's, and dataset configs over them or the held-out stdlib."""

from __future__ import annotations

import io

from specsweep.schema import DatasetConfig

XLSUM_TEMPLATE = "タイトル: {title}\nテキスト: {text}\n要約: "
ROWS = [
    {"id": f"row-{i}", "title": f"Title {i}", "summary": f"summary {i}",
     "text": " ".join(f"word{j} of the body" for j in range(i + 1))}
    for i in range(6)
]


def config(**overrides) -> DatasetConfig:
    fields = {"name": "test", "source": "hub", "template": XLSUM_TEMPLATE, "reference_field": "summary"}
    return DatasetConfig(**(fields | overrides))


def stdlib_config(**overrides) -> DatasetConfig:
    return config(source="stdlib_heldout", template="{prefix}", reference_field="continuation", **overrides)


def lines(text: str) -> list[str]:
    return io.StringIO(text, newline="\n").readlines()
