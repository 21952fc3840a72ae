"""The registry of decoding methods and what each can do. Capabilities are facts about the functions, declared
where each function is defined, so no configuration can claim that a method drafts or compiles when it does not."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from specsweep.decoding.stats import Generation

Decode = Callable[..., Generation]
F = TypeVar("F", bound=Decode)


@dataclass(frozen=True)
class Method:
    name: str
    decode: Decode
    uses_draft: bool = False  # takes a draft model: a sweep's `draft` axis applies
    uses_gamma: bool = False  # takes a lookahead gamma: a sweep's `gamma` axis applies
    needs_kv_cache: bool = False  # cannot run with use_cache=False (transformers' generate() verifies on its cache)
    compilable: bool = False  # torch.compile of the forwards is valid (our loops; not generate()'s candidates)
    uses_heads: bool = False  # takes Medusa heads trained on the target: the family's `medusa` entry
    # Its rounds follow from the draft's choices along the target's own output (`specsweep.rounds`): a draft that
    # conditions each proposal on the ones before it, verified by `engine.decode_rounds`.
    replays: bool = False


METHODS: dict[str, Method] = {}


def method(*, uses_draft: bool = False, uses_gamma: bool = False, needs_kv_cache: bool = False,
           compilable: bool = False, uses_heads: bool = False, replays: bool = False) -> Callable[[F], F]:
    """Register a decoding function under its own name, with its capabilities."""

    def register(decode: F) -> F:
        METHODS[decode.__name__] = Method(decode.__name__, decode, uses_draft, uses_gamma, needs_kv_cache, compilable,
                                          uses_heads, replays)
        return decode

    return register


def find(name: str, module: str | None = None) -> Method | None:
    """The method registered as `name`, after importing `module` (where a method of the user's own registers
    itself). Raises ImportError when the module cannot be imported."""
    if module:
        importlib.import_module(module)
    return METHODS.get(name)
