# The two commands of the README. Each sets up what it needs first (scripts/setup.sh).
VENV ?= .venv
RUN ?= runs/main
BIN = $(VENV)/bin

.PHONY: setup main test

setup:
	@bash scripts/setup.sh $(VENV)

# Pretrain on Fashion-MNIST with default settings, then probe against both baselines.
main: setup
	rm -rf $(RUN)
	$(BIN)/anymae pretrain --data fashion-mnist --out $(RUN)
	$(BIN)/anymae probe --checkpoint $(RUN)

# Lint and the fast test suite (tests marked slow are left out).
test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q
