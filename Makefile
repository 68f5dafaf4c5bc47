# Two entry points from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000
BUILD  ?= build

.PHONY: install browser demo build test bench clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Browser tests drive Debian's chromium; install it when it is missing (needs root, as in CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installation de chromium (paquet Debian) pour les tests navigateur..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

build: install
	$(BIN)/catalogue build --build $(BUILD)

demo: install
	$(BIN)/catalogue build --build $(BUILD)
	@echo "Catalogue de démonstration : http://localhost:$(PORT)/"
	$(BIN)/catalogue serve --build $(BUILD) --host 127.0.0.1 --port $(PORT)

test: install browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(BUILD) $(VENV) .pytest_cache
