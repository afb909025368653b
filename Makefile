# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.installed
CONFIG ?= config/execd.toml

.PHONY: setup run test test-fast lint check-unit bench bench-scale clean

setup: $(READY)

# Re-install whenever pyproject.toml changes.
$(READY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# First run only: seed the lakehouse with the shipped samples (intents, the run
# registry, regime and prices).
run: setup
	@if [ ! -d var/lakehouse ]; then \
		mkdir -p var/lakehouse/inbox && cp config/samples/*.jsonl var/lakehouse/inbox/ && \
		cp -r config/samples/audit config/samples/market var/lakehouse/ && \
		echo "seeded var/lakehouse with config/samples"; fi
	$(BIN)/execd run --config $(CONFIG)

# Every test, the ones that start real processes (tests/process/, marker `process`) too.
test: setup
	$(BIN)/python -m pytest -q

# The inner loop: the in-process tests only; none of them starts a process.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not process"

lint: setup
	$(BIN)/ruff check execd tests bench
	$(BIN)/mypy
	@if command -v shellcheck >/dev/null; then shellcheck deploy/*.sh; fi

# The systemd unit as deploy/install.sh installs it: systemd-analyze verify, and
# systemd-analyze security at an exposure of 2.0 or lower.
check-unit:
	deploy/check-unit.sh

bench: setup
	$(BIN)/python bench/paper.py
	$(BIN)/python bench/schedules.py
	$(BIN)/python bench/live.py

# Start-up, verify and tail over paper ledgers of 1M and 10M records (built once and
# cached in var/bench-scale/, about 8 GB at 10M; the first build takes minutes).
# SIZES, RUNS and MEASURES as for bench/scale.py --sizes, --runs and --measures.
SIZES ?= 1000000,10000000
RUNS  ?= 3
MEASURES ?= startup,verify,tail,tail_linear
bench-scale: setup
	$(BIN)/python bench/scale.py --sizes $(SIZES) --runs $(RUNS) --measures $(MEASURES)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
