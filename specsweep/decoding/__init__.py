"""The decoding engine: every number specsweep reports comes out of these functions. Usable without Hydra."""

from specsweep.decoding.engine import autoregressive, speculative
from specsweep.decoding.hf import assisted, prompt_lookup
from specsweep.decoding.sampling import Sampling
from specsweep.decoding.stats import DecodeStats, Generation, derive

METHODS = {
    "autoregressive": autoregressive,
    "speculative": speculative,
    "assisted": assisted,
    "prompt_lookup": prompt_lookup,
}

__all__ = [
    "METHODS", "DecodeStats", "Generation", "Sampling", "assisted", "autoregressive", "derive",
    "prompt_lookup", "speculative",
]
