"""`python -m specsweep.distill`: distil drafts for a causal target (specsweep.cli.distill)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("specsweep.cli.distill", run_name="__main__", alter_sys=True)
