#!/usr/bin/env bash
# Install the course lock, requirements.txt, into the environment of the given Python, exactly as
# pinned: no dependency resolution (`pip install --no-deps`), so the environment is the lock.
# One installer for both places the course environment is made:
#   make book   tools/install_lock.sh .venv/bin/python                      (then `pip check`)
#   Binder      tools/install_lock.sh python --without-site-build           (binder/postBuild)
# Never installed: otter-grader's PDF export extra (nbconvert[webpdf] -> Playwright, 165 MB, and a
# browser it would download), which the course never uses.
# Not on Binder (--without-site-build): what only builds the website and the in-browser edition
# (minifiers, the icon-font subsetter, JupyterLite and what they alone need); students run the
# notebooks, they never build the site. 50 MB.
# tests/test_environment.py checks that nothing else needs the packages left out, that the student
# notebooks' imports work without them, and that Binder's environment stays under its size budget.
set -euo pipefail
PDF_EXPORT_ONLY="playwright greenlet"
SITE_BUILD_ONLY="fonttools rjsmin rcssmin jupyterlite-core jupyterlite-pyodide-kernel doit pkginfo"

python="${1:?usage: tools/install_lock.sh PYTHON [--without-site-build]}"
left_out="$PDF_EXPORT_ONLY"
if [ "${2:-}" = "--without-site-build" ]; then left_out="$left_out $SITE_BUILD_ONLY"; fi
cd "$(dirname "$0")/.."   # the lock's `-e .` line is the repository
course=$(mktemp)
trap 'rm -f "$course"' EXIT
grep -v -E "^($(tr ' ' '|' <<<"$left_out"))==" requirements.txt > "$course"
"$python" -m pip install -q --disable-pip-version-check --no-deps -r "$course"
