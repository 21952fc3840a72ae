"""`python -m specsweep.predict`: `specsweep-predict` (specsweep.cli.predict)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("specsweep.cli.predict", run_name="__main__", alter_sys=True)
