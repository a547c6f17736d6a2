"""Byte-compile wheels for the in-browser edition. Runs INSIDE Pyodide (Python 3.12, under Node.js).

Called by lite/build.py as ``main(inputs, outputs)``: every ``*.whl`` in ``inputs`` is written to
``outputs`` under the same name with

- each module compiled to Python 3.12 bytecode in place of its source (``x.py`` -> ``x.pyc``,
  as Pyodide's own distribution ships its packages): a module then loads without being
  compiled in the student's browser, which halves the time pandas, Altair and IPython take
  to import there;
- test folders (``<package>/.../tests/``) left out: nothing imports them, and they are large.

The bytecode is "unchecked hash-based" (no timestamps), entries are written in name order
with fixed dates, so the same wheel always gives the same bytes.
"""

import os
import py_compile
import tempfile
import zipfile

SITE = "/lib/python3.12/site-packages"  # where Pyodide installs a wheel: shown in tracebacks
EPOCH = (1980, 1, 1, 0, 0, 0)


def is_test_file(name: str) -> bool:
    parts = name.split("/")
    return not parts[0].endswith((".dist-info", ".data")) and any(p in ("tests", "test") for p in parts[1:-1])


def compile_wheel(src: str, dst: str, work: str) -> None:
    files = {}
    with zipfile.ZipFile(src) as wheel:
        for info in wheel.infolist():
            name = info.filename
            if info.is_dir() or is_test_file(name):
                continue
            data = wheel.read(name)
            if name.endswith(".py") and not name.split("/")[0].endswith((".dist-info", ".data")):
                source = os.path.join(work, "module.py")
                with open(source, "wb") as fh:
                    fh.write(data)
                try:
                    compiled = py_compile.compile(
                        source, cfile=os.path.join(work, "module.pyc"), dfile=f"{SITE}/{name}", doraise=True,
                        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
                except py_compile.PyCompileError:  # not Python 3.12 (e.g. a template): keep the source
                    files[name] = data
                    continue
                with open(compiled, "rb") as fh:
                    files[name + "c"] = fh.read()
            else:
                files[name] = data
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as out:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            out.writestr(info, files[name])


def main(inputs: str, outputs: str) -> None:
    with tempfile.TemporaryDirectory() as work:
        for name in sorted(os.listdir(inputs)):
            if name.endswith(".whl"):
                compile_wheel(os.path.join(inputs, name), os.path.join(outputs, name), work)
