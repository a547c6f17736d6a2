"""No run of 12 or more words copied from the source text outside quotation marks.

The source text (Snyder's introduction, in ``../shared/source-text/``) is copyrighted: the
course teaches it in its own words and quotes only short phrases, in double quotation marks.
This test compares every built page (its text content) and every exercise master with the
source and reports any run of ``RUN`` or more consecutive words they share, except inside
double quotation marks ("…", “…”) or a block quote. Single quotes do not count as quotation
marks: the course quotes the source with double quotes, and single quotes are ambiguous with
apostrophes.

Normalisation, the same on both sides: Unicode compatibility form, accents dropped, lower
case, apostrophes removed ("Korea's" -> "koreas"), every other character that is not a
letter or a digit separates words (so "US–ROK", "US-ROK" and "US ROK" are the same two
words), and the source's headings get back the letter they drop ("US-ROAlliance" is
"US-ROK Alliance"). Block-level elements (paragraphs, list items, table cells, headings) are
separate texts: a run never joins the end of one paragraph to the start of the next.

The whole source text is absent on some machines (it is not in the repository); the tests
that need it skip there. CI has it. ``USROK_SOURCE_TEXT`` names another copy of the text file
(as for ``data/build_tables.py``). Run this file directly to list the runs it finds::

    .venv/bin/python tests/test_originality.py
"""

from __future__ import annotations

import html.parser
import os
import re
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = ROOT.parent / "shared" / "source-text"
HTML_DIR = ROOT / "_build" / "html"
MASTERS = sorted((ROOT / "exercises").glob("*/*.md"))
RUN = 12  # words: the course's limit for an unquoted run shared with the source

# ---------------------------------------------------------------------------
# Normalising and comparing
# ---------------------------------------------------------------------------
_APOSTROPHES = re.compile(r"[\u0027\u2019\u02bc]")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
# The source's headings drop a letter: "US-ROAlliance" is "US-ROK Alliance".
_DROPPED_K = re.compile(r"\bUS-RO(?=[A-Z][a-z])")


def words(text: str) -> list[str]:
    """The text as a list of normalised words (see the module docstring)."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = _APOSTROPHES.sub("", text)
    return [w for w in _NOT_WORD.split(text) if w]


def source_words(text: str) -> list[str]:
    return words(_DROPPED_K.sub("US-ROK ", text))


def shingles(tokens: list[str], n: int = RUN) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


# A quotation: curly double quotes, or a pair of straight double quotes.
_QUOTED = re.compile(r"\u201c[^\u201c\u201d]*\u201d|\"[^\"]*\"")


def unquoted_parts(text: str) -> list[str]:
    """The parts of one block of text outside double quotation marks.

    A quotation is cut out and splits the text, so words on its two sides never join
    into one run. An opening mark with no closing mark quotes nothing.
    """
    return _QUOTED.split(text)


def shared_runs(text: str, source: set[tuple[str, ...]], n: int = RUN) -> list[str]:
    """Maximal runs of ``n`` or more words of ``text`` (outside quotes) found in the source."""
    runs = []
    for part in unquoted_parts(text):
        tokens = words(part)
        hits = [i for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n]) in source]
        start = end = None
        for i in hits:
            if start is not None and i <= end - n + 1:  # overlaps or touches the current run
                end = i + n
                continue
            if start is not None:
                runs.append(" ".join(tokens[start:end]))
            start, end = i, i + n
        if start is not None:
            runs.append(" ".join(tokens[start:end]))
    return runs


# ---------------------------------------------------------------------------
# Text of a built page and of an exercise master
# ---------------------------------------------------------------------------
_BLOCKS = {"address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div",
           "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
           "h4", "h5", "h6", "header", "hr", "label", "legend", "li", "main", "nav", "ol",
           "p", "pre", "section", "summary", "table", "tbody", "td", "th", "thead", "title",
           "tr", "ul"}
_SKIP = {"script", "style", "template", "noscript", "svg"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


class _PageText(html.parser.HTMLParser):
    """Collects the text of a page as a list of blocks, leaving out block quotes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skip = 0      # depth inside script/style/...
        self._quote = 0     # depth inside <blockquote>

    def _flush(self):
        text = "".join(self._current).strip()
        if text:
            self.blocks.append(text)
        self._current = []

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            if tag in _BLOCKS:
                self._flush()
            return
        if tag in _SKIP:
            self._skip += 1
        elif tag in _BLOCKS:
            self._flush()
            if tag == "blockquote":
                self._quote += 1

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self._flush()
            if tag == "blockquote":
                self._quote = max(0, self._quote - 1)

    def handle_data(self, data):
        if not self._skip and not self._quote:
            self._current.append(data)

    def close(self):
        super().close()
        self._flush()


def page_blocks(html_text: str) -> list[str]:
    """The text content of a built page, one string per block, without block quotes."""
    parser = _PageText()
    parser.feed(html_text)
    parser.close()
    return parser.blocks


def markdown_blocks(md_text: str) -> list[str]:
    """A Markdown file as blocks (paragraphs), without block quotes ("> ..." lines)."""
    blocks, current = [], []
    for line in md_text.splitlines():
        if not line.strip() or line.lstrip().startswith(">"):
            if current:
                blocks.append(" ".join(current))
            current = []
            continue
        current.append(line)
    if current:
        blocks.append(" ".join(current))
    return blocks


def find_runs(blocks: list[str], source: set[tuple[str, ...]]) -> list[str]:
    return [run for block in blocks for run in shared_runs(block, source)]


def built_pages() -> list[Path]:
    skip = {"search.html", "genindex.html"}
    return sorted(p for p in HTML_DIR.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)


def source_files() -> list[Path]:
    if os.environ.get("USROK_SOURCE_TEXT"):
        path = Path(os.environ["USROK_SOURCE_TEXT"])
        return [path] if path.is_file() else []
    return sorted(SOURCE_DIR.glob("*.txt")) if SOURCE_DIR.is_dir() else []


def load_source() -> set[tuple[str, ...]] | None:
    files = source_files()
    if not files:
        return None
    return set().union(*(shingles(source_words(f.read_text(encoding="utf-8"))) for f in files))


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------
SOURCE = load_source()
needs_source = pytest.mark.skipif(SOURCE is None, reason="the source text (../shared/source-text/) "
                                                        "is not on this machine")

# A sentence written for these tests, standing in for the source.
PLANTED = ("The alliance between the two countries was formed in direct answer to the pressing "
           "security needs of a divided peninsula after the war had stopped.")


def test_normalisation_of_words():
    assert words("South Korea’s “US–ROK” alliance, vis-à-vis Japan") == \
        ["south", "koreas", "us", "rok", "alliance", "vis", "a", "vis", "japan"]
    assert source_words("US-ROAlliance Adaptation") == ["us", "rok", "alliance", "adaptation"]


def test_detector_finds_a_planted_copy():
    source = shingles(words(PLANTED))
    page = ("<html><body><main><h1>Chapter</h1><p>Our summary. "
            + PLANTED.upper().replace("alliance", "Alliance")
            + " More of our words.</p></main></body></html>")
    runs = find_runs(page_blocks(page), source)
    assert runs == [" ".join(words(PLANTED))]
    # Eleven words are allowed; twelve are not.
    eleven = " ".join(PLANTED.split()[:11])
    assert find_runs(page_blocks(f"<p>{eleven}</p>"), source) == []
    twelve = " ".join(PLANTED.split()[:12])
    assert len(find_runs(page_blocks(f"<p>{twelve}</p>"), source)) == 1


def test_detector_spares_quotations_and_block_quotes():
    source = shingles(words(PLANTED))
    for page in (f"<p>Snyder writes: “{PLANTED}”</p>",
                 f'<p>Snyder writes: "{PLANTED}" and we agree.</p>',
                 f"<blockquote><p>{PLANTED}</p></blockquote>"):
        assert find_runs(page_blocks(page), source) == [], page
    # Single quotes are not quotation marks here, and a run may not hide behind markup.
    assert find_runs(page_blocks(f"<p>the section ‘{PLANTED}’</p>"), source)
    split = PLANTED.replace("security needs", "<em>security</em> <a href='#'>needs</a>")
    assert find_runs(page_blocks(f"<p>{split}</p>"), source)
    # Paragraphs are separate texts: no run across them (each piece here is under 12 words).
    w = PLANTED.split()
    pieces = [" ".join(w[i:i + 9]) for i in range(0, len(w), 9)]
    assert find_runs(page_blocks("".join(f"<p>{p}</p>" for p in pieces)), source) == []
    assert find_runs(page_blocks(" ".join(pieces)), source)  # the same words in one text
    assert find_runs(markdown_blocks(f"> {PLANTED}\n\nOurs.\n"), source) == []
    assert find_runs(markdown_blocks(f"Ours.\n{PLANTED}\n"), source)


@needs_source
def test_detector_bites_on_a_real_sentence_of_the_source():
    text = source_files()[0].read_text(encoding="utf-8")
    sentence = next(s for s in re.split(r"(?<=\.)\s+", text) if len(s.split()) > 25)
    assert find_runs(page_blocks(f"<p>As we saw, {sentence}</p>"), SOURCE)
    assert not find_runs(page_blocks(f"<p>As we saw, “{sentence}”</p>"), SOURCE)


@needs_source
@pytest.mark.parametrize("page", built_pages(), ids=lambda p: str(p.relative_to(HTML_DIR)))
def test_built_page_copies_no_long_run(site, page):
    runs = find_runs(page_blocks(page.read_text(encoding="utf-8")), SOURCE)
    assert not runs, f"{len(runs)} run(s) of {RUN}+ words shared with the source text:\n" + \
        "\n".join(f"  - {r}" for r in runs)


@needs_source
@pytest.mark.parametrize("master", MASTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_exercise_master_copies_no_long_run(master):
    runs = find_runs(markdown_blocks(master.read_text(encoding="utf-8")), SOURCE)
    assert not runs, f"{len(runs)} run(s) of {RUN}+ words shared with the source text:\n" + \
        "\n".join(f"  - {r}" for r in runs)


def test_there_are_pages_and_masters_to_check(site):
    assert len(built_pages()) >= 14 and len(MASTERS) >= 8


if __name__ == "__main__":
    if SOURCE is None:
        sys.exit(f"source text not found (looked in {SOURCE_DIR} and $USROK_SOURCE_TEXT)")
    found = 0
    for path in built_pages():
        for run in find_runs(page_blocks(path.read_text(encoding="utf-8")), SOURCE):
            found += 1
            print(f"{path.relative_to(ROOT)}: {run}")
    for path in MASTERS:
        for run in find_runs(markdown_blocks(path.read_text(encoding="utf-8")), SOURCE):
            found += 1
            print(f"{path.relative_to(ROOT)}: {run}")
    print(f"{found} run(s) of {RUN}+ words")
    sys.exit(1 if found else 0)
