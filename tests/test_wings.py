"""The package's wings keep their rules: each is imported alone in a fresh interpreter, and what it pulled into
sys.modules is checked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

# wing -> module prefixes it must never import
RULES = {
    "specsweep.decoding": ["hydra", "omegaconf", "specsweep.models", "specsweep.data", "specsweep.study",
                           "specsweep.job", "specsweep.cell", "specsweep.schema"],
    "specsweep.models": ["hydra", "omegaconf", "specsweep.decoding", "specsweep.study", "specsweep.job",
                         "specsweep.cell"],
    "specsweep.data": ["specsweep.models", "specsweep.decoding", "specsweep.study", "specsweep.job", "specsweep.cell"],
    "specsweep.study": ["torch", "transformers", "specsweep.models", "specsweep.decoding", "specsweep.data",
                        "specsweep.job", "specsweep.cell", "specsweep.results"],
    "specsweep.aggregate": ["torch", "transformers", "specsweep.job"],
    "specsweep.record": ["torch", "transformers", "pandas", "hydra", "omegaconf"],
}

PROBE = """
import importlib, json, pkgutil, sys
wing = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(getattr(wing, "__path__", []), wing.__name__ + "."):
    importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("wing", RULES)
def test_a_wing_imports_only_what_its_rule_allows(wing):
    done = subprocess.run([sys.executable, "-c", PROBE, wing], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    broken = [name for name in loaded for banned in RULES[wing] if name == banned or name.startswith(banned + ".")]
    assert not broken, f"{wing} imports {sorted(set(broken))}"
    assert any(name.startswith(wing) for name in loaded)  # the probe did import the wing
