"""`specsweep-build-family`: it finds (or builds) the family and prints where, and still takes the word `build` that
the old `python -m specsweep.models.embedded build` passes it."""

from __future__ import annotations

import pytest

from specsweep.cli import build_family
from specsweep.models import embedded


def test_prints_the_built_family_with_or_without_the_old_word(specsweep_home, monkeypatch, capsys):
    monkeypatch.setenv("SPECSWEEP_HOME", str(specsweep_home))
    build_family.main(["--micro"])
    printed = capsys.readouterr().out
    assert printed.startswith(f"{embedded.family_dir(embedded.MICRO, specsweep_home)}  (target ")
    assert ", ".join(embedded.NGRAM_ORDERS) in printed
    build_family.main(["build", "--micro"])
    assert capsys.readouterr().out == printed
    with pytest.raises(SystemExit) as refused:
        build_family.main(["rebuild", "--micro"])
    assert refused.value.code == 2
