# Crewclock: `make run` starts everything, `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
SANDBOX_PORT ?= 5001
export FLASK_APP := webapp

.PHONY: run test bench lint format sandbox worker clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo --if-empty
	@echo ""
	@echo "  Crewclock:        http://127.0.0.1:$(PORT)"
	@echo "  Log in as:        admin@example.com / $${DEMO_ADMIN_PASSWORD:-demo-password}"
	@echo "  Procore sandbox:  http://127.0.0.1:$(SANDBOX_PORT)  (any seeded user, password 'sandbox')"
	@echo "  Ctrl-C stops everything."
	@echo ""
	CREWCLOCK_EXTERNAL_REDIS=$${REDIS_URL:+1} \
	  PATH="$(CURDIR)/$(BIN):$$PATH" WEB_PORT=$(PORT) SANDBOX_PORT=$(SANDBOX_PORT) \
	  REDIS_URL="$${REDIS_URL:-redis://127.0.0.1:$${EMBEDDED_REDIS_PORT:-6380}/0}" \
	  PROCORE_LOGIN_URL="$${PROCORE_LOGIN_URL:-http://127.0.0.1:$(SANDBOX_PORT)}" \
	  PROCORE_API_URL="$${PROCORE_API_URL:-http://127.0.0.1:$(SANDBOX_PORT)}" \
	  PROCORE_REDIRECT_URI="$${PROCORE_REDIRECT_URI:-http://127.0.0.1:$(PORT)/settings/integrations/procore/callback}" \
	  SANDBOX_REDIRECT_URIS="$${PROCORE_REDIRECT_URI:-http://127.0.0.1:$(PORT)/settings/integrations/procore/callback}" \
	  $(BIN)/honcho start -f Procfile

test: $(VENV)/.installed-dev
	$(BIN)/pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

sandbox: $(VENV)/.installed
	$(BIN)/python -m procore_sandbox --port $(SANDBOX_PORT) --seed demo

worker: $(VENV)/.installed
	$(BIN)/python worker.py

clean:
	rm -rf $(VENV) instance .pytest_cache
