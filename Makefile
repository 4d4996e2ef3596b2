# Two commands a new user needs: `make demo` and `make test`. Both set up .venv first, with
# exactly the versions in the lock file; `make lock` moves them on purpose.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements-lock.txt
PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.6.2
export HF_HUB_OFFLINE ?= 1

.PHONY: install lock demo test lint format clean

install: $(STAMP)

# pip first (pinned here: nothing in the lock depends on it), then every locked package, then tuneforge itself with no
# resolving of its own: nothing is installed that the lock does not name.
$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Re-resolve every dependency to its newest release allowed by pyproject.toml; torch stays at the
# CPU release that constraints/cpu.txt names. The "+cpu" label is dropped so that a CUDA machine
# installs the same release of its own build.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet "pip-tools==$(PIP_TOOLS_VERSION)"
	$(BIN)/pip-compile --quiet --upgrade --allow-unsafe --extra dev --strip-extras \
		--constraint constraints/cpu.txt --no-emit-index-url --no-emit-find-links \
		--output-file $(LOCK) pyproject.toml
	sed -i -E 's/^(torch==[^+ ]+)\+[a-z0-9]+/\1/' $(LOCK)

demo: $(STAMP)
	$(BIN)/python -m tuneforge.demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# The PostgreSQL half of the suite runs against the machine's server unless told otherwise.
# Two pytest workers (pytest-xdist) by default, one per core of the 2-core CI machine: most of the
# suite is single-threaded Python. A module's tests stay on one worker (--dist loadfile), so
# its module-scoped fixtures (a trained teacher, a live server) are built once.
TEST_WORKERS ?= 2
test: lint
	scripts/test-services
	TUNEFORGE_TEST_POSTGRES_URL="$${TUNEFORGE_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}" \
	TUNEFORGE_TEST_CHROMIUM="$${TUNEFORGE_TEST_CHROMIUM:-$$(command -v chromium)}" \
	$(BIN)/python -m pytest --numprocesses $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .demo
