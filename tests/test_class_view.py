"""The instructor's class view of the principles assessment (usrok.class_view).

- On 12 generated submissions, two of them malformed and one incomplete, every file gets one
  named row, the malformed ones with a reason, and the mean and spread heatmaps and the
  disputed-cells table are drawn from the ten readable ones.
- Hostile or broken files (deep JSON, binary junk, code in the answers, out-of-range
  scores, a syntax error, not a notebook) each get a row and never stop the run, and
  nothing in a submission is ever executed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usrok import charts, class_view


def notebook(source: str) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                  "execution_count": None, "source": source}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def full_answers(score=2) -> str:
    cells = ",\n".join(f"    ({a}, {p}): ({score}, 'A reason that names the maritime brief for "
                       f"area {a} and principle {p}.')" for a in range(1, 10) for p in range(1, 6))
    return "answers = {\n" + cells + "\n}\n"


def test_twelve_generated_submissions_two_malformed(tmp_path):
    paths = class_view.demo_submissions(tmp_path, n=12, malformed=2, incomplete=1)
    assert len(paths) == 12
    scores, status = class_view.read_submissions(tmp_path)

    assert status["submission"].tolist() == [f"student_{i:02d}.ipynb" for i in range(1, 13)]
    by_status = status.groupby("status")["submission"].apply(list).to_dict()
    assert by_status["malformed"] == ["student_11.ipynb", "student_12.ipynb"]
    assert by_status["incomplete"] == ["student_01.ipynb"]
    assert len(by_status["complete"]) == 9
    malformed = status[status["status"] == "malformed"].set_index("submission")["problem"]
    assert "built by code" in malformed["student_11.ipynb"]
    assert "not valid notebook JSON" in malformed["student_12.ipynb"]
    incomplete = status.set_index("submission").loc["student_01.ipynb"]
    assert incomplete["cells_scored"] == 40 and "5 of 45" in incomplete["problem"]

    summary = class_view.cell_summary(scores)
    assert len(summary) == 45
    # Ten readable files; the incomplete one left the ninth area blank.
    assert set(summary.loc[summary["area_no"] < 9, "n"]) == {10}
    assert set(summary.loc[summary["area_no"] == 9, "n"]) == {9}
    counts = summary[[f"n_{s}" for s in class_view.SCALE]].sum(axis=1)
    assert (counts == summary["n"]).all()
    assert summary["mean"].between(-1, 3).all()

    disputed = class_view.most_disputed(scores, summary, top=8)
    assert len(disputed) == 8
    assert disputed["sd"].is_monotonic_decreasing
    assert disputed.iloc[0]["sd"] == pytest.approx(summary["sd"].max(), abs=0.01)
    assert all(disputed["a reason for the lowest"].str.len() > 0)

    for chart in (class_view.mean_heatmap(summary), class_view.spread_heatmap(summary)):
        spec = charts.check(chart)  # title, description and source line
        values = spec["datasets"][next(iter(spec["datasets"]))]
        assert len(values) == 45


def test_broken_and_hostile_files_get_a_row_each_and_nothing_runs(tmp_path):
    canary = tmp_path / "pwned"
    files = {
        "deep.ipynb": "[" * 200_000 + "]" * 200_000,
        "binary.ipynb": bytes(range(256)) * 40,
        "list.ipynb": "[1, 2, 3]",
        "empty.ipynb": "",
        "code.ipynb": notebook(f"answers = __import__('pathlib').Path({str(canary)!r}).touch()"),
        "later_code.ipynb": notebook(full_answers() + f"answers[(1, 1)] = open({str(canary)!r}, 'w')\n"),
        "syntax.ipynb": notebook("answers = {(1, 1): (2, 'unfinished'"),
        "no_answers.ipynb": notebook("x = 1"),
        "out_of_range.ipynb": notebook(full_answers(score=7)),
        "bool_scores.ipynb": notebook(full_answers(score=True)),
        "sub/good.ipynb": notebook(full_answers()),
        "=cmd|' /C calc'!A0.ipynb": notebook(full_answers(score=1)),
    }
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)

    scores, status = class_view.read_submissions(tmp_path)

    assert not canary.exists(), "a submission's code was executed"
    assert sorted(status["submission"]) == sorted(files), "one row per file, none dropped"
    row = status.set_index("submission")
    for name in ["deep.ipynb", "binary.ipynb", "list.ipynb", "empty.ipynb", "code.ipynb",
                 "later_code.ipynb", "syntax.ipynb", "no_answers.ipynb"]:
        assert row.loc[name, "status"] == "malformed", name
        assert row.loc[name, "problem"], name
    assert row.loc["out_of_range.ipynb", "status"] == "incomplete"
    assert "not a whole number from -1 to 3" in row.loc["out_of_range.ipynb", "problem"]
    assert row.loc["bool_scores.ipynb", "status"] == "incomplete"
    assert row.loc["sub/good.ipynb", "status"] == "complete"
    # Only the two good files contribute scores.
    assert sorted(scores["submission"].unique()) == sorted(["sub/good.ipynb", "=cmd|' /C calc'!A0.ipynb"])


def test_an_empty_folder_gives_empty_tables_and_still_draws(tmp_path):
    scores, status = class_view.read_submissions(tmp_path)
    assert scores.empty and status.empty
    summary = class_view.cell_summary(scores)
    assert len(summary) == 45 and (summary["n"] == 0).all()
    charts.check(class_view.mean_heatmap(summary))
    charts.check(class_view.spread_heatmap(summary))
    assert class_view.most_disputed(scores, summary).empty


@pytest.mark.parametrize("name", ["ex09_principles_assessment"])
def test_the_student_notebook_is_read_as_an_unscored_submission(name, tmp_path):
    """A blank student notebook (answers left as ...) is incomplete with 45 cells missing."""
    from shutil import copyfile

    student = Path(__file__).resolve().parents[1] / "exercises" / name / "student" / f"{name}.ipynb"
    copyfile(student, tmp_path / "blank.ipynb")
    scores, status = class_view.read_submissions(tmp_path)
    assert status.loc[0, "status"] == "incomplete"
    assert status.loc[0, "cells_scored"] == 0 and "45 of 45" in status.loc[0, "problem"]


def test_a_zip_archive_gets_a_row_instead_of_going_missing(tmp_path):
    """Archives are not opened, but a submission handed in as .zip is named, not skipped."""
    (tmp_path / "alice.ipynb").write_text(notebook(full_answers()), encoding="utf-8")
    (tmp_path / "bob.ZIP").write_bytes(b"PK\x03\x04 not really an archive")
    (tmp_path / "notes.txt").write_text("not a submission", encoding="utf-8")
    scores, status = class_view.read_submissions(tmp_path)
    rows = status.set_index("submission")
    assert list(rows.index) == ["alice.ipynb", "bob.ZIP"]
    assert rows.loc["alice.ipynb", "status"] == class_view.STATUS_COMPLETE
    assert rows.loc["bob.ZIP", "status"] == class_view.STATUS_MALFORMED
    assert "unzip" in rows.loc["bob.ZIP", "problem"]
    assert set(scores["submission"]) == {"alice.ipynb"}
