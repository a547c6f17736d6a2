"""The grades CSV an instructor reads, and merging in the questions graded by hand.

``python -m usrok.grading grade`` writes one row per submission with the columns

    file, status, q1 ... (auto-graded points), auto_total, auto_possible,
    q7 (by hand, 0-3) ... (empty, for you), total_possible, seconds, sha256, reason

``python -m usrok.grading merge GRADES HAND --out FINAL`` reads the grades CSV and a CSV
with the hand-graded scores filled in (``file`` and the ``(by hand, ...)`` columns; a
filled-in copy of the grades CSV will do) and writes final totals. It refuses, naming the
row, a score out of range, an empty score, or a file the grades CSV does not know.

Every cell that a spreadsheet could read as a formula (starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) is written with a leading ``'``; numbers stay numbers.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

__all__ = ["columns", "write", "safe", "merge", "merge_command", "add_merge_command", "MergeError"]

_RISKY = ("=", "+", "-", "@", "\t", "\r")
_HAND = re.compile(r"^(?P<q>\S+) \(by hand, 0-(?P<max>[\d.]+)\)$")


def safe(value):
    """A CSV cell a spreadsheet will not run: text that could start a formula gets a ``'``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}" if isinstance(value, float) else value
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_RISKY) else text


def _unsafe(text: str) -> str:
    """A file name as written by :func:`safe`, back to itself (also if a spreadsheet kept or dropped the ``'``)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(_RISKY) else text


def hand_column(question: str, points: float) -> str:
    return f"{question} (by hand, 0-{points:g})"


def columns(info: dict) -> list[str]:
    """The grades CSV's columns for an autograder (``read_autograder``'s answer)."""
    auto = list(info["questions"])
    hand = [hand_column(q, p) for q, p in (info.get("manual") or {}).items()]
    return ["file", "status", *auto, "auto_total", "auto_possible", *hand, "total_possible", "seconds",
            "sha256", "reason"]


def write(out: str | Path, rows: list[dict], info: dict) -> Path:
    """Write the grades CSV (its folder is created)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    auto_possible = sum(info["questions"].values())
    total_possible = auto_possible + sum((info.get("manual") or {}).values())
    cols = columns(info)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            values = {"file": r["file"], "status": r["status"], "auto_total": r["total"],
                      "auto_possible": auto_possible, "total_possible": total_possible,
                      "seconds": r.get("seconds", 0.0), "sha256": r.get("sha256", ""), "reason": r.get("reason", "")}
            values.update({q: r.get(q, 0.0) for q in info["questions"]})
            w.writerow([safe(values.get(c, "")) for c in cols])
    return out


# --------------------------------------------------------------------------- merging
class MergeError(ValueError):
    """The hand-graded CSV cannot be merged (the message names the row)."""


def _read(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def merge(grades: str | Path, hand: str | Path, out: str | Path) -> list[dict]:
    """Final totals: the grades CSV plus the hand-graded scores. Raises :class:`MergeError`."""
    gcols, grows = _read(Path(grades))
    hcols, hrows = _read(Path(hand))
    needed = [c for c in gcols if _HAND.match(c)]
    if "file" not in gcols or "auto_total" not in gcols:
        raise MergeError(f"{grades} is not a grades CSV written by `python -m usrok.grading grade`")
    if "file" not in hcols:
        raise MergeError(f"{hand} has no 'file' column")
    missing = [c for c in needed if c not in hcols]
    if missing:
        raise MergeError(f"{hand} lacks the column(s) {', '.join(repr(c) for c in missing)}")
    known = {_unsafe(r["file"]): r for r in grows}
    scores: dict[str, dict[str, float]] = {}
    for line, r in enumerate(hrows, start=2):  # line 1 is the header
        name = _unsafe(r.get("file") or "")
        where = f"{hand}, row {line} ({name!r})"
        if name not in known:
            raise MergeError(f"{where}: no such file in {grades}")
        if name in scores:
            raise MergeError(f"{where}: this file appears twice")
        scores[name] = {}
        for c in needed:
            top = float(_HAND.match(c).group("max"))
            text = (r.get(c) or "").strip().lstrip("'")
            if not text:
                raise MergeError(f"{where}: {c} is empty (give 0 for no answer)")
            try:
                value = float(text)
            except ValueError:
                raise MergeError(f"{where}: {c} is {text!r}, not a number") from None
            if not 0 <= value <= top:
                raise MergeError(f"{where}: {c} is {value:g}, outside 0-{top:g}")
            scores[name][c] = value
    lacking = [n for n in known if n not in scores]
    if lacking:
        raise MergeError(f"{hand} has no row for {len(lacking)} file(s) of {grades}, e.g. {lacking[0]!r}")
    rows = []
    for name, g in known.items():
        hand_total = sum(scores[name].values())
        auto_total = float(g["auto_total"] or 0)
        rows.append({"file": name, "status": g["status"], "auto_total": auto_total, "hand_total": hand_total,
                     "total": auto_total + hand_total, "total_possible": float(g["total_possible"] or 0),
                     **{c: float(g[c] or 0) for c in gcols if c not in ("file", "status", "reason", "sha256",
                                                                         "auto_total", "auto_possible",
                                                                         "total_possible", "seconds")
                        and not _HAND.match(c)},
                     **scores[name], "reason": g.get("reason", "")})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = ["file", "status", "total", "total_possible", "auto_total", "hand_total"]
    cols = head + [c for c in rows[0] if c not in head and c != "reason"] + ["reason"] if rows else head
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            w.writerow([safe(r.get(c, "")) for c in cols])
    return rows


def add_merge_command(sub) -> None:
    m = sub.add_parser("merge", help="merge hand-graded scores into final totals",
                       description="Merge a CSV of hand-graded scores into the grades CSV; write final totals. "
                                   "Refuses scores out of range, empty scores and unknown files, naming the row.")
    m.add_argument("grades", help="the grades CSV written by `python -m usrok.grading grade`")
    m.add_argument("hand", help="a CSV with 'file' and the '(by hand, 0-N)' columns filled in")
    m.add_argument("--out", required=True, help="the final CSV to write")


def merge_command(a: argparse.Namespace) -> int:
    import sys

    try:
        rows = merge(a.grades, a.hand, a.out)
    except (MergeError, OSError) as e:
        print(f"usrok.grading merge: {e}", file=sys.stderr)
        return 1
    print(f"merged {len(rows)} row(s) -> {a.out}", file=sys.stderr)
    return 0
