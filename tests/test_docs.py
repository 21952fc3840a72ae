"""The manual keeps each fact in one place: every metric of the schema is defined by exactly one table row in
docs/, none in the README, and every relative link of the README and docs/ points at a path that exists."""

from __future__ import annotations

import re
from pathlib import Path

from specsweep import record
from tests.helpers import ROOT

DOCS = ROOT / "docs"
# A row that defines a name starts with it alone in backticks: "| `alpha` | ...". A row that only mentions a
# name ("| `c`, `draft_params` | ...") or names the metric elsewhere in the row does not define it.
DEFINING_ROW = re.compile(r"^\| `([A-Za-z_0-9]+)` \|", flags=re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", flags=re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # http:, https:, mailto:, ...


def pages() -> dict[Path, str]:
    return {page: page.read_text() for page in sorted(DOCS.glob("*.md"))}


def definition_problems(docs: dict[Path, str], readme: str, metrics: list[str]) -> list[str]:
    """One sentence per metric defined other than once in `docs`, or defined in the README at all."""
    where: dict[str, list[str]] = {}
    for page, text in docs.items():
        for name in DEFINING_ROW.findall(text):
            where.setdefault(name, []).append(Path(page).name)
    problems = []
    for name in metrics:
        found = where.get(name, [])
        if not found:
            problems.append(f"{name} is defined nowhere in docs/")
        elif len(found) > 1:
            problems.append(f"{name} is defined {len(found)} times: {', '.join(found)}")
    problems += [f"{name} is defined in README.md" for name in DEFINING_ROW.findall(readme) if name in metrics]
    return problems


def relative_links(text: str) -> list[str]:
    """The paths of a page's relative links, fragments cut off; links inside code are not links."""
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    paths = []
    for target in LINK.findall(prose):
        if SCHEME.match(target) or target.startswith("#"):
            continue
        paths.append(target.split("#", 1)[0])
    return paths


def broken_links(page: Path, text: str) -> list[str]:
    return [f"{page.relative_to(ROOT)} links to {target}, which does not exist"
            for target in relative_links(text) if not (page.parent / target).exists()]


def test_every_metric_of_the_schema_is_defined_once_in_docs_and_not_in_the_readme():
    problems = definition_problems(pages(), (ROOT / "README.md").read_text(), list(record.METRICS))
    assert not problems, "\n".join(problems)


def test_the_definition_check_fails_on_a_missing_a_duplicated_or_a_readme_definition():
    table = "| metric | definition |\n|---|---|\n| `speedup` | a ratio |\n| `alpha` | a rate |\n"
    assert definition_problems({Path("metrics.md"): table}, "", ["speedup", "alpha"]) == []
    assert definition_problems({Path("metrics.md"): table}, "", ["speedup", "alpha", "c"]) == [
        "c is defined nowhere in docs/"]
    twice = {Path("metrics.md"): table, Path("study.md"): "| `alpha` | again |\n"}
    assert definition_problems(twice, "", ["speedup", "alpha"]) == ["alpha is defined 2 times: metrics.md, study.md"]
    assert definition_problems({Path("metrics.md"): table}, "| `speedup` | here too |\n", ["speedup", "alpha"]) == [
        "speedup is defined in README.md"]
    # A row that names a metric among others, or in a later cell, defines nothing.
    assert definition_problems({Path("metrics.md"): table + "| `c`, `alpha` | x |\n| x | `alpha` |\n"}, "",
                               ["speedup", "alpha"]) == []


def test_every_relative_link_of_the_readme_and_docs_points_at_a_path_that_exists():
    problems = broken_links(ROOT / "README.md", (ROOT / "README.md").read_text())
    for page, text in pages().items():
        problems += broken_links(page, text)
    assert not problems, "\n".join(problems)


def test_the_link_check_reads_links_as_a_renderer_does():
    text = ("[a](docs/x.md#part) ![plot](plots/a.png) [web](https://example.org/y) [here](#anchor) "
            "[titled](y.md \"t\") `[not](code.md)`\n```\n[nor](block.md)\n```\n[last](z/)\n")
    assert relative_links(text) == ["docs/x.md", "plots/a.png", "y.md", "z/"]
    assert broken_links(DOCS / "README.md", "[gone](no-such-page.md)") == [
        "docs/README.md links to no-such-page.md, which does not exist"]
    assert broken_links(DOCS / "README.md", "[up](../README.md) [map](metrics.md#the-metrics)") == []
