"""Score a submission's recorded answers with the autograder's tests, outside the sandbox.

A scoring process (``python -m usrok_grader.scoring <autograder folder>``) runs with the
zip's course package and data, loads the zip's test files once with otter's own classes,
and answers one request per line on stdin: the path of a file of recorded answers
(:mod:`usrok.answers`, written by the grader). For each question it rebuilds the
variables from JSON (never unpickling, never running the student's code) and runs otter's
``ExceptionTestFile.run`` on them, so the points are otter's: a question's points split
among its test cases as the test file says, public tests worth 0 unless given points.

The grader's handle on it, :class:`Autograder`, unpacks the zip for a batch: the course
package and data for the sandboxes, the tests for this process only.

It never runs student code: the answers are data. A question the notebook never recorded
is scored on an empty environment (every variable ``None``), as otter does for a missing
variable. Only the standard library is imported at import time.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

from .runner import RUNTIME_PACKAGE

__all__ = ["Autograder", "load_tests", "score", "failure_note", "main", "SCORING_TIMEOUT"]

SCORING_TIMEOUT = 120.0  # seconds the tests may take on one submission

_FAILED = re.compile(r"^(?P<ename>[A-Za-z_][\w.]*): ?(?P<evalue>.*)$", re.S)


def load_tests(folder: str | os.PathLike) -> dict:
    """The zip's test files, ``{question: otter TestFile}``, from ``folder/tests/*.py``."""
    from otter.test_files import ExceptionTestFile

    tests = {}
    for path in sorted(Path(folder, "tests").glob("*.py")):
        tf = ExceptionTestFile.from_file(str(path))
        tests[tf.name] = tf
    return tests


def test_name(tc) -> str:
    """A test case's function name (``test_q4_yongsan``), else otter's name for it."""
    return getattr(getattr(tc.body, "test_func", None), "__name__", None) or str(tc.name)


def failure_note(tc, message: str) -> str:
    """What a failed test case says, without quoting its code: its own failure message,
    else the exception it raised (type and message), else its name."""
    if tc.failure_message:
        return str(tc.failure_message)
    # otter's message: "❌ Test case failed", "Error at line N in test q:", the line of code,
    # then "ExceptionName: message". Only the part after the code line is kept.
    lines = str(message or "").splitlines()
    tail = "\n".join(lines[3:]).strip() if len(lines) > 3 else ""
    m = _FAILED.match(tail)
    if m and m.group("evalue").strip():
        return f"{m.group('ename')}: {m.group('evalue').strip()[:160]}"
    if m and m.group("ename") != "AssertionError":
        return f"{m.group('ename')} in {test_name(tc)}"
    return f"{test_name(tc)} failed"


def score(tests: dict, answers: dict[str, dict]) -> dict:
    """Run every question's tests on its recorded variables.

    Returns ``{question: {"score", "possible", "failed": [{"test", "hidden", "note"}]}}``.
    """
    out = {}
    for q, tf in tests.items():
        env = dict(answers.get(q) or {})
        tf.run(env)
        failed = [{"test": test_name(r.test_case), "hidden": bool(r.test_case.hidden),
                   "points": float(r.test_case.points or 0), "note": failure_note(r.test_case, r.message)}
                  for r in tf.test_case_results if not r.passed]
        out[q] = {"score": float(tf.score), "possible": float(tf.possible), "failed": failed}
    return out


class Autograder:
    """An autograder zip unpacked for a batch: the sandbox's course folder, the tests (never
    shown to a sandbox) and a long-lived scoring process."""

    def __init__(self, zip_path: Path, batch: Path, index: int):
        from .assignments import read_autograder  # (the grader's side only)

        self.zip_path = zip_path
        self.info = read_autograder(zip_path)
        self.folder = batch / f"autograder-{index}"
        course, tests = self.folder / "course", self.folder / "tests"
        course.mkdir(parents=True)
        tests.mkdir()
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.infolist():
                parts = Path(member.filename).parts
                if member.is_dir() or ".." in parts or member.filename.startswith("/"):
                    continue
                if parts[0] == "files" and len(parts) > 1:
                    dest = course.joinpath(*parts[1:])
                elif parts[0] == "tests" and len(parts) == 2:
                    dest = tests / parts[1]
                else:
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(member))
        (self.folder / "cache").mkdir()
        for p in [course, *course.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        self._proc: subprocess.Popen | None = None
        self._buf = b""
        self._lock = threading.Lock()
        self._batch = batch

    def _start(self) -> None:
        course = self.folder / "course"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.folder), "LANG": "C.UTF-8",
               "PYTHONPATH": f"{course}:{self._batch / 'grader'}", "PYTHONDONTWRITEBYTECODE": "1",
               "USROK_DATA": str(course / "data"), "USROK_CACHE_DIR": str(self.folder / "cache"),
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        log = open(self.folder / "scoring.log", "ab")
        self._proc = subprocess.Popen([sys.executable, "-B", "-m", f"{RUNTIME_PACKAGE}.scoring",
                                       str(self.folder)], cwd=course, env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        log.close()
        self._buf = b""
        ready = self._reply(SCORING_TIMEOUT)
        if not ready or "ready" not in ready:
            self.close()
            raise RuntimeError(f"the scoring process did not start (see {self.folder / 'scoring.log'})")
        for p in [self.folder / "cache", *(self.folder / "cache").rglob("*")]:  # the sandboxes read it
            os.chmod(p, 0o755 if p.is_dir() else 0o644)

    def _reply(self, timeout: float) -> dict | None:
        assert self._proc and self._proc.stdout
        deadline = time.monotonic() + timeout
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return None
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return None

    def start(self) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()

    def score(self, answers: bytes, scratch: Path) -> dict:
        """The tests' verdict on recorded answers (see :func:`usrok.scoring.score`)."""
        path = scratch / "answers.jsonl"  # the grader's own folder: no sandbox sees it
        path.write_bytes(answers)
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            assert self._proc and self._proc.stdin
            try:
                self._proc.stdin.write((json.dumps({"answers": str(path)}) + "\n").encode())
                self._proc.stdin.flush()
                reply = self._reply(SCORING_TIMEOUT)
            except OSError:
                reply = None
            if reply is None:
                self.close()
                return {"error": f"the tests did not finish within {SCORING_TIMEOUT:g} s"}
            return reply

    def close(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, 9)
            except OSError:
                pass
            self._proc.wait()
            for f in (self._proc.stdin, self._proc.stdout):
                if f:
                    f.close()
            self._proc = None


def main(argv: list[str] | None = None) -> int:
    """Serve scoring requests: one JSON line in (``{"answers": path}``), one JSON line out."""
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0])
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a test prints goes to the log, not the protocol
    from . import answers as answers_format

    tests = load_tests(folder)
    try:  # load (and validate) every table once, so each request is quick
        from usrok import data

        for name in data.resource_names():
            if data.resource_path(name).is_file():  # the zip holds only the tables the assignment reads
                data.load(name)
    except Exception as e:  # the tests will say what is wrong
        print(f"preloading the data failed: {e}", file=sys.stderr)
    proto.write(json.dumps({"ready": sorted(tests)}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            raw = Path(request["answers"]).read_bytes()
            try:
                recorded = answers_format.loads(raw)
                problem = ""
            except ValueError as e:
                recorded, problem = {}, str(e)
            reply = {"scores": score(tests, recorded), "answers_problem": problem}
        except BaseException as e:  # report, never die
            reply = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        proto.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
