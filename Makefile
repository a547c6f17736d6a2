# Two commands for a fresh clone (see README):  make book   |   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BOOK_FLAGS := -W -n --keep-going

.PHONY: book test assignments browser sandbox clean bench

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

# Build the book into _build/html (open _build/html/index.html). Sphinx is not started when
# no file the book is built from (everything in git, or new and not ignored, except tests/
# and bench/) nor the environment changed since the last successful build. Outside a git
# checkout it always runs.
BUILT := _build/html/.usrok-built
BOOK_INPUTS := git ls-files -co --exclude-standard -- . ':!tests' ':!bench' ':!.ci'
FIRST_INPUT_NEWER_THAN_BUILD = { $(BOOK_INPUTS); echo $(VENV)/.book-env; } \
	| xargs -d '\n' sh -c 'find "$$@" -newer $(BUILT) 2>/dev/null' find | head -1
book: $(VENV)/.book-env assignments
	@if [ -f $(BUILT) ] && git rev-parse --git-dir >/dev/null 2>&1 \
	    && [ -z "$$($(FIRST_INPUT_NEWER_THAN_BUILD))" ]; then \
	  echo "Book up to date (no input changed since the last build): open _build/html/index.html"; \
	else \
	  mkdir -p _build/html && touch $(BUILT).next && \
	  $(BIN)/jupyter-book build . $(BOOK_FLAGS) && mv $(BUILT).next $(BUILT) && \
	  echo "Book built: open _build/html/index.html"; \
	fi

# Debian's chromium and the npm axe-core used by the browser tests.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	test -d node_modules/axe-core || npm ci --no-audit --no-fund

# Debian's bubblewrap: the sandbox the batch grader runs each submission in (python -m usrok.grading).
sandbox:
	command -v bwrap >/dev/null || (apt-get update -qq && apt-get install -y -qq bubblewrap)

# The whole test suite: build, data, charts in a real browser, grading, leakage, accessibility.
test: $(VENV)/.test-env browser sandbox book
	$(BIN)/python -m pytest tests

bench: $(VENV)/.test-env browser
	$(BIN)/python bench/run.py

clean:
	rm -rf _build exercises/*/dist
