# Two entry points from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000
BUILD  ?= build

NODE_STAMP := node_modules/.installed

.PHONY: install browser demo build test bench screenshots clean

install: $(STAMP) $(NODE_STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# axe-core, for the accessibility test (tests/test_accessibility.py); versions pinned in package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  echo "Installation de npm (paquet Debian) pour axe-core..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Browser tests drive Debian's chromium; install it when it is missing (needs root, as in CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installation de chromium (paquet Debian) pour les tests navigateur..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

build: $(STAMP)
	$(BIN)/catalogue build --build $(BUILD)

demo: $(STAMP)
	$(BIN)/catalogue build --build $(BUILD)
	@echo "Catalogue de démonstration : http://localhost:$(PORT)/"
	$(BIN)/catalogue serve --build $(BUILD) --host 127.0.0.1 --port $(PORT)

test: install browser
	$(BIN)/python -m pytest -q

screenshots: install browser
	$(BIN)/python tools/screenshots.py

clean:
	rm -rf $(BUILD) $(VENV) .pytest_cache node_modules
