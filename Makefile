# The README's two set-up commands are `make quickstart` and `make test`: each installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build where there is no CUDA; this release is on disk on our machines, so nothing large downloads.
TORCH ?= torch==2.13.0

# Debian's package; run apt as root, or through sudo when we are not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: torch install install-test chromium slurm test quickstart bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

torch: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"

install: torch
	$(BIN)/pip install --quiet -e .

# The test extras (pytest, pytest-xdist, scipy, ruff, the notebook runner) only where the tests run.
install-test: torch
	$(BIN)/pip install --quiet -e ".[test]"

# The report test opens report.html in headless Chromium.
chromium:
	@command -v chromium >/dev/null || $(SUDO) apt-get install -y -qq chromium \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# The cluster test starts a private single-node SLURM from Debian's packages (tests/e2e/slurm_cluster.py).
slurm:
	@command -v slurmctld >/dev/null && command -v munged >/dev/null || $(SUDO) apt-get install -y -qq slurm-wlm munge \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq slurm-wlm munge; }

# A worker per core (pytest-xdist); the modules that share an expensive fixture each run on one worker (xdist_group).
test: install-test chromium slurm
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --dist loadgroup --durations=20

bench: install
	$(BIN)/specsweep-bench

# The main job: a draft x lookahead sweep on the embedded family (built on first use), then the study table.
quickstart: install
	$(BIN)/python -m specsweep -m experiment=quickstart
