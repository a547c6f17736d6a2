"""`make book` skips Sphinx only when nothing the book is built from changed.

Run on a local clone with a stand-in environment whose `jupyter-book` only records that it
was called, so the test checks the Makefile's decision, not Sphinx (the real build is
tested in test_book.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(not shutil.which("git") or not shutil.which("make"),
                                reason="needs git and make")


@pytest.fixture
def clone(tmp_path):
    repo = tmp_path / "book"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    # Uncommitted edits to the Makefile and to usrok.inputs are what is under test.
    for name in ("Makefile", "src/usrok/inputs.py", "src/usrok/__init__.py"):
        shutil.copy2(ROOT / name, repo / name)
    fake = tmp_path / "venv"
    (fake / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    (fake / "bin" / "jupyter-book").write_text(
        f"#!/bin/sh\necho \"$@\" >> {calls}\n[ -z \"$FAIL_BUILD\" ]\n")
    # The real usrok.inputs of the clone decides; anything else (the assignments) has nothing to do.
    (fake / "bin" / "python").write_text(
        f'#!/bin/sh\nif [ "$1 $2" = "-m usrok.inputs" ]; then PYTHONPATH={repo / "src"} exec {sys.executable} "$@"; fi\n'
        "exit 0\n")
    for tool in ("jupyter-book", "python"):
        (fake / "bin" / tool).chmod(0o755)
    (fake / ".book-env").touch()  # newer than requirements.txt: no pip install
    return repo, fake, calls


def _make_book(repo, fake, **env) -> tuple[int, str]:
    result = subprocess.run(["make", "-s", "book", f"VENV={fake}"], cwd=repo, capture_output=True,
                            text=True, env={**os.environ, **env})
    return result.returncode, result.stdout + result.stderr


def _builds(calls) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def _edit(path):
    """Change the contents of `path` (the check compares digests, not dates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(path.read_text() + "\n" if path.exists() else "# New\n")


def test_make_book_rebuilds_exactly_when_an_input_changed(clone):
    repo, fake, calls = clone
    assert _make_book(repo, fake)[0] == 0 and _builds(calls) == 1, "first build must run Sphinx"
    code, out = _make_book(repo, fake)
    assert code == 0 and _builds(calls) == 1 and "up to date" in out, "nothing changed: no Sphinx run"

    for changed in ("chapters/03_after_the_cold_war.md", "data/rok_oda.csv", "src/usrok/chart_troops.py",
                    "_config.yml", "references.bib"):
        before = _builds(calls)
        _edit(repo / changed)
        _make_book(repo, fake)
        assert _builds(calls) == before + 1, f"editing {changed} did not rebuild the book"
        _make_book(repo, fake)
        assert _builds(calls) == before + 1, f"a second `make book` after editing {changed} rebuilt again"

    new_chapter = repo / "chapters" / "10_new.md"
    _edit(new_chapter)
    before = _builds(calls)
    _make_book(repo, fake)
    assert _builds(calls) == before + 1, "a new, not yet committed file must count as an input"

    # Files the book is not built from do not trigger a build.
    for unrelated in ("tests/test_book.py", "_build/html/index.html"):
        _edit(repo / unrelated)
    before = _builds(calls)
    _make_book(repo, fake)
    assert _builds(calls) == before, "tests/ and _build/ are not inputs of the book"


def test_a_failed_build_is_never_taken_for_an_up_to_date_one(clone):
    repo, fake, calls = clone
    code, _ = _make_book(repo, fake, FAIL_BUILD="1")
    assert code != 0 and _builds(calls) == 1
    _make_book(repo, fake)
    assert _builds(calls) == 2, "after a failed build the next `make book` must build again"


def test_outside_git_the_book_is_always_built(clone):
    repo, fake, calls = clone
    shutil.rmtree(repo / ".git")
    _make_book(repo, fake)
    _make_book(repo, fake)
    assert _builds(calls) == 2


def test_a_new_date_alone_does_not_rebuild(clone):
    """A checkout or `touch` that leaves a file's contents as they were is not a change."""
    repo, fake, calls = clone
    _make_book(repo, fake)
    chapter = repo / "chapters" / "03_after_the_cold_war.md"
    os.utime(chapter, (chapter.stat().st_atime + 60, chapter.stat().st_mtime + 60))
    code, out = _make_book(repo, fake)
    assert code == 0 and _builds(calls) == 1 and "up to date" in out
    chapter.write_text(chapter.read_text() + "x")
    chapter.write_text(chapter.read_text()[:-1])  # edited and put back: same contents
    _make_book(repo, fake)
    assert _builds(calls) == 1
