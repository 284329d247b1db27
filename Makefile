# The two README commands: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install kafka-up kafka-down clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/spendsentry demo

test: $(STAMP)
	$(BIN)/spendsentry kafka up
	$(BIN)/python -m pytest

kafka-up: $(STAMP)
	$(BIN)/spendsentry kafka up

kafka-down: $(STAMP)
	$(BIN)/spendsentry kafka down

clean:
	-$(BIN)/spendsentry kafka down
	rm -rf $(VENV) .kafka .spendsentry
