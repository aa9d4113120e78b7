# The README's two commands: `make run` and `make test`.
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export RASA_TELEMETRY_ENABLED := false
export ACTION_ENDPOINT_URL ?= http://localhost:5055/webhook
# `make run` is the embedded demo: demo nurse account, and a fresh secret for Rasa's HTTP API.
run: export DEMO_MODE ?= true
run: export RASA_TOKEN ?= $(shell od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test

run: $(VENV)/.installed
	clinic db upgrade
	clinic seed --history-weeks 8
	RASA_MODEL=$$(clinic train) && export RASA_MODEL && eval "$$(clinic env)" && \
	echo "Patient's phone (WhatsApp sandbox): http://localhost:5070/" && \
	echo "Nurse inbox: http://localhost:$$INBOX_PORT/ (demo-nurse / demo-nurse-password; KPI dashboard: demo-admin / demo-admin-password)" && \
	echo "WhatsApp webhook (ingest, the sandbox posts here): http://localhost:$$WHATSAPP_INGEST_PORT/webhooks/whatsapp/webhook" && \
	echo "Rasa REST channel: http://localhost:5005/webhooks/rest/webhook" && \
	honcho start -f Procfile

test: $(VENV)/.installed $(CHROMIUM)
	pytest

# Browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
$(CHROMIUM):
	$(SUDO) apt-get install -y -qq chromium || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# A Python 3.10 interpreter (Rasa 3.6 runs on 3.8-3.10 only): PATH first, then pyenv's.
$(VENV)/bin/python:
	@py=""; for c in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do \
	  if "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then py=$$c; break; fi; \
	done; \
	if [ -z "$$py" ]; then \
	  echo "Python 3.10 not found. Rasa 3.6 needs Python 3.10: install it with 'pyenv install 3.10' (or Debian/Ubuntu: 'apt-get install python3.10 python3.10-venv'), then run make again." >&2; \
	  exit 1; \
	fi; \
	echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV)

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@
