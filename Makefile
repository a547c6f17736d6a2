# Two commands for a fresh clone (see README):  make book   |   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BOOK_FLAGS := -W -n --keep-going

.PHONY: book test assignments browser clean bench

# The course environment (requirements.txt, as on Binder).
$(VENV)/.book-env: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# Test tools on top: pytest, Playwright for Python (it drives Debian's chromium).
$(VENV)/.test-env: $(VENV)/.book-env requirements-test.txt
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-test.txt
	touch $@

# Student notebooks and autograder zips from the masters in exercises/.
assignments: $(VENV)/.book-env
	$(BIN)/python exercises/build_assignments.py

# Build the book into _build/html (open _build/html/index.html).
book: $(VENV)/.book-env assignments
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)
	@echo "Book built: open _build/html/index.html"

# Debian's chromium and the npm axe-core used by the browser tests.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	test -d node_modules/axe-core || npm ci --no-audit --no-fund

# The whole test suite: build, data, charts in a real browser, grading, leakage, accessibility.
test: $(VENV)/.test-env browser book
	$(BIN)/python -m pytest tests

bench: $(VENV)/.test-env browser
	$(BIN)/python bench/run.py

clean:
	rm -rf _build exercises/*/dist
