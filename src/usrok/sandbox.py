"""Run one submission apart from the batch: a worker process, its kernel, limits and clean-up.

A worker is a long-lived Python process (``python -m usrok.sandbox``) in its own session
that grades one notebook at a time with ``otter run``'s own machinery: a cell that runs
longer than the cell limit is interrupted and grading goes on; a submission that exceeds
the time limit is killed with its kernel and the worker is replaced. Every process of a
batch carries the batch's marker, so that none outlives it.

This separates a submission's *process* from the batch's; it is not a security boundary
(student code runs as the instructor's user).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

def kill_tree(proc: subprocess.Popen) -> None:
    """Kill a worker, its process group and every descendant (the kernel runs in its own session)."""
    pids: list[int] = []
    try:
        import psutil

        pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except Exception:
        # Without psutil: walk /proc for descendants (Linux).
        try:
            parent_of = {}
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        with open(f"/proc/{d}/stat") as fh:
                            parent_of[int(d)] = int(fh.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, ValueError, IndexError):
                        pass
            frontier = [proc.pid]
            while frontier:
                p = frontier.pop()
                kids = [c for c, pp in parent_of.items() if pp == p]
                pids += kids
                frontier += kids
        except OSError:
            pass
    for pid in pids:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        proc.kill()
    except OSError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


BATCH_MARKER = "USROK_GRADING_BATCH"
LAST_SWEPT: list[int] = []  # pids :func:`grade_submissions` had to kill after its last batch


def _batch_processes(batch: str) -> list[int]:
    """Processes (any user-visible pid) whose environment carries this batch's marker."""
    needle = f"{BATCH_MARKER}={batch}".encode()
    found = []
    for d in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(int(d))
        except OSError:
            pass
    return found


def sweep(batch: str) -> list[int]:
    """Kill anything the batch left running (should be nothing); return the pids killed."""
    pids = _batch_processes(batch)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return pids


class Worker:
    """A long-lived grading process (``python -m usrok.sandbox``) in its own session."""

    def __init__(self, log_dir: Path, index: int, batch: str = ""):
        self.log_path = log_dir / f"worker-{index}.log"
        self.index = index
        self.batch = batch or log_dir.name
        self.proc: subprocess.Popen | None = None
        self._buf = b""

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        # otter's temporary folders go under the batch's own folder (removed at the end, even
        # when a killed worker could not clean up), and every process of the batch, kernels
        # included, carries the batch's marker so that none can outlive it.
        tmp = self.log_path.parent / f"tmp-{self.index}"
        tmp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(tmp)
        env[BATCH_MARKER] = self.batch
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "usrok.sandbox"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True, env=env)
        log.close()
        self._buf = b""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None:
            kill_tree(self.proc)
            self.proc = None

    def run(self, task: dict, timeout: float) -> dict | None:
        """Send one task; the result dict, or None if the worker timed out or died."""
        if not self.alive():
            self.start()
        assert self.proc and self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write((json.dumps(task) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            return {"_died": True}
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:  # the worker died
                    self.kill()
                    return {"_died": True}
                self._buf += chunk
            elif not self.alive():
                self.kill()
                return {"_died": True}
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {"_died": True}


def worker_loop() -> None:
    """Grade tasks read from stdin, one JSON line each; answer on the original stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything otter or a library prints goes to the log, not the protocol
    sys.stdout = sys.stderr
    import logging as _logging

    _logging.getLogger("traitlets").setLevel(_logging.CRITICAL)
    import nbconvert.preprocessors as nbp
    import otter.run  # noqa: F401 - imported once per worker, not once per submission

    base = nbp.ExecutePreprocessor

    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        started = time.monotonic()

        class _Timed(base):  # a cell that runs too long is interrupted; grading goes on
            def __init__(self, *a, **kw):
                super().__init__(*a, **kw)
                self.timeout = task.get("cell_timeout") or None
                self.interrupt_on_timeout = True
                self.error_on_timeout = {"ename": "CellTimeoutError",
                                         "evalue": f"cell stopped after {self.timeout} s",
                                         "traceback": []}
                self.startup_timeout = 60
                self.shutdown_kernel = "immediate"  # no graceful wait: the notebook is done

        nbp.ExecutePreprocessor = _Timed
        try:
            answer = _grade_one(task["autograder"], task["submission"])
        except BaseException as e:  # report, never crash the worker
            answer = {"error": f"{type(e).__name__}: {str(e).strip()[:300]}"}
        finally:
            nbp.ExecutePreprocessor = base
        answer["seconds"] = round(time.monotonic() - started, 2)
        proto.write(json.dumps(answer) + "\n")
        proto.flush()


def _grade_one(autograder: str, submission: str) -> dict:
    """Grade one submission in this process with otter's runner; scores and cell errors."""
    import otter.run

    results = otter.run.main(submission, autograder=autograder, output_dir=None, no_logo=True)
    out: dict[str, Any] = {"scores": {}, "failed": {}, "cell_errors": []}
    if getattr(results, "_catastrophic_error", None) is not None:
        out["error"] = f"grading failed: {results._catastrophic_error}"
    for name, tf in results.results.items():
        out["scores"][name] = float(tf.score)
        results_ = list(getattr(tf, "test_case_results", []))
        failed = [r for r in results_ if not r.passed]
        if failed:
            # Only the tests' own messages: the CSV must not quote hidden test code.
            notes = []
            for r in failed:
                last = [l.strip() for l in str(r.message).splitlines() if l.strip()]
                m = re.match(r"^(\w*(?:Error|Exception))\b:?\s*(.*)$", last[-1]) if last else None
                if m and m.group(2):
                    notes.append(m.group(2)[:120])
                elif m and m.group(1) != "AssertionError":
                    notes.append(m.group(1))
            summary = f"{len(failed)} of {len(results_)} test(s) failed"
            notes = list(dict.fromkeys(notes))
            out["failed"][name] = summary + (": " + "; ".join(notes[:2]) if notes else "")
    nb = getattr(results, "notebook", None)
    if nb is not None:
        for i, cell in enumerate(nb.cells):
            for o in cell.get("outputs", []):
                if o.get("output_type") == "error":
                    ename, evalue = o.get("ename", "Error"), str(o.get("evalue", ""))
                    src = "".join(cell.get("source", "")).strip().splitlines()
                    if ename in ("CellTimeoutError", "KeyboardInterrupt") or evalue.startswith("cell stopped"):
                        out["cell_errors"].append(f"a cell ran too long and was interrupted "
                                                  f"(cell {src[0][:50] if src else ''!r})")
                    else:
                        out["cell_errors"].append(
                            f"{ename}: {evalue[:120]} (in cell {src[0][:50] if src else ''!r})")
    return out


if __name__ == "__main__":
    worker_loop()
