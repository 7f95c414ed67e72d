# Two commands do everything (README, Quick start):
#   make run    create/refresh the environment, then `snakemake -j4 results/table1.csv` (the default config)
#   make test   create/refresh the environment, then run the test suite
# Both create .venv on first use and reinstall when pyproject.toml changes.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Without an NVIDIA driver, pin torch to the CPU build (constraints/cpu.txt: the local 2.13.0 CPU wheel
# here); with one, pip resolves the normal CUDA build of torch.
TORCH_CONSTRAINT := $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints/cpu.txt)
# Nothing in the default job or the tests needs the Hugging Face hub; accidental calls would hang.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTEST_ARGS ?= -m "not slow"

.PHONY: env run results check test test-all lint format clean

$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_CONSTRAINT) -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

# The pipeline's rules call `bgpo`, so the environment's bin/ goes first on PATH.
run: $(STAMP)
	$(OFFLINE) PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -j4 results/table1.csv

results: $(STAMP)
	$(OFFLINE) PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -j4

check: $(STAMP)
	$(OFFLINE) $(BIN)/bgpo check --out results/check/bgpo_check.csv

test: $(STAMP)
	$(OFFLINE) $(BIN)/pytest $(PYTEST_ARGS)

test-all: PYTEST_ARGS =
test-all: test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .snakemake
