# Every target creates .venv itself when it is missing: torch==2.13.0 first (an
# unpinned torch pulls a multi-GB CUDA build), then simrl with its dev extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.simrl-installed

.PHONY: setup train test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The first thing to try: train PPO on SO-101 reach with the recipe's defaults, then evaluate it on 200 new goals.
train: $(STAMP)
	$(BIN)/simrl train reach --robot so101
	$(BIN)/simrl eval "$$(ls -td runs/so101-reach-* | head -1)" --episodes 200

# The default test suite: fast tests only (under 15 minutes on 2 cores).
test: $(STAMP)
	$(BIN)/python -m pytest -q

# Long training and benchmark checks (marked @pytest.mark.slow).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Env throughput against raw mujoco.rollout.
bench: $(STAMP)
	$(BIN)/simrl bench env --robot so101 --envs 4096 --backend cpu

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
