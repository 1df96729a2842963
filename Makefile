# Two commands do all the set-up on a fresh machine:
#   make run    set up .venv and start the app on the embedded default
#   make test   set up .venv and run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench venv clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/flask --app wsgi screening --help
	$(BIN)/flask --app wsgi screening check-rules
	$(BIN)/flask --app wsgi screening evaluate examples/defer.json

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_rules.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
