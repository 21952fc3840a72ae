"""specsweep: speculative-decoding experiments as Hydra sweeps."""
