"""Inside the sandbox: run the notebook in a fresh kernel and record its answers as data.

``python -m usrok_grader.runner /input/task.json`` (started by :func:`usrok.sandbox.run`)
executes ``/input/submission.ipynb`` as otter does for grading (ignored cells dropped,
checks added where a cell asks for them, the python3 kernel), with two cells of its own:
the first replaces ``grader.check`` by a :class:`Recorder`, the last records
the questions never checked. It prints one JSON status line, then the recorded answers,
and nothing else: what the kernel prints goes nowhere. Printed output and displays are
dropped as they arrive, so they cannot fill the runner's memory.

This module is copied, with :mod:`usrok.answers` and :mod:`usrok.scoring`, into the package
``usrok_grader`` that the sandbox reads; it imports only the standard library at import time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from . import answers

__all__ = ["WORK", "RUNTIME_PACKAGE", "Recorder", "inside"]

WORK = "/submission"            # the private, writable working folder
RUNTIME_PACKAGE = "usrok_grader"


class Recorder:
    """Records, in the student's kernel, the variables each question's tests read.

    ``check(question, env)`` replaces ``grader.check`` during grading: the last check of a
    question wins, as in otter. ``finish(env)`` records the questions never checked from
    the notebook's final variables. Each record is appended to ``path`` as one JSON line,
    so the answers checked before a crash survive it.
    """

    def __init__(self, path: str, variables: dict[str, list[str]]):
        self.path, self.variables, self.checked = path, variables, set()

    def _write(self, question: str, env: dict, when: str) -> None:
        names = self.variables.get(question, [])
        values = {n: answers.encode(env[n]) for n in names if n in env}
        line = json.dumps({"question": question, "when": when, "values": values}, allow_nan=False)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def check(self, question: str, env: dict) -> None:
        if question in self.variables:
            self._write(question, env, "check")
            self.checked.add(question)

    def finish(self, env: dict) -> None:
        for q in self.variables:
            if q not in self.checked:
                self._write(q, env, "end")


INIT_CELL = '''\
def __usrok_setup():
    import inspect
    import otter
    from {package}.runner import Recorder
    recorder = Recorder({answers!r}, {variables!r})
    def check(self, question, global_env=None):
        env = global_env if global_env is not None else inspect.currentframe().f_back.f_globals
        recorder.check(question, env)
    otter.Notebook._grading_mode = True  # export, check_all and to_pdf do nothing while grading
    otter.Notebook.check = check
    return recorder
__usrok_recorder = __usrok_setup()
del __usrok_setup
'''
FINISH_CELL = "__usrok_recorder.finish(globals())"


def _prepare(nb, task: dict, answers_path: str) -> None:
    """As otter does for grading: drop ignored cells, add the checks cells ask for, set up the
    recorder first and record the unchecked questions last; always the python3 kernel."""
    import nbformat

    cells = []
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        if "otter_ignore" in meta.get("tags", []) or (meta.get("otter") or {}).get("ignore", False):
            continue
        cells.append(cell)
        tests = (meta.get("otter") or {}).get("tests") or []
        if tests:
            cells.append(nbformat.v4.new_code_cell("".join(f'grader.check("{t}")\n' for t in tests)))
    init = INIT_CELL.format(package=RUNTIME_PACKAGE, answers=answers_path, variables=task["variables"])
    nb.cells = [nbformat.v4.new_code_cell(init), *cells, nbformat.v4.new_code_cell(FINISH_CELL)]
    name = task.get("kernel_name", "python3")
    nb.metadata["kernelspec"] = {"name": name, "display_name": name, "language": "python"}


def _label(cell) -> str:
    lines = str(cell.get("source", "")).strip().splitlines() if cell is not None else []
    return lines[0][:50] if lines else ""


def inside(task_path: str) -> int:
    """The runner, inside the sandbox: execute the notebook, print status and answers."""
    proto = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)  # the kernel inherits these: nothing it prints reaches the grader
    os.dup2(null, 2)
    t0 = time.monotonic()
    result: dict = {"status": "ok", "cell_errors": [], "timed_out_cells": [], "timings": {}}
    mark = lambda what: result["timings"].__setitem__(what, round(time.monotonic() - t0, 2))  # noqa: E731
    work = os.environ.get("USROK_SANDBOX_WORK", WORK)
    answers_path = os.path.join(work, ".usrok-answers.jsonl")
    try:
        import logging

        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import DeadKernelError

        logging.disable(logging.CRITICAL)
        mark("imported")
        with open(task_path, encoding="utf-8") as fh:
            task = json.load(fh)
        source = Path(task_path).parent / "submission.ipynb"
        nb = nbformat.read(source, as_version=4)
        shutil.copyfile(source, os.path.join(work, f"{task['name']}.ipynb"))  # grader_for finds it
        _prepare(nb, task, answers_path)
        budget = float(task.get("budget") or 0)
        budget_left = (lambda: budget - (time.monotonic() - t0)) if budget else (lambda: float("inf"))

        class Client(NotebookClient):
            started, current = False, 0

            async def async_start_new_kernel_client(self):
                kc = await super().async_start_new_kernel_client()
                self.started = True
                mark("kernel ready")
                return kc

            async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
                self.current = cell_index
                # Past the notebook's time budget, the remaining cells are skipped, except the
                # last, which records the final answers: what ran is still graded.
                if budget_left() <= 0 and cell_index < len(self.nb.cells) - 1:
                    result.setdefault("skipped_cells", []).append(_label(cell))
                    return cell
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

            def _get_timeout(self, cell):
                # A student's cell may run for --cell-timeout, but never past the notebook's
                # budget; the grader's own first cell (imports, slow on a busy machine) may use
                # the whole budget; the last cell, which records the answers, has the reserve.
                left = budget_left()
                if cell is not None and cell is self.nb.cells[-1]:
                    return self.timeout
                if left == float("inf"):
                    return self.timeout
                if cell is not None and cell is self.nb.cells[0]:
                    return max(1, math.ceil(left))
                return max(1, min(self.timeout, math.ceil(left)))

            def output(self, outs, msg, display_id, cell_index):
                # Only errors are kept: printed output and displays never fill the runner's memory.
                if msg["msg_type"] == "error" and len(outs) < 3:
                    c = msg["content"]
                    outs.append(nbformat.v4.new_output("error", ename=str(c.get("ename", ""))[:100],
                                                       evalue=str(c.get("evalue", ""))[:300], traceback=[]))
                return None

            async def _async_handle_timeout(self, timeout, cell=None):
                result["timed_out_cells"].append(_label(cell))
                return await super()._async_handle_timeout(timeout, cell)

        client = Client(nb, timeout=task["cell_timeout"], startup_timeout=task["startup_timeout"],
                        kernel_name=task.get("kernel_name", "python3"), allow_errors=True, interrupt_on_timeout=True,
                        error_on_timeout={"ename": "CellTimeoutError", "evalue": "cell stopped", "traceback": []},
                        store_widget_state=False, shutdown_kernel="immediate",
                        resources={"metadata": {"path": work}})
        try:
            client.execute()
        except DeadKernelError:
            result["status"] = "kernel-died"
            result["died_in"] = _label(nb.cells[client.current]) if client.current < len(nb.cells) else ""
        except Exception as e:
            if not client.started:
                result["status"] = "kernel-did-not-start"
                result["detail"] = f"{type(e).__name__}: {str(e)[:200]}"
            else:
                raise
        mark("executed")
        for cell in nb.cells[1:-1]:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error" and out.get("ename") != "CellTimeoutError":
                    result["cell_errors"].append({"ename": out["ename"], "evalue": out["evalue"], "cell": _label(cell)})
        for cell, what in ((nb.cells[0], "setting up the grader"), (nb.cells[-1], "recording the final answers")):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    result["detail"] = f"{what} failed: {out['ename']}: {out['evalue'][:100]}"
    except BaseException as e:  # the runner reports; the grader decides
        result = {"status": "runner-error", "detail": f"{type(e).__name__}: {str(e)[:300]}",
                  "cell_errors": result.get("cell_errors", [])}
    recorded = b""
    try:
        fd = os.open(answers_path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            recorded = fh.read(answers.MAX_BYTES + 1)
    except OSError:
        pass
    proto.write(json.dumps(result).encode() + b"\n" + recorded)
    proto.flush()
    return 0


if __name__ == "__main__":
    sys.exit(inside(sys.argv[1]))
