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

.PHONY: install lock demo test lint format clean gpu-wheels

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
	$(BIN)/python -m pytest --numprocesses $(TEST_WORKERS) --dist loadfile --durations 25

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .demo

# Wheels that benchmarks/gpu_check.sh installs on a GPU machine without a package registry, whose
# Python 3.12 already has torch, transformers, peft and accelerate (benchmarks/README.md): the
# lock's versions of what else the engine and the benchmarks import, and liger-kernel (GPU only,
# so not in the lock). What travels with a call to that machine is 64 MiB with the working tree,
# so the wheels must stay under 56.
GPU_WHEELS := .whl
GPU_WHEEL_PACKAGES := trl datasets dill multiprocess pydantic pydantic-core pydantic-settings \
	annotated-types typing-inspection python-dotenv bitsandbytes
LIGER_KERNEL_VERSION := 0.8.5
GPU_PLATFORMS := $(foreach n,2_28 2_27 2_24 2_17,--platform manylinux_$(n)_x86_64) \
	--platform manylinux2014_x86_64 --platform manylinux1_x86_64
gpu-wheels:
	mkdir -p $(GPU_WHEELS)
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp $(GPU_PLATFORMS) --dest $(GPU_WHEELS) \
		$$(for p in $(GPU_WHEEL_PACKAGES); do grep -i "^$$p==" $(LOCK); done) \
		"liger-kernel==$(LIGER_KERNEL_VERSION)"
	@du -cb $(GPU_WHEELS)/*.whl | tail -1 | awk '{ printf "gpu wheels: %.1f MiB\n", $$1 / 2^20; \
		if ($$1 > 56 * 2^20) { print "over the 56 MiB they may take"; exit 1 } }'
