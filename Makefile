# Two commands for a fresh clone (see README):  make book   |   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BOOK_FLAGS := -W -n --keep-going

.PHONY: book test assignments browser sandbox clean bench lock lint edition

# The course environment: exactly the packages pinned in requirements.txt (the lock file, compiled
# from requirements.in by `make lock`), installed as listed, without dependency resolution, so the
# environment is the lock. A new lock starts from an empty environment (nothing stale stays).
# tools/install_lock.sh is the one installer (Binder's binder/postBuild runs it too); it leaves out
# otter-grader's PDF export extra (Playwright, 165 MB), which the course never uses.
COURSE_PYTHON := $(subst python-,,$(shell cat binder/runtime.txt))
$(VENV)/.book-env: requirements.txt pyproject.toml tools/install_lock.sh
	@if [ ! -x $(BIN)/python ] || echo "$?" | grep -q requirements.txt; then \
	  echo "Creating $(VENV) from requirements.txt"; $(PYTHON) -m venv --clear $(VENV); fi
	tools/install_lock.sh $(BIN)/python
	$(BIN)/pip check -q --disable-pip-version-check
	touch $@

# Test and maintenance tools on top (requirements-test.txt, compiled from requirements-test.in):
# pytest, Playwright for Python (it drives Debian's chromium), ruff, uv.
$(VENV)/.test-env: $(VENV)/.book-env requirements-test.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -r requirements-test.txt
	$(BIN)/pip check -q --disable-pip-version-check
	touch $@

# Refresh the lock files after editing requirements.in or requirements-test.in (add a package:
# one line in the .in file, then `make lock`). Unchanged pins are kept; `make lock UPGRADE=1`
# moves every package to its newest allowed version. Resolved for every platform (markers) with
# the Python of binder/runtime.txt; needs PyPI. Commit the .in and .txt files together.
UV_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version $(COURSE_PYTHON) \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
# A lock file is replaced only when its text changes (a new date would rebuild .venv).
lock: $(VENV)/.test-env
	@for name in requirements requirements-test; do \
	  cp $$name.txt $(VENV)/$$name.lock && \
	  $(UV_COMPILE) $$name.in -o $(VENV)/$$name.lock && \
	  { cmp -s $(VENV)/$$name.lock $$name.txt && echo "$$name.txt unchanged" \
	    || { mv $(VENV)/$$name.lock $$name.txt && echo "$$name.txt updated"; }; } || exit 1; \
	done

# The linter (rules in pyproject.toml: [tool.ruff]).
lint: $(VENV)/.test-env
	$(BIN)/ruff check --no-cache .

# Student notebooks and autograder zips from the masters in exercises/.
assignments: $(VENV)/.book-env
	$(BIN)/python exercises/build_assignments.py

# Build the book into _build/html (open _build/html/index.html). Sphinx is not started when no
# file the book is built from changed since the last successful build: usrok.inputs keeps the
# list (every file in git, or new and not ignored, except tests/, bench/ and .ci/) and compares
# digests. Outside a git checkout it always builds. Inside the build, usrok.inputs also re-runs
# exactly the pages whose code reads a changed file.
BUILT := _build/html/.usrok-built
book: $(VENV)/.book-env assignments
	@if [ -f $(BUILT) ] && changed=$$($(BIN)/python -m usrok.inputs changed $(BUILT)); then \
	  echo "Book up to date (no input changed since the last build): open _build/html/index.html"; \
	else \
	  echo "Building the book$${changed:+ ($$changed changed)}"; \
	  mkdir -p _build/html && $(BIN)/python -m usrok.inputs record $(BUILT).next && \
	  $(BIN)/jupyter-book build . $(BOOK_FLAGS) && mv $(BUILT).next $(BUILT) && \
	  echo "Book built: open _build/html/index.html"; \
	fi

# The in-browser edition alone, into _build/html/lite (the book's build makes it too; lite/build.py).
edition: $(VENV)/.book-env
	$(BIN)/python lite/build.py

# Debian's chromium and the npm axe-core used by the browser tests.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	test -d node_modules/axe-core || npm ci --no-audit --no-fund

# Debian's bubblewrap: the sandbox the batch grader runs each submission in (python -m usrok.grading).
sandbox:
	command -v bwrap >/dev/null || (apt-get update -qq && apt-get install -y -qq bubblewrap)

# The whole test suite: lint, build, data, charts in a real browser, grading, leakage,
# accessibility. `$(BIN)/python -m pytest -m "not book"` runs the fast tests only (no book build).
# Two workers (pytest-xdist), whole files per worker: tests/conftest.py says how they are shared.
test: $(VENV)/.test-env lint browser sandbox book
	$(BIN)/python -m pytest tests -n 2 --dist loadfile

# The benchmark (bench/README.md). Lighthouse alone, on the current build:
#   $(BIN)/python bench/run.py --lighthouse-only
bench: $(VENV)/.test-env browser
	test -x node_modules/.bin/lighthouse || npm ci --no-audit --no-fund
	$(BIN)/python bench/run.py

clean:
	rm -rf _build exercises/*/dist
