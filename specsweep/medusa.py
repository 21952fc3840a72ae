"""`python -m specsweep.medusa`: the old path of `specsweep-train-medusa` (specsweep.cli.train_medusa), kept working."""

import runpy

if __name__ == "__main__":
    runpy.run_module("specsweep.cli.train_medusa", run_name="__main__", alter_sys=True)
