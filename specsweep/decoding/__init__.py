"""The decoding engine: every number specsweep reports comes out of these functions. Knows nothing of Hydra, of a
config or of another wing (of specsweep it imports only the ground modules), so it runs as a library.

- `engine`: our loops as verbs (autoregressive, speculative: draft, verify, accept), as gpt-fast's generate.py;
- `runner`: a model with its KV cache and compiled graphs, and `finish`, which ends each call of our loops;
- `heads`: Medusa decoding; `hf`: transformers' assisted generation and prompt lookup, instrumented;
- `checks`: the arguments' checks; `sampling`: how a token is chosen; `stats`: the counts and derived metrics;
- `timing`: per-forward timing; `measure`: interleaved timing of calls; `methods`: the registry of methods;
- `divergence`: where greedy output leaves the autoregressive output, and the margin there.
"""

from specsweep.decoding.engine import autoregressive, speculative
from specsweep.decoding.heads import medusa
from specsweep.decoding.hf import assisted, prompt_lookup
from specsweep.decoding.methods import METHODS, Method, method
from specsweep.decoding.sampling import Sampling
from specsweep.decoding.stats import DecodeStats, Generation, derive

__all__ = [
    "METHODS", "DecodeStats", "Generation", "Method", "Sampling", "assisted", "autoregressive", "derive",
    "medusa", "method", "prompt_lookup", "speculative",
]
