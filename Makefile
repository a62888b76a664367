# sparktf developer targets. Every target does its own set-up and is safe to re-run.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export SPARK_LOCAL_IP := 127.0.0.1
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup test test-multihost demo bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@v=$$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -n1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  echo "sparktf needs Java 17 or newer (found: $${v:-none})."; \
	  echo "Install it, e.g.: sudo apt-get install openjdk-17-jre-headless"; exit 1; fi
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q

# master and two workers in network and mount namespaces (needs root; skipped otherwise)
test-multihost: setup
	$(PY) -m pytest -q -m multihost tests/test_multihost.py

demo: setup
	$(PY) examples/mnist/demo.py

bench: setup
	$(PY) bench/run.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf build dist *.egg-info .pytest_cache spark-warehouse demo-output
