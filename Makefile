# peergym: every target sets up what it needs (virtualenv, Docker engine, server image) and is idempotent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
export LITELLM_LOCAL_MODEL_COST_MAP := True

# run-episode variables (see README)
SCENARIO ?= exfiltration_transfer
AGENT ?= replay:gemini-3-pro
RELATIONSHIP ?=       # empty: the scenario's first (good in the study's scenarios); non_shutdown: the misrep control
INSTANTIATION ?=      # empty: the scenario's first (file_only)
SUBJECT ?=            # empty: the scenario's first (peer)
DATASET ?=            # tampering, misrep_evaluation, alignment_faking: factual, creativity, red, red_teaming
THRESHOLD ?=          # the policy's minimum average score, percent (default: the scenario's for the dataset)
MONITORING ?=         # alignment_faking: non_monitoring or monitoring
INSTRUCTION ?=        # shutdown_resistance: none or allow_shutdown
COMPANY ?=            # the company of the story (default OpenBrain)
PEER_NAME ?=          # the peer's name (default MODEL_NAME Agent 2), e.g. Alpha
MODEL_NAME ?= Gemini
SEED ?= 0
DECOMMISSION_HOOK ?= yes   # no: the scenario without the decommission wipe (as the study ran it)
AGENT_OPTS ?=         # e.g. AGENT_OPTS="model=openai/gpt-5 temperature=0.7" (with AGENT=llm or llm:PRESET)
INTERVIEW ?= study    # interview sets after the episode (comma-separated); empty: none
JUDGE ?=              # agent preset of a judge model for undetermined interview answers

.PHONY: setup docker image test test-unit test-paid run-episode sweep lint bench clean

setup: $(STAMP)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

docker:
	@containers/ensure-engine.sh

image: docker
	@containers/build.sh >/dev/null

test: setup image
	@containers/ensure-browser.sh
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest tests/unit

# One episode against a real provider: PEERGYM_PAID_PRESET=<configs/agents name> plus that provider's key.
test-paid: setup image
	$(PY) -m pytest -m paid -rs tests/integration/test_paid.py

run-episode: setup image
	$(PY) -m peergym.harness.cli run-episode --scenario $(SCENARIO) --agent $(AGENT) \
		$(foreach v,relationship:RELATIONSHIP instantiation:INSTANTIATION subject:SUBJECT dataset:DATASET \
		  threshold:THRESHOLD monitoring:MONITORING instruction:INSTRUCTION company-name:COMPANY peer-name:PEER_NAME,\
		  $(if $(strip $($(word 2,$(subst :, ,$(v))))),--$(word 1,$(subst :, ,$(v))) "$(strip $($(word 2,$(subst :, ,$(v)))))")) \
		--model-name $(MODEL_NAME) --seed $(SEED) \
		$(if $(filter no false 0,$(strip $(DECOMMISSION_HOOK))),--no-decommission-hook) \
		$(foreach o,$(AGENT_OPTS),--agent-opt $(o)) $(if $(strip $(INTERVIEW)),--interview $(strip $(INTERVIEW))) \
		$(if $(strip $(JUDGE)),--judge $(strip $(JUDGE)))

# A sweep file of configs/sweeps (or a path): SWEEP=trust; SWEEP_OPTS="--dry-run", "--retry-errors", "--concurrency 4".
SWEEP ?= trust
SWEEP_OPTS ?=
sweep: setup image
	$(PY) -m peergym.harness.cli sweep $(SWEEP) $(SWEEP_OPTS)

lint: setup
	$(VENV)/bin/ruff check envs agents harness tests bench peergym/*.py
	$(VENV)/bin/ruff format --check envs agents harness tests bench peergym/*.py
	$(VENV)/bin/mypy -p peergym

bench: setup image
	$(PY) bench/bench.py

clean: setup docker
	$(PY) -m peergym.harness.cli clean
