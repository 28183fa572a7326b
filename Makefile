# The two commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.freshet-installed

.PHONY: install demo test lint bench clean

# scripts/install.sh is the one install script (docker/Dockerfile runs it too).
$(STAMP): requirements/lock.txt pyproject.toml scripts/install.sh jvm/pom.xml jvm/broker/pom.xml jvm/flink/pom.xml
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/install.sh
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/freshet demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Everything, fault injection and soak included (.ci/run calls this).
test: $(STAMP) lint
	$(PY) -m pytest -q --durations=15

clean:
	rm -rf .freshet .pytest_cache
