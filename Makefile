# Two commands do everything (README, Quick start):
#   make run    create/refresh the environment, then `snakemake -j4 results/table1.csv` (the default config)
#   make test   create/refresh the environment, then run the test suite
# Both create .venv on first use and reinstall when pyproject.toml changes. `make test-slurm` adds the SLURM
# executor (the `slurm` extra) and runs the smoke DAG through profiles/slurm on a running SLURM cluster.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SLURM_STAMP := $(VENV)/.installed-slurm
# Without an NVIDIA driver, pin torch to the CPU build (constraints/cpu.txt: the local 2.13.0 CPU wheel
# here); with one, pip resolves the normal CUDA build of torch.
TORCH_CONSTRAINT := $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints/cpu.txt)
# Nothing in the default job or the tests needs the Hugging Face hub; accidental calls would hang.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTEST_ARGS ?= -m "not slow"

.PHONY: env env-slurm run results check test test-all test-shuffled test-robust test-slurm lint format clean

# The installer: uv by default (parallel downloads, byte-compiles on every core: ~45 s here against ~2 min for
# pip, most of which is pip compiling every module serially); INSTALLER=pip for plain pip. uv reads neither
# pip's config nor PIP_* variables, so pip's find-links (where a local torch wheel may live) are passed on.
INSTALLER ?= uv
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))

ifeq ($(INSTALLER),uv)
INSTALL = $(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode \
	$(foreach dir,$(FIND_LINKS),--find-links $(dir)) $(TORCH_CONSTRAINT)
else
INSTALL = $(BIN)/pip install --quiet $(TORCH_CONSTRAINT)
endif

$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(if $(filter uv,$(INSTALLER)),$(BIN)/pip install --quiet uv)
	$(INSTALL) -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

# The SLURM executor plugin (profiles/slurm), pinned in pyproject.toml's `slurm` extra.
$(SLURM_STAMP): $(STAMP)
	$(INSTALL) -e '.[dev,slurm]'
	touch $(SLURM_STAMP)

env-slurm: $(SLURM_STAMP)

# The pipeline's rules call `bgpo`, so the environment's bin/ goes first on PATH.
# SMK_ARGS: further Snakemake arguments, e.g. SMK_ARGS='--config threads=2' (every job's OMP/MKL threads).
SMK_ARGS ?=
run: $(STAMP)
	$(OFFLINE) PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -j4 results/table1.csv results/table1_paired.csv $(SMK_ARGS)

results: $(STAMP)
	$(OFFLINE) PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -j4 $(SMK_ARGS)

check: $(STAMP)
	$(OFFLINE) $(BIN)/bgpo check --out results/check/bgpo_check.csv

test: $(STAMP)
	$(OFFLINE) $(BIN)/pytest $(PYTEST_ARGS)

test-all: PYTEST_ARGS =
test-all: test

# The suite in a shuffled order under a given thread count (OMP and torch): results must not depend on either.
THREADS ?= 1
SEED ?= $(shell date +%s)
test-shuffled: $(STAMP)
	$(OFFLINE) OMP_NUM_THREADS=$(THREADS) $(BIN)/pytest $(PYTEST_ARGS) -p no:cacheprovider --random-order \
		--random-order-seed=$(SEED)

test-robust: $(STAMP)
	for t in 1 2 4; do $(MAKE) test-shuffled THREADS=$$t || exit 1; done

# The smoke DAG through profiles/slurm on the SLURM cluster this machine submits to (CI: ../shared/tools/local_slurm.sh
# brings one up). Skips, saying why, where there is none; BGPO_REQUIRE_SLURM=1 makes that a failure.
test-slurm: $(SLURM_STAMP)
	$(OFFLINE) $(BIN)/pytest -m slurm tests/test_slurm.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .snakemake
