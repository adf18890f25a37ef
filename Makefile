# eraft-twisted developer commands. `make test` and `make run` set everything up.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
SECONDS ?= 180
CRASHES ?= 50

.PHONY: install test test-fast lint run bench cluster cluster-stop jepsen jepsen-cluster jepsen-collections clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/trial tests

# The in-process tier: no process started, no real socket, simulated time
# (in-process clusters from eraft_twisted/testing/cluster.py); a sample of
# the randomized Raft simulation's seeds. Under a minute, for every edit.
FAST_TESTS = tests.raft tests.node tests.shard tests.server \
	tests.storage.test_layout tests.storage.test_log_cache tests.storage.test_log_semantics \
	tests.storage.test_power_loss tests.storage.test_writer \
	tests.resp.test_commands tests.resp.test_encoder tests.resp.test_limits \
	tests.resp.test_parser tests.resp.test_parser_properties tests.resp.test_protocol \
	tests.kv.test_statemachine tests.kv.test_store \
	tests.meta.test_app tests.meta.test_config tests.meta.test_http tests.meta.test_peer \
	tests.kdb.test_config tests.kdb.test_router \
	tests.ctl.test_group_commands tests.ctl.test_meta_commands tests.ctl.test_progress \
	tests.test_layers tests.test_hashslot tests.test_linearizability tests.test_tap_options

test-fast: $(STAMP)
	ERAFT_SIM_SEEDS=$${ERAFT_SIM_SEEDS:-40} ERAFT_POWER_SEEDS=$${ERAFT_POWER_SEEDS:-8} \
		$(BIN)/trial $(FAST_TESTS)

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

jepsen-collections: $(STAMP)
	$(BIN)/python bench/jepsen_collections.py --seconds $(SECONDS)

bench: $(STAMP)
	$(BIN)/python bench/raft_core.py

clean:
	rm -rf $(VENV) _trial_temp build *.egg-info
