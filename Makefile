# gan_lab — every target creates .venv and installs the project on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow lint docs bench gpu-check clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## The ring8 mode-collapse study: every objective x 4 seeds, report in runs/ring8-demo/.
demo: $(STAMP)
	WANDB_SILENT=true $(BIN)/gan-lab study experiments/studies/ring8.yaml

## The whole default test suite (slow-marked tests excluded; `make test-slow` runs them).
test: $(STAMP)
	WANDB_SILENT=true $(BIN)/pytest -q -m "not slow"

test-slow: $(STAMP)
	WANDB_SILENT=true $(BIN)/pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check gan_lab tests benchmarks
	$(BIN)/ruff format --check gan_lab tests benchmarks

## The docs site (MkDocs Material + mkdocstrings) into build/site/, strictly: a broken link or a stale
## API reference fails (tests/test_docs.py builds it the same way in `make test`). Offline.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

## The lab's step against a hand-written PyTorch loop (JSON: steps/s, samples/s, ratio); benchmarks/
## is a developer folder in the repo, not installed with gan_lab.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench --device cpu

## GPU checks (bf16/16-mixed fits, penalty equivalence, bench on CUDA), JSON, < 8 min on one GPU.
## No $(STAMP): the GPU machine has torch + lightning but no internet, wandb or kornia.
GPU_PY := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
gpu-check:
	$(GPU_PY) -m benchmarks.gpu_check

clean-venv:
	rm -rf $(VENV)
