"""The decoding engine: every number specsweep reports comes out of these functions. Knows nothing of Hydra."""

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
