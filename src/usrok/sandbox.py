"""Run one submission in a bubblewrap sandbox; bring back its answers as data.

Outside (the grader): :func:`run` starts ``bwrap`` for one notebook and waits at most
``Limits.wall`` seconds. Inside, our runner (:mod:`usrok.runner`) executes the notebook in a
fresh Jupyter kernel and records, at each ``grader.check("qN")`` and at the end, the
variables each question's tests read (:class:`usrok.runner.Recorder`). It prints one
status line and the recorded answers; nothing else leaves the sandbox. The tests never
run in here (see :mod:`usrok.scoring`).

The sandbox (:func:`bwrap_command`):

- its own PID, network (loopback only), IPC and UTS namespaces; ``--die-with-parent`` and
  ``--new-session``: ending the sandbox ends everything it started, daemons included;
- a private working folder (a size-limited tmpfs) holding a copy of the notebook, and a
  size-limited ``/tmp``; read-only: the Python environment, the course package and data
  from the autograder zip (never its tests), and the runner; nothing else of the machine
  (no repository, zip, other submission, output folder or home folder);
- an empty environment except what the kernel needs;
- limits per process (``prlimit``): address space, processes (per sandbox), file size, CPU
  seconds, no core files; and the wall clock, enforced from outside;
- as root, the code runs as an unprivileged user of its own (one per worker slot); as
  another user, in a user namespace with no capabilities.

Without ``bwrap`` the grader refuses (:class:`SandboxUnavailable` says how to install it),
unless the instructor passes the explicit ``unsafe`` opt-out: then the same runner runs as
the instructor, with the limits but without the namespaces.

The runner, :mod:`usrok.answers` and :mod:`usrok.scoring` are copied into a package
``usrok_grader`` that the sandbox reads (:func:`prepare_runtime`). Only the standard library
is imported at import time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .answers import MAX_BYTES
from .runner import RUNTIME_PACKAGE, WORK

__all__ = ["Limits", "SandboxUnavailable", "INSTALL_HINT", "available", "bwrap_command", "claimed_slot",
           "prepare_runtime", "run"]

INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: "
                "`sudo dnf install bubblewrap`), or run `make test` once, which installs it")
SANDBOX_UID = 0x70000000        # as root: the unprivileged user of worker slot k is this + k
SLOTS = 16                      # sandbox users on a machine (the runtime's /etc/passwd names them)
RUNTIME_MODULES = ("answers.py", "runner.py", "scoring.py")


@dataclass
class Limits:
    """Per-submission limits (memory and file size in bytes, times in seconds)."""

    wall: float = 60.0                # the whole submission, enforced from outside
    cell: float = 30.0                # one cell, then the kernel is interrupted
    memory: int = 2 * 1024**3         # address space per process (a kernel needs about 1 GiB)
    processes: int = 64               # processes and threads in the sandbox (honest runs use < 25)
    file_size: int = 64 * 1024**2     # the largest file a process may write
    disk: int = 256 * 1024**2         # each tmpfs: the working folder and /tmp
    answers: int = MAX_BYTES          # bytes of answers read back

    def prlimit(self) -> list[str]:
        cpu = int(self.wall) + 10
        return ["prlimit", f"--as={self.memory}", f"--nproc={self.processes}", f"--fsize={self.file_size}",
                f"--cpu={cpu}", "--core=0", "--"]


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create a sandbox on this machine."""


def available() -> str | None:
    """None if a sandbox can be made here, else why not (with how to fix it)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return f"bubblewrap (`bwrap`) is not installed: {INSTALL_HINT}"
    for tool in ("prlimit",) + (("setpriv",) if os.geteuid() == 0 else ()):
        if shutil.which(tool) is None:
            return f"`{tool}` (util-linux) is not installed: `sudo apt-get install util-linux`"
    probe = [bwrap, *_namespaces(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "true"]
    try:
        p = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bubblewrap could not start: {e}"
    if p.returncode != 0:
        return (f"bubblewrap cannot create a sandbox here ({p.stderr.strip()[:200]}); unprivileged user "
                "namespaces may be disabled (on Ubuntu 24.04: `sudo sysctl "
                "kernel.apparmor_restrict_unprivileged_userns=0`), or run the grader as root")
    return None


def _namespaces() -> list[str]:
    spaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    # As root, no user namespace: the code is run as an unprivileged user instead (setpriv),
    # which keeps the process limit per sandbox. Otherwise a user namespace with no capabilities.
    return spaces if os.geteuid() == 0 else ["--unshare-user", *spaces]


# --------------------------------------------------------------------------- the runtime
def prepare_runtime(folder: Path) -> Path:
    """Write what every sandbox of a batch reads: the runner package and a minimal /etc.

    Returns ``folder``, which then holds ``grader/usrok_grader/`` and ``etc/``. Each
    autograder zip of the batch has a folder of its own (see :func:`bwrap_command`).
    """
    pkg = folder / "grader" / RUNTIME_PACKAGE
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text('"""The grader\'s runner, as the sandbox sees it."""\n')
    here = Path(__file__).resolve().parent
    for name in RUNTIME_MODULES:
        shutil.copyfile(here / name, pkg / name)
    etc = folder / "etc"
    etc.mkdir(exist_ok=True)
    uid = "\n".join(f"student{k}:x:{SANDBOX_UID + k}:{SANDBOX_UID + k}::{WORK}:/bin/sh" for k in range(SLOTS))
    (etc / "passwd").write_text(f"root:x:0:0::/root:/bin/sh\n{uid}\nnobody:x:65534:65534::/:/bin/sh\n"
                                f"student:x:{os.getuid()}:{os.getgid()}::{WORK}:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    for p in [folder, *folder.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return folder


def _python_roots() -> list[str]:
    """Folders the sandbox's Python needs, read-only: the environment and the interpreter's."""
    paths = {sys.prefix, os.path.realpath(sys.prefix), sys.base_prefix, os.path.realpath(sys.base_prefix)}
    keep: list[str] = []
    for p in sorted(paths):
        if p == "/usr" or p.startswith("/usr/") or any(p == k or p.startswith(k + "/") for k in keep):
            continue
        keep.append(p)
    return keep


def _environment(limits: Limits, autograder: Path) -> dict[str, str]:
    """The whole environment of the sandbox (nothing is inherited)."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": WORK, "TMPDIR": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "PYTHONPATH": "/course:/grader", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "USROK_DATA": "/course/data", "USROK_CACHE_DIR": "/cache" if (autograder / "cache").is_dir() else "/tmp/usrok",
        "IPYTHONDIR": f"{WORK}/.ipython", "JUPYTER_PLATFORM_DIRS": "1", "MPLCONFIGDIR": "/tmp/matplotlib",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
    }
    return env


@contextlib.contextmanager
def claimed_slot(preferred: int = 0):
    """A worker slot that no other batch on this machine is using, held until the block ends.

    As root, slot k runs as its own unprivileged user. Two batches graded at the same time (two
    assignments in two terminals) take different slots, so they never share a user: a fork bomb's
    process limit, or a kill of every process of its user, stays inside its own batch. The claim
    is a lock on a file in the temporary folder (released by the system if the grader dies).
    Not as root, every sandbox runs as the grader's own user, and the slot is only a number.
    """
    if os.geteuid() != 0:
        yield preferred
        return
    folder = Path(tempfile.gettempdir())
    while True:
        for k in dict.fromkeys([preferred, *range(SLOTS)]):
            fd = os.open(folder / f"usrok-sandbox-slot-{k}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            try:
                yield k
            finally:
                os.close(fd)
            return
        time.sleep(0.5)  # all slots busy: wait for one


def bwrap_command(runtime: Path, autograder: Path, submission_dir: Path, limits: Limits,
                  slot: int = 0) -> list[str]:
    """The full command that runs the runner on ``submission_dir`` (task.json + notebook).

    ``runtime`` is the batch's folder (:func:`prepare_runtime`); ``autograder`` the zip's
    folder, whose ``course/`` (the zip's course package and data, no tests) and ``cache/``
    (the data loader's validation cache, written by the grader) the sandbox reads.
    """
    cmd = [shutil.which("bwrap") or "bwrap", *_namespaces(), "--die-with-parent", "--new-session",
           "--hostname", "sandbox", "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
           # the writable folders first: what is bound later (a Python under /tmp) stays visible
           "--perms", "1777", "--size", str(limits.disk), "--tmpfs", "/tmp",
           "--perms", "0777", "--size", str(limits.disk), "--tmpfs", WORK]
    made = {"/", "/usr", "/proc", "/dev", "/tmp", WORK}

    def bind(src: str, dest: str) -> None:
        parents = [str(p) for p in reversed(Path(dest).parents) if str(p) not in made]
        for parent in parents:  # bwrap would make missing parents 0700: unreadable to the sandbox user
            cmd.extend(["--perms", "0755", "--dir", parent])
        made.update(parents)
        cmd.extend(["--ro-bind", src, dest])

    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            bind(top, top)
    for etc in ("/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime"):
        if os.path.exists(etc):
            bind(etc, etc)
    for name in ("passwd", "group", "hosts"):
        bind(str(runtime / "etc" / name), f"/etc/{name}")
    for root in _python_roots():
        bind(root, root)
    cmd += ["--ro-bind", str(autograder / "course"), "/course",
            "--ro-bind", str(runtime / "grader"), "/grader",
            "--ro-bind", str(submission_dir), "/input"]
    if (autograder / "cache").is_dir():
        cmd += ["--ro-bind", str(autograder / "cache"), "/cache"]
    cmd += ["--chdir", WORK, "--clearenv"]
    for k, v in _environment(limits, autograder).items():
        cmd += ["--setenv", k, v]
    inner = [*limits.prlimit(), sys.executable, "-B", "-m", f"{RUNTIME_PACKAGE}.runner", "/input/task.json"]
    if os.geteuid() == 0:
        uid = str(SANDBOX_UID + slot)
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--", *inner]
    else:
        cmd += ["--cap-drop", "ALL", "--", *inner]
    return cmd


def _unsafe_command(runtime: Path, autograder: Path, submission_dir: Path, limits: Limits,
                    work: Path) -> tuple[list[str], dict]:
    """The runner without a sandbox (the instructor opted out): same limits, same environment."""
    env = _environment(limits, autograder)
    env.update({"HOME": str(work), "PYTHONPATH": f"{autograder / 'course'}:{runtime / 'grader'}",
                "USROK_DATA": str(autograder / "course" / "data"), "IPYTHONDIR": str(work / ".ipython"),
                "USROK_CACHE_DIR": str(work / ".cache"), "USROK_SANDBOX_WORK": str(work),
                "USROK_SANDBOX_INPUT": str(submission_dir)})
    return [*limits.prlimit(), sys.executable, "-B", "-m", f"{RUNTIME_PACKAGE}.runner",
            str(submission_dir / "task.json")], env


def _kill(proc: subprocess.Popen) -> None:
    """Kill the sandbox (bwrap takes everything inside with it) or, without one, the runner's tree."""
    try:
        import psutil

        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
    except Exception:  # psutil missing or the process is gone
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.kill()
    except OSError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def run(runtime: Path, autograder: Path, submission_dir: Path, limits: Limits, *, slot: int = 0,
        unsafe: bool = False) -> dict:
    """Run the notebook in ``submission_dir`` (written by the grader) and return the result.

    The result: ``status`` (``ok``, ``kernel-did-not-start``, ``kernel-died``, ``timeout``,
    ``sandbox-failed``), ``cell_errors``, ``timed_out_cells``, ``answers`` (the recorder's
    JSON lines, bytes) and ``seconds``.
    """
    started = time.monotonic()
    work = None
    if unsafe:
        work = submission_dir / "work"
        work.mkdir(exist_ok=True)
        cmd, env = _unsafe_command(runtime, autograder, submission_dir, limits, work)
        cwd = str(work)
    else:
        cmd, cwd = bwrap_command(runtime, autograder, submission_dir, limits, slot), "/"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, cwd=cwd, start_new_session=True, close_fds=True)
    out, too_big, timed_out = bytearray(), False, False
    deadline = started + limits.wall
    fd = proc.stdout.fileno()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            out += chunk
            if len(out) > limits.answers + 65536:
                too_big = True
                break
    finally:
        if timed_out or too_big:
            _kill(proc)
        else:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill(proc)
        proc.stdout.close()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    seconds = round(time.monotonic() - started, 2)
    if timed_out:
        return {"status": "timeout", "seconds": seconds}
    if too_big:
        return {"status": "sandbox-failed", "seconds": seconds,
                "detail": f"the notebook's answers exceed {limits.answers // 1_000_000} MB"}
    head, _, answers = bytes(out).partition(b"\n")
    try:
        result = json.loads(head)
        if not isinstance(result, dict) or "status" not in result:
            raise ValueError
    except (ValueError, RecursionError):
        return {"status": "sandbox-failed", "seconds": seconds,
                "detail": f"the sandbox gave no result (exit code {proc.returncode})"}
    result.update(answers=answers, seconds=seconds)
    return result
