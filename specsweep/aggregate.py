"""`python -m specsweep.aggregate`: the old path of `specsweep-aggregate` (specsweep.cli.aggregate), kept working."""

import runpy

if __name__ == "__main__":
    runpy.run_module("specsweep.cli.aggregate", run_name="__main__", alter_sys=True)
