"""Every shell command in the instructor guide runs as written, on a fresh clone after `make book`.

The clone is a copy of the files a clone holds (tracked, and new files git does not ignore),
made into a git repository of its own. What the README's first command, `make book`, would
leave in it is reused instead of rebuilt, to keep the test fast: the course environment
(`.venv`, linked) and the answer keys (`exercises/*/dist`, copied). Then each ```bash block
of the guide runs verbatim, in order, in a shell with no environment activated. The one step
the guide leaves to a person (filling in the hand-graded scores in a spreadsheet) is done by
the test between the blocks, and `otter grade` runs only where Docker is running.
Afterwards `git status` in the clone is clean: grading output lands in a git-ignored folder.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "chapters" / "instructor_guide.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def shell_blocks() -> list[str]:
    return BLOCK.findall(GUIDE.read_text(encoding="utf-8"))


def test_readme_starts_with_make_book():
    """The guide's commands assume the README's first command has run: check that it is `make book`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"^```(?:bash|sh|shell)?\n(.*?)^```", readme, re.S | re.M)
    command = first.group(1).strip().splitlines()[0].split("#")[0].strip() if first else None
    assert command == "make book", command


@pytest.fixture(scope="module")
def guide_clone(tmp_path_factory):
    # The clone shares this checkout's environment: it must be current (as after `make book`),
    # or `make assignments` in the clone would rebuild it.
    stale = subprocess.run(["make", "-q", ".venv/.book-env"], cwd=ROOT).returncode
    assert stale == 0, "the course environment is older than requirements.txt: run `make book` first"
    dest = tmp_path_factory.mktemp("clone") / "usrok"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)  # dates kept: make sees nothing newer
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "a fresh clone"], cwd=dest, check=True)
    # What `make book` leaves behind.
    (dest / ".venv").symlink_to(ROOT / ".venv")
    (dest / ".git" / "info" / "exclude").write_text(".venv\n")  # a link, which `.venv/` does not match
    for dist in sorted(ROOT.glob("exercises/*/dist")):
        shutil.copytree(dist, dest / dist.relative_to(ROOT), symlinks=True)
    return dest


def _env(home: Path) -> dict:
    """A shell as on a fresh login: no environment activated."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and not Path(p, "activate").exists()]
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "USROK_DATA", "USROK_CACHE_DIR", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PATH=os.pathsep.join(path), HOME=str(home))
    return env


def docker_running() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _fill_in_hand_grades(path: Path) -> None:
    """What the guide asks a person to do in a spreadsheet: give every hand-graded question 1 point."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    hand = [i for i, c in enumerate(rows[0]) if "(by hand, 0-" in c]
    assert hand, rows[0]
    for r in rows[1:]:
        for i in hand:
            r[i] = "1"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


def test_every_shell_command_in_the_guide_runs(guide_clone, tmp_path):
    clone = guide_clone
    blocks = shell_blocks()
    assert len(blocks) >= 6, blocks
    home = tmp_path / "home"
    home.mkdir()
    ran, skipped = [], []
    for block in blocks:
        if " merge " in block:
            _fill_in_hand_grades(clone / "grading" / "ex03_easi" / "hand-graded.csv")
        if "otter grade" in block and not docker_running():
            skipped.append(block)
            continue
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=clone, env=_env(home),
                             capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, f"{block}\n--- exit {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
        ran.append(block)
    print(f"ran {len(ran)} shell blocks; skipped {len(skipped)} (Docker is not running)")
    grades = list(csv.DictReader((clone / "grading" / "ex03_easi" / "grades.csv").open(newline="")))
    assert [r["file"] for r in grades] == ["example-blank.ipynb"] and grades[0]["auto_total"] == "0", grades
    final = list(csv.DictReader((clone / "grading" / "ex03_easi" / "final.csv").open(newline="")))
    assert float(final[0]["total"]) == float(final[0]["hand_total"]) == 1, final
    assert (clone / "grading" / "ex03_easi" / "otter-run" / "results.json").is_file()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert status == "", f"the commands left files git does not ignore:\n{status}"
