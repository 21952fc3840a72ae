"""The package's folders keep the rules their `__init__` docstrings state: each wing is imported alone in a fresh
interpreter and what it pulled into sys.modules is checked; who may import `app` and `cli` is read from the source."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

WINGS = ["specsweep.decoding", "specsweep.models", "specsweep.data", "specsweep.study", "specsweep.app",
         "specsweep.cli"]
GROUND = ["specsweep.errors", "specsweep.record", "specsweep.schema", "specsweep.theory", "specsweep.tracking"]

# module -> module prefixes it must never import
RULES = {
    "specsweep.decoding": ["hydra", "omegaconf", "specsweep.models", "specsweep.data", "specsweep.study",
                           "specsweep.app", "specsweep.schema"],
    "specsweep.models": ["hydra", "omegaconf", "specsweep.decoding", "specsweep.study", "specsweep.app"],
    "specsweep.data": ["specsweep.models", "specsweep.decoding", "specsweep.study", "specsweep.app"],
    "specsweep.study": ["torch", "transformers", "specsweep.models", "specsweep.decoding", "specsweep.data",
                        "specsweep.app"],
    # The ground floor: vocabularies any wing may import, so they import no wing, and never torch.
    **{module: ["torch", "transformers", *WINGS] for module in GROUND},
    "specsweep.cli.aggregate": ["torch", "transformers", "specsweep.app"],
    "specsweep.cli.theory": ["torch", "transformers"],
    "specsweep.cli.predict": ["torch", "transformers", "specsweep.app"],
}
# package -> the only modules outside it that may import it
IMPORTED_ONLY_BY = {
    "specsweep.app": ["specsweep.__main__", "specsweep.profile", "hydra_plugins.specsweep_sweeper"],
    "specsweep.cli": [],
}

PROBE = """
import importlib, json, pkgutil, sys
wing = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(getattr(wing, "__path__", []), wing.__name__ + "."):
    importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("wing", RULES)
def test_a_wing_imports_only_what_its_rule_allows(wing):
    done = subprocess.run([sys.executable, "-c", PROBE, wing], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    broken = [name for name in loaded for banned in RULES[wing] if within(name, banned)]
    assert not broken, f"{wing} imports {sorted(set(broken))}"
    assert any(name.startswith(wing) for name in loaded)  # the probe did import the wing


def imports(path: Path, module: str) -> set[str]:
    """Every specsweep module `path` imports, at any depth of the file (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def modules() -> dict[str, Path]:
    found = {}
    for top in ("specsweep", "hydra_plugins"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@pytest.mark.parametrize("package", IMPORTED_ONLY_BY)
def test_only_the_entry_points_import_app_and_nothing_imports_cli(package):
    allowed = [package, *IMPORTED_ONLY_BY[package]]
    offenders = sorted(module for module, path in modules().items()
                       if not any(within(module, ok) for ok in allowed)
                       and any(within(name, package) for name in imports(path, module)))
    assert not offenders, f"{package} is imported by {offenders}"


@pytest.mark.parametrize("package", WINGS)
def test_every_folder_states_its_rule(package):
    doc = importlib.import_module(package).__doc__ or ""
    assert len(doc.split()) >= 10, f"{package}/__init__.py states no rule in its docstring"
