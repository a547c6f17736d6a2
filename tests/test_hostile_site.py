"""Hostile text in the data reaches the site: the page still draws and nothing runs.

A one-page book is built with the course's Sphinx extension (much cheaper than the whole
book) from a table whose cells hold ``<!--<script>`` (which, unescaped inside the page's
JSON, would swallow the rest of the page), a ``</script>`` breakout, a ``javascript:``
address and a spreadsheet formula; the page is opened under its Content-Security-Policy.
"""

from __future__ import annotations

import csv
import functools
import http.server
import io
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
COMMENT = "<!--<script>"
BREAKOUT = "</script><script>window.__pwned = 'breakout'</script>"
ADDRESS = "javascript:window.__pwned='link'"
FORMULA = '=HYPERLINK("http://example.org","x")'

PAGE = textwrap.dedent('''\
    ---
    jupytext:
      text_representation:
        extension: .md
        format_name: myst
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---
    # Hostile data

    ```{code-cell} ipython3
    import altair as alt
    import pandas as pd
    from IPython.display import HTML
    from usrok import charts
    from usrok.safe import link_html

    rows = pd.DataFrame({"year": [2000, 2001, 2002], "people": [10, 20, 15],
                         "note": [%(comment)r, %(breakout)r, %(formula)r],
                         "address": [%(address)r, "https://example.org", %(address)r]})
    def chart(title):
        return charts.finish(
            alt.Chart(rows).mark_point().encode(x="year:Q", y="people:Q",
                                                tooltip=["note:N", "address:N", "people:Q"]),
            title=title, description="Three points; every text field holds hostile text " + %(comment)r,
            source=%(breakout)r)
    chart(%(comment)r)
    ```

    ```{code-cell} ipython3
    HTML("<ul>" + "".join(f"<li>{link_html(a, n)}</li>" for a, n in zip(rows.address, rows.note)) + "</ul>")
    ```

    ```{code-cell} ipython3
    chart("The second chart, after the hostile one")
    ```
    ''') % {"comment": COMMENT, "breakout": BREAKOUT, "address": ADDRESS, "formula": FORMULA}


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    book = tmp_path_factory.mktemp("hostile-book")
    (book / "_config.yml").write_text(textwrap.dedent("""\
        title: Hostile data
        only_build_toc_files: true
        execute: {execute_notebooks: force, timeout: 120}
        sphinx:
          extra_extensions: [usrok.book]
        """))
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (book / "page.md").write_text(PAGE)
    # The Vega bundle of the course's build, when there is one: writing it takes seconds.
    bundles = sorted((Path(__file__).parents[1] / "_build" / "html" / "_static" / "usrok").glob("vega-bundle-*.js"))
    if bundles:
        static = book / "_build" / "html" / "_static" / "usrok"
        static.mkdir(parents=True)
        shutil.copy(bundles[-1], static / bundles[-1].name)
    done = subprocess.run([str(BIN / "jupyter-book"), "build", str(book), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return book / "_build" / "html"


@pytest.fixture(scope="module")
def hostile_server(hostile_site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(hostile_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.slow  # builds a one-page book (about 20 s)
def test_hostile_data_cells_neither_break_the_page_nor_run(browser, hostile_site, hostile_server):
    html = (hostile_site / "page.html").read_text(encoding="utf-8")
    assert 'href="javascript' not in html.lower()
    assert '<meta http-equiv="Content-Security-Policy"' in html
    ctx = browser.new_context(accept_downloads=True)
    try:
        page = ctx.new_page()
        dialogs, errors = [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{hostile_server}/page.html", wait_until="load")
        charts = page.locator(".usrok-chart")
        assert charts.count() == 2
        for chart in charts.all():  # a chart draws when the reader comes near it (charts.js)
            chart.scroll_into_view_if_needed()
            page.wait_for_function("e => e.dataset.drawn", arg=chart.element_handle(), timeout=30000)
        assert [c.get_attribute("data-drawn") for c in page.locator(".usrok-chart").all()] == ["true", "true"]
        assert page.locator(".usrok-chart svg.marks").count() == 2
        # The hostile text shows as text.
        assert COMMENT in page.locator(".usrok-chart-desc").first.inner_text()
        assert BREAKOUT in page.locator(".usrok-source").first.inner_text()
        # The javascript: address is no link; clicking its text runs nothing.
        assert page.locator("a[href^='javascript' i]").count() == 0
        item = page.locator(".cell_output li").first
        assert item.inner_text() == COMMENT
        item.click()
        assert page.evaluate("window.__pwned") is None and dialogs == [] and errors == []
        # The data table and its CSV keep the text; a formula is defused with a leading '.
        details = page.locator("details.usrok-data").first
        details.locator("summary").click()
        assert COMMENT in details.locator("table").inner_text()
        with page.expect_download() as download:
            details.locator("a.usrok-csv").click()
        rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
        assert rows[0] == ["note", "address", "people"]
        assert rows[1][0] == COMMENT and rows[3][0] == "'" + FORMULA
        assert page.evaluate("window.__pwned") is None
    finally:
        ctx.close()
