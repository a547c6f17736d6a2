"""Static self-check quizzes that work in the built page with no kernel.

Each question is a group of radio buttons. Choosing an answer reveals its
explanation through CSS alone (so it works in the static book, in JupyterLab and
with the keyboard: Tab to the question, arrow keys to choose). ``quiz.js`` in the
book also reads the explanation out to screen readers.
"""

from __future__ import annotations

import html
import re
import zlib

from IPython.display import HTML

# Inline so the quiz also works in JupyterLab, where the book's CSS is absent.
_STYLE = """<style>
.usrok-quiz fieldset{border:1px solid #bbb;border-radius:6px;margin:0 0 1rem;padding:.5rem 1rem}
.usrok-quiz legend{font-size:1rem;font-weight:600;padding:0 .25rem;float:none;width:auto;margin-bottom:.3rem}
.usrok-choice{margin:.25rem 0;display:flex;flex-wrap:wrap;align-items:baseline;gap:0 .45rem}
.usrok-choice label{flex:1 1 0;min-width:12rem}
.usrok-why{display:none;flex-basis:100%;margin:.2rem 0 .4rem 1.6rem;padding:.3rem .6rem;border-left:4px solid #555;background:#f4f4f4;color:#111}
.usrok-choice input:checked~.usrok-why{display:block}
.usrok-why.right{border-left-color:#009E73}.usrok-why.wrong{border-left-color:#D55E00}
.usrok-choice input:focus-visible{outline:3px solid #0072B2;outline-offset:2px}
.usrok-status{position:absolute;left:-9999px}
</style>"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "q"


def quiz_html(quiz_id: str, questions: list[dict]) -> str:
    """Render questions to HTML.

    ``questions``: a list of ``{"question": str, "answers": [{"text": str,
    "correct": bool, "why": str}, ...]}``; exactly one answer per question is correct.
    Other keys (e.g. ``"objective"``) are ignored here.
    """
    # A section, not a form: nothing is submitted, and no inline handler is needed to stop
    # a submission (the site's Content-Security-Policy runs no inline script).
    parts = [_STYLE, f'<section class="usrok-quiz" id="quiz-{_slug(quiz_id)}" '
                     f'aria-label="Self-check quiz">']
    for n, q in enumerate(questions, start=1):
        answers = q["answers"]
        if sum(bool(a.get("correct")) for a in answers) != 1:
            raise ValueError(f"question {n} of quiz {quiz_id!r} needs exactly one correct answer")
        if not all(a.get("why") for a in answers):
            raise ValueError(f"question {n} of quiz {quiz_id!r}: every answer needs an explanation")
        name = f"{_slug(quiz_id)}-q{n}"
        parts.append(f'<fieldset><legend>{n}. {html.escape(q["question"])}</legend>')
        for k, a in enumerate(answers):
            verdict, cls = ("Correct.", "right") if a.get("correct") else ("Not quite.", "wrong")
            parts.append(
                f'<div class="usrok-choice"><input type="radio" name="{name}" id="{name}-{k}" '
                f'value="{k}"> <label for="{name}-{k}">{html.escape(a["text"])}</label>'
                f'<div class="usrok-why {cls}"><strong>{verdict}</strong> {html.escape(a["why"])}</div></div>'
            )
        parts.append('<p class="usrok-status" role="status" aria-live="polite"></p></fieldset>')
    parts.append("</section>")
    return "".join(parts)


def vary_positions(questions: list[dict]) -> list[dict]:
    """The questions with each right answer moved from first place to a varied position.

    Authors write the right answer first; this moves it, keeping the wrong answers' order, to
    a position taken from a checksum of the question's text: stable from build to build, every
    position used, and no sequence (2nd, 4th, 2nd, ...) a student could learn.
    """
    out = []
    for n, q in enumerate(questions, start=1):
        answers = list(q["answers"])
        if not answers or not answers[0].get("correct"):
            raise ValueError(f"question {n}: write the right answer first; vary_positions moves it")
        k = zlib.crc32(q["question"].encode("utf-8")) % len(answers)
        out.append({**q, "answers": answers[1:k + 1] + answers[:1] + answers[k + 1:]})
    return out


def show(quiz_id: str, questions: list[dict]) -> HTML:
    """Display a quiz in a notebook or the book."""
    return HTML(quiz_html(quiz_id, questions))
