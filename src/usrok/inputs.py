"""What the book is built from, in one place: the Makefile's up-to-date check and page re-execution.

Two questions, one model of inputs:

- **Has anything the book is built from changed since the last successful build?**
  (``make book`` skips Sphinx when not.) The book's inputs are the repository's files (committed,
  or new and not ignored) except ``tests/``, ``bench/`` and ``.ci/``; ``make book`` records their
  SHA-256 digests before a build (``python -m usrok.inputs record FILE``) and compares them
  before the next (``python -m usrok.inputs changed FILE`` prints the first changed file).

- **Which pages must be executed again?** myst-nb's cache keys a notebook on its own code only,
  so a page whose code reads a file that changed (a CSV, a GeoJSON, an exercise master, a file
  beside it) would keep stale outputs. Page inputs are *discovered*, not declared: while the book
  is built, each page's kernel records every repository file its code opens (a Python audit
  hook installed when ``usrok`` is imported, see :func:`record_reads`), the ``usrok`` modules it
  imports included, and the Sphinx extension (:func:`setup`, loaded by ``usrok.book``) stores
  those files' digests with the page (so editing ``usrok/book.py``, which no page imports,
  re-executes nothing). Before the next build, a page whose recorded inputs
  changed is re-read and its cached execution dropped, so it runs again; other pages keep their
  cache (editing one chapter's prose re-executes nothing else).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

# Not inputs of the book: the test suite, the benchmark, CI.
NOT_BOOK_INPUTS = ("tests/", "bench/", ".ci/")
# Set (by the Sphinx extension) in the environment a page's kernel starts with: the file
# where the kernel lists what it reads.
READS_LOG_ENV = "USROK_READS_LOG"
READS_ROOT_ENV = "USROK_READS_ROOT"  # the book's source folder: only files under it are inputs
PACKAGE = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The repository this package belongs to (the folder above ``src/usrok``)."""
    return PACKAGE.parents[1]


def digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:  # missing (deleted, renamed) or unreadable
        return None


# ----------------------------------------------------------------------------- the whole book
def book_inputs(root: Path | None = None) -> list[str] | None:
    """Files the book is built from, relative to the root; None outside a git checkout."""
    root = root or repo_root()
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted(f for f in listed.split("\0")
                  if f and not f.startswith(NOT_BOOK_INPUTS) and (root / f).is_file())


def book_digests(root: Path | None = None) -> dict[str, str | None] | None:
    root = root or repo_root()
    files = book_inputs(root)
    return None if files is None else {f: digest(root / f) for f in files}


def changed_inputs(manifest: Path, root: Path | None = None) -> list[str]:
    """Book inputs added, removed or changed since ``manifest`` was recorded (all of them when
    there is no manifest or no git checkout: then the book is always built)."""
    now = book_digests(root)
    try:
        before = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = None
    if now is None or before is None:
        return ["(no record of the last build)"]
    return sorted(f for f in set(now) | set(before) if now.get(f) != before.get(f))


def record_manifest(manifest: Path, root: Path | None = None) -> None:
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(book_digests(root) or {}, indent=0, sort_keys=True), encoding="utf-8")


# ----------------------------------------------------------------------------- inside a page's kernel
def _is_page_input(path: Path, root: Path) -> bool:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return False
    skip = {"_build", ".venv", "__pycache__", ".ipynb_checkpoints", ".git", "node_modules"}
    return not skip.intersection(rel.parts) and path.is_file()


def record_reads(log: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """List, in ``log``, every file under ``root`` (default: the repository) this process opens
    for reading from now on.

    Called when ``usrok`` is imported in a kernel the book build started (``USROK_READS_LOG`` is
    set). Python's ``open`` audit event covers ``open()``, ``Path.read_*``, pandas and json
    readers alike; each file is written once, as soon as it is first read.
    """
    root = Path(root).resolve() if root else repo_root()
    log = Path(log)
    seen: set[str] = set()
    busy = []

    def note(full: Path) -> None:
        if str(full) in seen:
            return
        seen.add(str(full))
        if _is_page_input(full, root):
            busy.append(1)
            try:
                with open(log, "a", encoding="utf-8") as out:
                    out.write(full.relative_to(root).as_posix() + "\n")
            finally:
                busy.clear()

    def hook(event, args):
        if event != "open" or busy or not args:
            return
        path, mode = args[0], args[1] if len(args) > 1 else None
        if not isinstance(path, (str, os.PathLike)) or (mode and any(c in mode for c in "wax+")):
            return
        full = Path(os.path.abspath(os.fspath(path)))
        if full.parent.name == "__pycache__" and full.suffix == ".pyc":
            # An import read the module's byte code: the module's source is the input.
            full = full.parent.parent / (full.name.split(".")[0] + ".py")
        note(full)

    sys.addaudithook(hook)
    # Modules of the package imported before the hook (usrok/__init__.py, this module).
    for module in list(sys.modules.values()):
        if (getattr(module, "__name__", "") or "").split(".")[0] == "usrok" and getattr(module, "__file__", None):
            note(Path(module.__file__).resolve())


# ----------------------------------------------------------------------------- the Sphinx extension
def _log_of(app, docname: str) -> Path:
    return Path(app.doctreedir) / "usrok-reads" / (docname.replace("/", "--") + ".txt")


def _recorded(env) -> dict[str, dict[str, str | None]]:
    if not hasattr(env, "usrok_page_inputs"):
        env.usrok_page_inputs = {}
    return env.usrok_page_inputs


def _start(app) -> None:
    folder = Path(app.doctreedir) / "usrok-reads"
    # The first build that records page inputs: cached executions have no record, so every
    # page is read and executed once.
    app.usrok_record_all = not folder.is_dir()
    if app.usrok_record_all:
        _forget_all_executions(app)
    folder.mkdir(parents=True, exist_ok=True)


def _before_read(app, docname, source) -> None:
    """The page's kernel (started while myst-nb reads the page) inherits this variable."""
    log = _log_of(app, docname)
    log.unlink(missing_ok=True)
    if "{code-cell}" not in source[0]:  # runs no code (any more): nothing it reads is a page input
        _recorded(app.env).pop(docname, None)
    os.environ[READS_LOG_ENV] = str(log)
    os.environ[READS_ROOT_ENV] = str(Path(app.srcdir).resolve())


def _after_read(app, doctree) -> None:
    os.environ.pop(READS_LOG_ENV, None)
    os.environ.pop(READS_ROOT_ENV, None)
    docname = app.env.docname
    log = _log_of(app, docname)
    if not log.exists():  # not executed: no code, or myst-nb used its cache (record kept)
        return
    root = Path(app.srcdir)
    files = set(log.read_text(encoding="utf-8").split())
    _recorded(app.env)[docname] = {f: digest(root / f) for f in sorted(files)}
    log.unlink()


def stale_pages(env, root: Path, changed: set[str] | None = None) -> dict[str, list[str]]:
    """Pages whose recorded inputs changed: ``{docname: [changed files]}``.

    ``changed`` names files to treat as changed (what-if, for tests); otherwise each recorded
    digest is compared with the file on disk.
    """
    out = {}
    for docname, inputs in sorted(_recorded(env).items()):
        if docname not in env.found_docs:
            continue
        if changed is not None:
            hits = sorted(set(inputs) & changed)
        else:
            hits = [f for f, d in inputs.items() if digest(root / f) != d]
        if hits:
            out[docname] = hits
    return out


def _outdated(app, env, added, changed, removed):
    if getattr(app, "usrok_record_all", False):
        return sorted(env.found_docs)
    stale = stale_pages(env, Path(app.srcdir))
    for docname, files in stale.items():
        logger().info(f"[usrok] {docname}: {', '.join(files[:3])}{' ...' if len(files) > 3 else ''} "
                      "changed: executing it again")
        _forget_execution(app, docname)
    return sorted(stale)


def cache_path(app) -> Path:
    """Where myst-nb keeps executed notebooks (its own rule: the configured path, else
    ``.jupyter_cache`` beside the output folder)."""
    configured = getattr(getattr(app.env, "mystnb_config", None), "execution_cache_path", None)
    return Path(configured) if configured else Path(app.outdir).parent / ".jupyter_cache"


def _cache(app):
    if not cache_path(app).exists():
        return None
    from jupyter_cache import get_cache

    return get_cache(str(cache_path(app)))


def _forget_execution(app, docname: str) -> None:
    """Drop the page's cached outputs, so myst-nb executes it instead of reusing them."""
    cache = _cache(app)
    if cache is None:
        return
    source = Path(app.env.doc2path(docname)).resolve()
    for record in cache.list_cache_records():
        if Path(record.uri).resolve() == source:
            cache.remove_cache(record.pk)


def _forget_all_executions(app) -> None:
    cache = _cache(app)
    if cache is not None:
        cache.clear_cache()


def _merge(app, env, docnames, other) -> None:
    _recorded(env).update({d: v for d, v in _recorded(other).items() if d in docnames})


def logger():
    from sphinx.util import logging

    return logging.getLogger(__name__)


def setup(app):
    app.connect("builder-inited", _start)
    app.connect("source-read", _before_read)
    app.connect("doctree-read", _after_read)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-merge-info", _merge)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}


# ----------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    """``record FILE``: write the book inputs' digests; ``changed FILE``: exit 1 and name the
    first input changed since FILE was recorded, exit 0 when none did."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("record", "changed"):
        print("usage: python -m usrok.inputs record|changed MANIFEST", file=sys.stderr)
        return 2
    manifest = Path(args[1])
    if args[0] == "record":
        record_manifest(manifest)
        return 0
    changed = changed_inputs(manifest)
    if changed:
        print(changed[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
