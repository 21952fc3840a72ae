"""torch.compile for our decoding loops, and the seconds it spends compiling (reported apart from latency)."""

from __future__ import annotations

import torch

from specsweep.record import FIXED_SHAPES  # where the compile arguments are kept for the decoding wing to read


def compile_forward(model: torch.nn.Module, backend: str, fixed_shapes: bool = False) -> None:
    """Compile the model's forward in place (lazily: compilation happens on first use, in the warm-up).

    `fixed_shapes` (a static cache): one graph per input shape, as gpt-fast compiles its decode step; our loops then
    meet only a few (the one-token step, the draft's fused round, the (γ + 1)-token verification, padded to γ + 1 even
    when fewer drafts were proposed); the engine runs the prefill apart (compiled over dynamic lengths on CUDA). On
    CUDA inductor also captures CUDA graphs ("reduce-overhead"), which a static cache's fixed addresses allow.
    Otherwise shapes are dynamic, over a growing cache."""
    # Target and draft share transformers' forward code object, and each (model, input shape class, cache state)
    # is its own graph: the default limit of 8 would silently fall back to eager after a few.
    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 64))  # renamed in torch 2.6
    # A model with no KV cache (an n-gram draft) reads the whole, growing sequence: fixed shapes would be a graph
    # per length.
    if not fixed_shapes or not getattr(model, "_supports_default_dynamic_cache", lambda: True)():
        model.compile(backend=backend, dynamic=True)
        return
    cuda = next(model.parameters()).device.type == "cuda"
    options = {"backend": backend, "dynamic": False} | ({"mode": "reduce-overhead"} if cuda and backend == "inductor"
                                                         else {})
    model.compile(**options)
    setattr(model, FIXED_SHAPES, options)


class Compilation:
    """Seconds torch.compile has spent compiling since this object was made. torch has no public counter, so
    this reads dynamo's own timing table (torch._dynamo.utils); 0 when nothing compiled."""

    def __init__(self) -> None:
        self.start = self.total()

    @staticmethod
    def total() -> float:
        from torch._dynamo import utils

        return sum(getattr(utils, "compilation_time_metrics", {}).get("_compile.compile_inner", []))

    def seconds(self) -> float:
        return self.total() - self.start
