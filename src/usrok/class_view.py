"""Class view of the principles assessment: where a class agrees and where it disagrees.

An instructor points :func:`read_submissions` at a folder of chapter-9 submissions (the
students' ``ex09_principles_assessment`` notebooks, graded or not) and gets every student's
45 scores plus one status row per file. :func:`cell_summary` turns the scores into the
class's mean and spread per cell, :func:`most_disputed` lists the cells a seminar should
start from, and :func:`mean_heatmap` / :func:`spread_heatmap` draw the two matrices.

Reading a submission never runs it: the ``answers = {...}`` cell is parsed as Python
source and only literal values are accepted (``ast.literal_eval``), so a hostile or broken
notebook cannot do anything but earn itself a status row. Every file gets exactly one row:

- ``complete``: all 45 cells have a whole-number score from -1 to 3;
- ``incomplete``: the answers were read, but some cells are unscored or out of range (the
  valid cells still count towards the class view; the row says how many are missing);
- ``malformed``: the file could not be read as a notebook, or its answers could not be
  read without running code (the row says why); it adds nothing to the class view. A
  ``.zip`` file in the folder gets such a row too (archives are not opened: unzip them
  first), so no submission goes missing without a trace.

:func:`demo_submissions` writes invented submissions (some deliberately broken) for trying
the view out; they are nobody's opinion.
"""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

from usrok.exercise import PRINCIPLE_SCALE

SCALE = tuple(PRINCIPLE_SCALE)  # -1 .. 3
MAX_BYTES = 20_000_000  # a submitted notebook is a few hundred KB; refuse anything far larger
STATUS_COMPLETE, STATUS_INCOMPLETE, STATUS_MALFORMED = "complete", "incomplete", "malformed"

__all__ = ["read_submissions", "cell_summary", "most_disputed", "mean_heatmap", "spread_heatmap",
           "demo_submissions", "STATUS_COMPLETE", "STATUS_INCOMPLETE", "STATUS_MALFORMED"]


class Unreadable(Exception):
    """A submission's answers cannot be read without running code (the message says why)."""


def _labels():
    from usrok import data

    areas = data.load("alliance_areas").sort_values("order")["area"].tolist()
    principles = data.load("principles").sort_values("principle_id")["label"].tolist()
    return areas, principles


def _answers_from_source(source: str) -> dict:
    """The ``answers`` dict a code cell builds, from literals only (nothing is executed)."""
    tree = ast.parse(source)
    answers = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "answers"
                                                for t in node.targets):
            try:
                answers = ast.literal_eval(node.value)
            except ValueError:
                raise Unreadable("`answers` is built by code, not written out as a dictionary of "
                                 "values; it was not run") from None
            if not isinstance(answers, dict):
                raise Unreadable(f"`answers` is a {type(answers).__name__}, not a dictionary")
        elif (answers is not None and isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Subscript)
              and isinstance(node.targets[0].value, ast.Name) and node.targets[0].value.id == "answers"):
            try:  # answers[(a, p)] = (score, "text") after the dictionary
                answers[ast.literal_eval(node.targets[0].slice)] = ast.literal_eval(node.value)
            except (ValueError, TypeError):
                raise Unreadable("a later `answers[...] = ...` line uses code, not values") from None
    if answers is None:
        raise Unreadable("no cell assigns `answers`")
    return answers


def _read_one(path: Path) -> dict:
    """The answers of one notebook file (raises Unreadable or another Exception)."""
    if path.stat().st_size > MAX_BYTES:
        raise Unreadable(f"file is larger than {MAX_BYTES // 1_000_000} MB")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise Unreadable("not a text file (not UTF-8)") from None
    except json.JSONDecodeError as e:
        raise Unreadable(f"not valid notebook JSON ({e.msg}, line {e.lineno})") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise Unreadable("not a notebook (no list of cells)")
    found = None
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if "answers" not in source:
            continue
        try:
            found = _answers_from_source(source)  # the last cell that assigns answers wins
        except SyntaxError as e:
            raise Unreadable(f"the answers cell is not valid Python (line {e.lineno})") from None
        except Unreadable as e:
            if str(e) != "no cell assigns `answers`":
                raise
    if found is None:
        raise Unreadable("no cell assigns `answers`")
    return found


def _cells(answers: dict, areas: list[str], principles: list[str]) -> tuple[list[dict], list[str]]:
    """Valid cells as rows, and the problems found (unscored, out of range, unknown keys)."""
    rows, problems, unscored = [], [], 0
    seen = set()
    for key, value in answers.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(type(k) is int for k in key)
                and 1 <= key[0] <= len(areas) and 1 <= key[1] <= len(principles)):
            problems.append(f"unknown cell {key!r}")
            continue
        score, text = value if isinstance(value, tuple) and len(value) == 2 else (value, "")
        if score is Ellipsis or score is None:
            unscored += 1
            continue
        if type(score) is not int or score not in SCALE:  # bool, float and str are refused too
            problems.append(f"cell {key}: score {score!r} is not a whole number from -1 to 3")
            continue
        seen.add(key)
        rows.append({"area": areas[key[0] - 1], "principle": principles[key[1] - 1],
                     "area_no": key[0], "principle_no": key[1], "score": score,
                     "justification": text if isinstance(text, str) and text != "..." else ""})
    missing = len(areas) * len(principles) - len(seen)
    if missing:
        problems.insert(0, f"{missing} of {len(areas) * len(principles)} cells have no valid score"
                        + (f" ({unscored} left as ...)" if unscored else ""))
    return rows, problems


def read_submissions(folder):
    """Read every ``.ipynb`` under ``folder`` without running it.

    Returns ``(scores, status)``: ``scores`` has one row per valid cell of each readable
    submission (``submission, area, principle, area_no, principle_no, score, justification``);
    ``status`` has exactly one row per file (``submission, status, cells_scored, problem``),
    sorted by file name. No file, however broken, stops the run.
    """
    import pandas as pd

    folder = Path(folder)
    areas, principles = _labels()
    n_cells = len(areas) * len(principles)
    score_rows, status_rows = [], []
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".ipynb", ".zip") and p.is_file())
    for path in found:
        if ".ipynb_checkpoints" in path.parts:
            continue
        name = str(path.relative_to(folder))
        if path.suffix.lower() == ".zip":
            status_rows.append({"submission": name, "status": STATUS_MALFORMED, "cells_scored": 0,
                                "problem": "a .zip archive, not opened: unzip it into the folder"})
            continue
        try:
            answers = _read_one(path)
            rows, problems = _cells(answers, areas, principles)
        except Unreadable as e:
            status_rows.append({"submission": name, "status": STATUS_MALFORMED, "cells_scored": 0,
                                "problem": str(e)})
            continue
        except Exception as e:  # noqa: BLE001 - a file must never stop the class view
            status_rows.append({"submission": name, "status": STATUS_MALFORMED, "cells_scored": 0,
                                "problem": f"could not be read ({type(e).__name__})"})
            continue
        score_rows += [{"submission": name, **r} for r in rows]
        complete = len(rows) == n_cells and not problems
        status_rows.append({"submission": name,
                            "status": STATUS_COMPLETE if complete else STATUS_INCOMPLETE,
                            "cells_scored": len(rows), "problem": "; ".join(problems[:3])})
    scores = pd.DataFrame(score_rows, columns=["submission", "area", "principle", "area_no",
                                               "principle_no", "score", "justification"])
    status = pd.DataFrame(status_rows, columns=["submission", "status", "cells_scored", "problem"])
    return scores, status


def cell_summary(scores):
    """Per cell (45 rows, book order): n, mean, sd (sample; empty below 2), min, max, and the
    number of students who gave each score (columns ``n_-1`` ... ``n_3``)."""
    import pandas as pd

    areas, principles = _labels()
    grid = pd.DataFrame([{"area": a, "principle": p, "area_no": i + 1, "principle_no": j + 1}
                         for i, a in enumerate(areas) for j, p in enumerate(principles)])
    g = scores.groupby(["area_no", "principle_no"])["score"]
    stats = g.agg(n="size", mean="mean", sd="std", min="min", max="max").reset_index()
    counts = (scores.pivot_table(index=["area_no", "principle_no"], columns="score", values="submission",
                                 aggfunc="size", fill_value=0)
              .reindex(columns=list(SCALE), fill_value=0))
    counts.columns = [f"n_{s}" for s in SCALE]
    out = grid.merge(stats, on=["area_no", "principle_no"], how="left").merge(
        counts.reset_index(), on=["area_no", "principle_no"], how="left")
    out["n"] = out["n"].fillna(0).astype(int)
    for s in SCALE:
        out[f"n_{s}"] = out[f"n_{s}"].fillna(0).astype(int)
    return out


def most_disputed(scores, summary=None, top: int = 10):
    """The ``top`` cells with the largest spread (sd, then range), with the score counts and,
    anonymously, one justification for the lowest and one for the highest score."""
    summary = cell_summary(scores) if summary is None else summary
    ranked = summary[summary["n"] >= 2].assign(range=lambda d: d["max"] - d["min"])
    ranked = ranked.sort_values(["sd", "range", "area_no", "principle_no"],
                                ascending=[False, False, True, True]).head(top)
    def example(cell, score):
        texts = [t for t in cell.loc[cell["score"] == score, "justification"] if t]
        return texts[0] if texts else ""

    rows = []
    for r in ranked.to_dict("records"):
        cell = scores[(scores["area_no"] == r["area_no"]) & (scores["principle_no"] == r["principle_no"])]
        rows.append({"area": r["area"], "principle": r["principle"], "n": r["n"],
                     "mean": round(r["mean"], 2), "sd": round(r["sd"], 2),
                     "lowest": int(r["min"]), "highest": int(r["max"]),
                     "scores -1/0/1/2/3": "/".join(str(r[f"n_{s}"]) for s in SCALE),
                     "a reason for the lowest": example(cell, int(r["min"])),
                     "a reason for the highest": example(cell, int(r["max"]))})
    import pandas as pd

    return pd.DataFrame(rows)


def _heatmap(summary, *, field: str, label_format: str, scale, legend_title: str, title: str,
             description: str, source: str, subtitle: str | None, white_text_from: float):
    import altair as alt
    import pandas as pd

    from usrok.chart_spec import finish

    areas, principles = _labels()
    data = summary[["area", "principle", "n", "mean", "sd", "min", "max"]].copy()
    data["label"] = [("–" if pd.isna(v) else format(v, label_format)) for v in summary[field]]
    data["value"] = summary[field]
    tip = [alt.Tooltip("area:N", title="Area"), alt.Tooltip("principle:N", title="Principle"),
           alt.Tooltip("n:Q", title="Students scoring it"),
           alt.Tooltip("mean:Q", title="Mean score", format=".2f"),
           alt.Tooltip("sd:Q", title="Spread (sd)", format=".2f"),
           alt.Tooltip("min:Q", title="Lowest"), alt.Tooltip("max:Q", title="Highest")]
    base = alt.Chart(data).encode(
        x=alt.X("principle:N", sort=principles, title="Principle",
                axis=alt.Axis(labelAngle=-35, labelAlign="right", labelLimit=230, labelFontSize=11)),
        y=alt.Y("area:N", sort=areas, title=None, axis=alt.Axis(labelLimit=250, labelFontSize=11)),
        tooltip=tip)
    cells = base.mark_rect(stroke="#fff", strokeWidth=1.5).encode(
        color=alt.Color("value:Q", title=legend_title, scale=scale,
                        legend=alt.Legend(orient="top", direction="horizontal", gradientLength=180)))
    text = base.mark_text(fontSize=12, fontWeight=600).encode(
        text="label:N",  # white on the darkest cells, for contrast
        color=alt.condition(f"datum.value >= {white_text_from}", alt.value("#fff"), alt.value("#111")))
    chart = (cells + text).properties(width=56 * len(principles), height=28 * len(areas))
    order = "Rows: the book's chapter order (not a ranking)."
    return finish(chart, title=title, description=description, source=source,
                  subtitle=f"{subtitle} {order}" if subtitle else order, width=None)


def mean_heatmap(summary, *, title: str = "The class's mean score per cell",
                 source: str = "students' submissions of exercise 9", subtitle: str | None = None):
    """The class mean per cell (-1 to 3), diverging at 0 like the students' own heatmaps."""
    import altair as alt

    from usrok.chart_principles import SCORE_COLOURS

    scored = summary.dropna(subset=["mean"])
    hi = scored.loc[scored["mean"].idxmax()] if len(scored) else None
    lo = scored.loc[scored["mean"].idxmin()] if len(scored) else None
    description = ("Heatmap of the class's mean score (from -1 to 3) for each area of cooperation and "
                   "principle; every cell prints its mean." + (
                       f" Highest mean: {hi['area']} for '{hi['principle']}' ({hi['mean']:.1f}); "
                       f"lowest: {lo['area']} for '{lo['principle']}' ({lo['mean']:.1f})."
                       if hi is not None else " No scores yet."))
    scale = alt.Scale(domain=list(SCALE), range=SCORE_COLOURS, type="linear")
    return _heatmap(summary, field="mean", label_format=".1f", scale=scale, legend_title="Mean score",
                    title=title, description=description, source=source, subtitle=subtitle,
                    white_text_from=2.5)


def spread_heatmap(summary, *, title: str = "How much the class disagrees, per cell",
                   source: str = "students' submissions of exercise 9", subtitle: str | None = None):
    """The spread (sample standard deviation) per cell: darker means more disagreement."""
    import altair as alt

    scored = summary.dropna(subset=["sd"])
    top = scored.loc[scored["sd"].idxmax()] if len(scored) else None
    description = ("Heatmap of the spread (standard deviation) of the class's scores for each area "
                   "and principle; every cell prints it, and darker cells are more disputed." + (
                       f" Most disputed: {top['area']} for '{top['principle']}' (sd {top['sd']:.2f})."
                       if top is not None else " Fewer than two scores per cell: no spread yet."))
    high = max(2.0, float(scored["sd"].max()) if len(scored) else 2.0)
    scale = alt.Scale(domain=[0, high], range=["#f7f7f7", "#5e3c99"])
    return _heatmap(summary, field="sd", label_format=".2f", scale=scale,
                    legend_title="Spread (sd)", title=title, description=description,
                    source=source, subtitle=subtitle, white_text_from=0.6 * high)


def demo_submissions(folder, n: int = 12, malformed: int = 2, incomplete: int = 1, seed: int = 9):
    """Write ``n`` invented chapter-9 submissions into ``folder`` for trying the class view.

    Scores are drawn around a made-up class consensus with more disagreement in some cells;
    ``incomplete`` of the files leave five cells as ``...`` and ``malformed`` are broken (a
    truncated file, then answers built by code, alternately). Returns the paths written.
    The scores are invented: nobody's view, and not the book's.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    areas, principles = _labels()
    centre = {(a, p): rng.choice([-1, 0, 1, 1, 2, 2, 2, 3]) for a in range(1, len(areas) + 1)
              for p in range(1, len(principles) + 1)}
    wobble = {k: rng.choice([0, 0, 1, 1, 2]) for k in centre}
    paths = []
    for i in range(1, n + 1):
        path = folder / f"student_{i:02d}.ipynb"
        broken = i > n - malformed
        lines = ["answers = {"]
        for (a, p), c in centre.items():
            score = min(3, max(-1, c + rng.randint(-wobble[(a, p)], wobble[(a, p)])))
            if i <= incomplete and a == len(areas):  # the last area left blank
                lines.append(f"    ({a}, {p}): (..., '...'),")
                continue
            text = (f"Invented demo reason {i}: area {a} scores {score} on principle {p} "
                    "because of the evidence brief.")
            lines.append(f"    ({a}, {p}): {(score, text)!r},")
        lines.append("}")
        code = "\n".join(lines)
        if broken and (n - i) % 2 == 1:
            code = "answers = {(a, p): (1, 'same for all') for a in range(1, 10) for p in range(1, 6)}"
        nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Exercise 9 (demo)"},
                        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                         "source": code}],
              "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                          "language": "python"}},
              "nbformat": 4, "nbformat_minor": 5}
        text = json.dumps(nb, indent=1)
        if broken and (n - i) % 2 == 0:
            text = text[: len(text) // 2]  # a truncated upload
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
