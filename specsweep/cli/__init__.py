"""The command lines: one file per command, each a console script (pyproject's [project.scripts]) and a
`python -m specsweep.cli.<name>`. They parse arguments (with the shared validators of `args`: one sentence and exit
status 2 for a bad value) and print; nothing imports this package."""
