"""`python -m specsweep.ngram`: the old path of `specsweep-fit-ngram` (specsweep.cli.fit_ngram), kept working."""

import runpy

if __name__ == "__main__":
    runpy.run_module("specsweep.cli.fit_ngram", run_name="__main__", alter_sys=True)
