"""`python -m specsweep.bench`: the old path of `specsweep-bench` (specsweep.cli.bench), kept working."""

import runpy

if __name__ == "__main__":
    runpy.run_module("specsweep.cli.bench", run_name="__main__", alter_sys=True)
