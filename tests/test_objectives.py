"""Every learning objective is checked, and every check names a real objective.

Objective *k* of chapter *N* (the k-th item of the chapter's "Learning objectives" list) has
the id ``N.k``. A self-check quiz question names what it checks with ``"objective": "N.k"``
(or a list); an exercise master names it per question in its header,
``usrok: objectives: {q1: ["N.k"], ...}``. This test reads the chapter sources and the
masters (no build needed) and fails when

- an objective is checked by no quiz question and no exercise question;
- a quiz question or an exercise question names no objective, or names one that does not
  exist (a typo, or an objective renumbered away);
- an exercise's ``objectives`` map names a question the master does not have.

It also guards properties of the checks themselves: the right answer does not sit in the
same place in every question of a quiz (chapters 8 and 9 and the evidence briefs) or of the
exercises' multiple-choice questions; it is not, as a rule, the longest choice (a student
who always picks the longest choice must not pass); and at least 40% of all assignment
points go to argument and interpretation (each master labels its questions under
``usrok: skills:``).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from usrok.assignments import assignments

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
SKILLS = {"argument", "interpretation", "data", "recall", "format"}
MY_QUIZ_PAGES = ["08_nine_areas_of_cooperation", "08_1_evidence_briefs", "09_assessing_the_principles"]


# ------------------------------------------------------------------ reading the sources
def chapter_number(path: Path) -> int | None:
    m = re.match(r"(\d\d)_", path.name)
    return int(m.group(1)) if m and not re.match(r"\d\d_\d", path.name) else None


def objectives_of(text: str, chapter: int) -> list[str]:
    """Ids of the ordered list inside the page's "Learning objectives" admonition."""
    m = re.search(r"^(:::|```)\{admonition\} Learning objectives\n(.*?)^\1\s*$", text, re.S | re.M)
    if not m:
        return []
    items = re.findall(r"^\d+\.\s", m.group(2), re.M)
    return [f"{chapter}.{k}" for k in range(1, len(items) + 1)]


def code_cells(text: str) -> list[str]:
    cells = []
    for m in re.finditer(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", text, re.S | re.M):
        body = m.group(1)
        if body.startswith("---\n"):  # a YAML block of cell options
            body = body.split("\n---\n", 1)[1]
        body = "\n".join(line for line in body.splitlines() if not re.match(r"^:\w+:", line))
        cells.append(body)
    return cells


def text_length(node) -> int:
    """Characters a reader sees in an answer's text; an f-string's fields count as 4 each."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return len(node.value)
    if isinstance(node, ast.JoinedStr):
        return sum(len(v.value) if isinstance(v, ast.Constant) else 4 for v in node.values)
    return 0


def exercise_choices(text: str) -> list[dict]:
    """Multiple-choice questions of a master: ``{"question", "right", "lengths"}`` each.

    A question lists its choices as ``- **a** ...`` lines; its solution cell is the next
    ``name = "x"  # SOLUTION`` line.
    """
    found = []
    for m in re.finditer(r"\*\*Question (\d+)\*\*[^\n]*\n\n((?:- \*\*[a-d]\*\* [^\n]*\n)+)", text):
        choices = re.findall(r"- \*\*([a-d])\*\* ([^\n]*)", m.group(2))
        solution = re.search(r'^\w+ = "([a-d])"  # SOLUTION$', text[m.end():], re.M)
        letters = [letter for letter, _ in choices]
        found.append({"question": f"q{m.group(1)}",
                      "right": letters.index(solution.group(1)) if solution else None,
                      "lengths": [len(choice) for _, choice in choices]})
    return found


def longest_is_right(questions: list[dict]) -> list[str]:
    """The questions whose right answer is strictly longer than every wrong one."""
    return [q["question"] for q in questions if q["right"] is not None and len(q["lengths"]) > 1
            and all(n < q["lengths"][q["right"]] for i, n in enumerate(q["lengths"]) if i != q["right"])]


def quiz_questions(text: str) -> list[dict]:
    """Every quiz question (a dict literal with "question" and "answers") on a page.

    Returns ``{"question": first words, "objectives": [...], "right": index of the correct
    answer or None, "lengths": characters of each answer's text}`` per question.
    """
    found = []
    for source in code_cells(text):
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Dict):
                continue
            keys = {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
            if "question" not in keys or "answers" not in keys:
                continue
            label = ast.unparse(keys["question"])[:70]
            tag = keys.get("objective")
            objectives = []
            if isinstance(tag, ast.Constant) and isinstance(tag.value, str):
                objectives = [tag.value]
            elif isinstance(tag, (ast.List, ast.Tuple)):
                objectives = [e.value for e in tag.elts if isinstance(e, ast.Constant)]
            right, lengths = None, []
            if isinstance(keys["answers"], ast.List):
                for i, answer in enumerate(keys["answers"].elts):
                    if isinstance(answer, ast.Dict):
                        a = {k.value: v for k, v in zip(answer.keys, answer.values) if isinstance(k, ast.Constant)}
                        if isinstance(a.get("correct"), ast.Constant) and a["correct"].value is True:
                            right = i
                        lengths.append(text_length(a.get("text")))
            found.append({"question": label, "objectives": objectives, "right": right, "lengths": lengths})
    return found


def pages() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(CHAPTERS.glob("*.md"))}


def all_objectives() -> dict[str, str]:
    """Objective id -> the page that states it."""
    found = {}
    for path in sorted(CHAPTERS.glob("*.md")):
        n = chapter_number(path)
        if n is not None:
            for oid in objectives_of(path.read_text(encoding="utf-8"), n):
                found[oid] = path.stem
    return found


def header(master_path: str) -> dict:
    text = Path(master_path).read_text(encoding="utf-8")
    return (yaml.safe_load(text.split("\n---\n", 1)[0][4:]) or {}).get("jupyter", {}).get("usrok", {}) or {}


def checks() -> list[tuple[str, list[str]]]:
    """(where, objective ids) for every quiz question and every exercise question."""
    found = []
    for stem, text in pages().items():
        for q in quiz_questions(text):
            found.append((f"{stem} quiz: {q['question']}", q["objectives"]))
    for a in assignments(ROOT):
        tags = a["objectives"]
        for q in a["questions"]:
            found.append((f"{a['name']} {q['name']}", [str(t) for t in tags.get(q["name"], [])]))
    return found


# ------------------------------------------------------------------ the tests
def test_every_chapter_states_its_objectives():
    numbered = [p for p in CHAPTERS.glob("*.md") if chapter_number(p) is not None]
    assert len(numbered) >= 9
    empty = [p.name for p in numbered if not objectives_of(p.read_text(encoding="utf-8"), chapter_number(p))]
    assert not empty, f"no Learning objectives list on {empty}"


def unchecked_and_unknown(objectives: dict[str, str], found: list[tuple[str, list[str]]]):
    checked = {oid for _, tags in found for oid in tags}
    unchecked = sorted(set(objectives) - checked, key=lambda s: [int(x) for x in s.split(".")])
    unknown = [f"{where} names {oid}" for where, tags in found for oid in tags if oid not in objectives]
    untagged = [where for where, tags in found if not tags]
    return unchecked, unknown, untagged


def test_every_objective_is_checked_and_every_check_names_one():
    objectives = all_objectives()
    unchecked, unknown, untagged = unchecked_and_unknown(objectives, checks())
    assert not unchecked, "objectives checked by no quiz or exercise question: " + ", ".join(
        f"{o} ({objectives[o]})" for o in unchecked)
    assert not unknown, "checks naming objectives that do not exist: " + "; ".join(unknown)
    assert not untagged, "questions that name no objective: " + "; ".join(untagged)


def test_exercise_objective_maps_name_real_questions():
    for a in assignments(ROOT):
        names = {q["name"] for q in a["questions"]}
        extra = set(a["objectives"]) - names
        assert not extra, f"{a['name']}: objectives for questions it does not have: {sorted(extra)}"


def test_the_check_bites_on_a_removed_check_and_a_typo():
    """Removing the only check of an objective, or mistyping a tag, is reported by name."""
    objectives = {"8.1": "p", "8.2": "p"}
    found = [("quiz q1", ["8.1"]), ("ex08 q6", ["8.2"])]
    assert unchecked_and_unknown(objectives, found) == ([], [], [])
    assert unchecked_and_unknown(objectives, [found[0]])[0] == ["8.2"]
    assert unchecked_and_unknown(objectives, [found[0], ("ex08 q6", ["8.20"])])[1] == ["ex08 q6 names 8.20"]
    assert unchecked_and_unknown(objectives, found + [("quiz q3", [])])[2] == ["quiz q3"]


@pytest.mark.parametrize("stem", MY_QUIZ_PAGES)
def test_right_answers_move_around_in_the_quiz(stem):
    questions = quiz_questions(pages()[stem])
    positions = [q["right"] for q in questions]
    assert None not in positions, f"{stem}: a quiz question without exactly one literal correct answer"
    assert len(questions) < 3 or len(set(positions)) >= 2, f"{stem}: the right answer is always at {positions[0]}"
    assert Counter(positions).most_common(1)[0][1] <= max(2, len(positions) // 2 + 1), \
        f"{stem}: the right answer sits at the same place too often: {positions}"


def test_multiple_choice_answers_in_the_exercises_use_every_letter():
    letters = Counter()
    for a in assignments(ROOT):
        text = Path(a["path"]).read_text(encoding="utf-8")
        letters.update(re.findall(r'^\w+ = "([a-d])"  # SOLUTION$', text, re.M))
    assert set(letters) == set("abcd"), letters
    assert max(letters.values()) <= 0.5 * sum(letters.values()), letters


def test_argument_and_interpretation_carry_at_least_40_percent_of_points():
    totals = Counter()
    for a in assignments(ROOT):
        skills = header(a["path"]).get("skills") or {}
        for q in a["questions"]:
            assert skills.get(q["name"]) in SKILLS, f"{a['name']} {q['name']}: skill {skills.get(q['name'])!r}"
            totals[skills[q["name"]]] += q["points"]
        written = [q["name"] for q in a["questions"] if q["manual"]]
        assert all(skills[q] == "argument" for q in written), f"{a['name']}: a written question not labelled argument"
    share = (totals["argument"] + totals["interpretation"]) / sum(totals.values())
    assert share >= 0.40, f"argument and interpretation earn {share:.0%} of the points: {dict(totals)}"


def test_the_longest_choice_is_not_usually_the_right_one():
    """Picking the longest choice must not be a winning strategy (at most a third of questions)."""
    quiz = [q for stem in MY_QUIZ_PAGES for q in quiz_questions(pages()[stem])]
    exercises = [dict(q, question=f"{a['name']} {q['question']}") for a in assignments(ROOT)
                 for q in exercise_choices(Path(a["path"]).read_text(encoding="utf-8"))]
    assert len(exercises) >= 9 and all(q["right"] is not None for q in exercises)
    for kind, questions in (("quiz", quiz), ("exercise", exercises)):
        longest = longest_is_right(questions)
        assert len(longest) <= len(questions) / 3, \
            f"the right {kind} answer is the longest choice in {len(longest)} of {len(questions)}: {longest}"


def test_the_longest_choice_check_bites():
    gameable = [{"question": f"q{i}", "right": 0, "lengths": [90, 40, 50]} for i in range(3)]
    fair = [{"question": "q1", "right": 1, "lengths": [90, 80, 85]}]
    assert longest_is_right(gameable) == ["q0", "q1", "q2"]
    assert longest_is_right(fair) == []
    choices = exercise_choices('**Question 2** (2 points). Pick.\n\n- **a** short\n- **b** a much longer one\n\n'
                               '```python\npick = "b"  # SOLUTION\n```\n')
    assert choices == [{"question": "q2", "right": 1, "lengths": [5, 17]}]
