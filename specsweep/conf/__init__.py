"""The config tree `python -m specsweep` composes, shipped inside the package (Hydra finds it as `pkg://specsweep.conf`)."""
