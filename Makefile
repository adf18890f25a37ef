# eraft-twisted developer commands. `make test` and `make run` set everything up.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
SECONDS ?= 180
CRASHES ?= 50

.PHONY: install test lint run bench cluster cluster-stop jepsen jepsen-cluster clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/trial tests

lint: $(STAMP)
	$(BIN)/ruff check eraft_twisted tests bench twisted
	$(BIN)/mypy eraft_twisted

run: $(STAMP)
	$(BIN)/twistd -n --pidfile= eraftkv

cluster: $(STAMP)
	$(BIN)/python -m eraft_twisted.devcluster start --groups 2

cluster-stop: $(STAMP)
	$(BIN)/python -m eraft_twisted.devcluster stop

jepsen: $(STAMP)
	$(BIN)/python bench/jepsen.py --seconds $(SECONDS) --crash-loop $(CRASHES)

jepsen-cluster: $(STAMP)
	$(BIN)/python bench/jepsen_cluster.py --seconds $(SECONDS)

bench: $(STAMP)
	$(BIN)/python bench/raft_core.py

clean:
	rm -rf $(VENV) _trial_temp build *.egg-info
