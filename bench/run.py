"""Benchmark the course against its budgets and write bench/RESULTS.md.

    make bench            (or: .venv/bin/python bench/run.py [--skip-install] [--runs 3])
    .venv/bin/python bench/run.py --lighthouse-only [--html _build/html] [--runs 3]
        (Lighthouse and the first chart drawn, on an existing build; rewrites only RESULTS.md's
        Lighthouse section)

Works on a clean copy of the committed files (a git clone) in bench/_work/, so the
numbers do not depend on what is cached in the working tree. Prints PASS/FAIL per
budget. Timing depends on the machine; CI does not run this.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import glob
import http.server
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import lighthouse  # bench/lighthouse.py

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"
BIN = Path(sys.executable).parent
JB = str(BIN / "jupyter-book")
FLAGS = ["-W", "-n", "--keep-going"]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def timed(cmd, cwd, env=None) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(map(str, cmd))}\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return elapsed


def clean_copy() -> Path:
    """The committed files only, as a fresh clone has them (a git clone of HEAD)."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    book = WORK / "book"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(book)], check=True)
    return book


def build_times(book: Path) -> dict:
    # The copy's own usrok package, not the working tree's editable install.
    env = {**os.environ, "PYTHONPATH": str(book / "src")}
    clean = timed([JB, "build", ".", *FLAGS], book, env)
    noop = timed([JB, "build", ".", *FLAGS], book, env)
    # `make book` as a maintainer runs it, with this venv (assumed current: no pip install).
    # The first call builds the assignments and records the build; the second finds
    # nothing changed and does not start Sphinx.
    make = ["make", "-s", "book", f"VENV={BIN.parent}", f"--assume-old={BIN.parent}/.book-env"]
    timed(make, book, env)
    noop_make = timed(make, book, env)
    chapter = book / "chapters" / "03_after_the_cold_war.md"
    text = chapter.read_text(encoding="utf-8")
    # A text-only edit: a sentence added to the end of the page (no code changes).
    chapter.write_text(text + "\n\nA sentence added by the benchmark.\n", encoding="utf-8")
    edit = timed([JB, "build", ".", *FLAGS], book, env)
    chapter.write_text(text, encoding="utf-8")
    stock_dir = WORK / "stock"
    subprocess.run([JB, "create", str(stock_dir)], check=True, capture_output=True)
    stock = timed([JB, "build", str(stock_dir)], WORK)
    return {"clean": clean, "noop": noop, "noop_make": noop_make, "edit": edit, "stock": stock}


def page_sizes(html_dir: Path) -> dict:
    pages = [p for p in html_dir.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts
             and "lite" not in p.relative_to(html_dir).parts  # the in-browser edition: edition_numbers()
             and p.name not in {"search.html", "genindex.html"} and p.stat().st_size > 1000]
    sizes = {str(p.relative_to(html_dir)): p.stat().st_size for p in pages}
    spec_bytes = {}
    for p in pages:
        text = p.read_text(encoding="utf-8")
        specs = re.findall(r'<script type="application/json" class="usrok-spec">(.*?)</script>', text, re.S)
        if specs:
            spec_bytes[str(p.relative_to(html_dir))] = sum(len(s.encode()) for s in specs)
    return {"sizes": sizes, "spec_bytes": spec_bytes}


def browser_numbers(html_dir: Path, first: str, second: str) -> dict:
    """First chart drawn (cold, then warm cache) and bytes on the wire, in headless Chromium.

    Charts draw when the reader reaches them (usrok.speed), so each visit opens the page
    at its first chart, as a link to a figure would: the page scrolls to it as soon as it
    is parsed. Served by bench/lighthouse.py's StaticHost (gzip, `Cache-Control: max-age=600`).
    """
    from playwright.sync_api import sync_playwright

    out = {}
    with lighthouse.serve(html_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        context = browser.new_context()
        context.add_init_script("document.addEventListener('DOMContentLoaded', () => "
                                "document.querySelector('.usrok-chart')?.scrollIntoView({block: 'center'}))")
        page = context.new_page()
        # No request interception here: Playwright's routing switches the HTTP cache off, and
        # the warm-cache numbers need it. (The offline tests in tests/ block the network.)
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        transferred = {"bytes": 0}
        cdp.on("Network.loadingFinished", lambda e: transferred.__setitem__("bytes", transferred["bytes"] + e["encodedDataLength"]))

        def visit(path):
            transferred["bytes"] = 0
            page.goto(f"{base}/{path}", wait_until="load")
            # A function, not an expression: Playwright evaluates an expression with eval, which the
            # page's Content-Security-Policy blocks.
            page.wait_for_function("() => performance.getEntriesByName('usrok-first-chart').length > 0", timeout=60000)
            page.wait_for_load_state("networkidle")
            first_chart = page.evaluate("performance.getEntriesByName('usrok-first-chart')[0].startTime")
            return transferred["bytes"], first_chart

        def every_chart(path):
            """Bytes of a first visit that scrolls past every chart until all are drawn."""
            transferred["bytes"] = 0
            page.goto(f"{base}/{path}", wait_until="load")
            charts = page.locator(".usrok-chart")
            for i in range(charts.count()):
                charts.nth(i).scroll_into_view_if_needed()
                page.wait_for_function("e => e.dataset.drawn", arg=charts.nth(i).element_handle(), timeout=30000)
            page.wait_for_load_state("networkidle")
            return transferred["bytes"]

        out["first_visit_bytes"], out["first_chart_ms_cold"] = visit(first)
        out["second_page_bytes"], out["first_chart_ms_warm_other_page"] = visit(second)
        _, out["first_chart_ms_warm_same_page"] = visit(first)
        fresh = browser.new_context()
        page = fresh.new_page()
        cdp = fresh.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.on("Network.loadingFinished", lambda e: transferred.__setitem__("bytes", transferred["bytes"] + e["encodedDataLength"]))
        out["every_chart_bytes"] = max(every_chart(p) for p in {first, lighthouse.pages_to_measure(html_dir)[-1]})
        browser.close()
    return out


def browser_rows(runs: list[dict], chart_pages: list[str]) -> list[tuple]:
    """(measure, value, budget, met) of several browser_numbers runs: medians of the timings
    (every run listed), the largest byte counts."""
    def timing(key):
        values = [r[key] for r in runs]
        return statistics.median(values), ", ".join(f"{v:.0f}" for v in values)

    cold, cold_runs = timing("first_chart_ms_cold")
    warm, warm_runs = timing("first_chart_ms_warm_other_page")
    every = max(r["every_chart_bytes"] for r in runs)
    return [
        (f"First visit opened at the first chart, bytes on the wire ({chart_pages[0]}) (KiB)",
         f"{max(r['first_visit_bytes'] for r in runs) / 1024:.0f}", "", None),
        ("First visit that scrolls past every chart until all are drawn, largest of chapter 1 and the page "
         "with most charts (KiB)", f"{every / 1024:.0f}", "≤ 800 KiB", every <= 800 * 1024),
        (f"Second page, warm cache ({chart_pages[min(1, len(chart_pages) - 1)]}) (KiB)",
         f"{max(r['second_page_bytes'] for r in runs) / 1024:.0f}", "", None),
        (f"First chart drawn, first visit opened at the chart (ms) (median; runs {cold_runs})", f"{cold:.0f}",
         "≤ 1000 ms", cold <= 1000),
        (f"First chart drawn, warm cache, another page (ms) (median; runs {warm_runs})", f"{warm:.0f}",
         "≤ 1000 ms", warm <= 1000),
    ]


def grading_throughput(book: Path, n: int = 12) -> dict:
    """Grade n copies of a solution notebook with 1 and 2 workers (submissions a minute)."""
    try:
        import usrok.grading  # noqa: F401
    except ImportError:
        return {}
    subprocess.run([str(BIN / "python"), "exercises/build_assignments.py"], cwd=book, check=True,
                   capture_output=True)
    zips = sorted(glob.glob(str(book / "exercises/ex03_easi/dist/autograder/*.zip")))
    solution = sorted(glob.glob(str(book / "exercises/ex03_easi/dist/autograder/*.ipynb")))
    if not zips or not solution:
        return {}
    subs = WORK / "submissions"
    subs.mkdir(exist_ok=True)
    for i in range(n):
        shutil.copy(solution[0], subs / f"student{i:03d}.ipynb")
    out = {}
    for workers in (1, 2):
        seconds = timed([str(BIN / "python"), "-m", "usrok.grading", zips[0], str(subs), "--out",
                         str(WORK / f"grades{workers}.csv"), "--workers", str(workers)], book)
        out[workers] = n / seconds * 60
    return out


class EditionHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the in-browser edition with the cache headers the README recommends, and counts
    the bytes of every response body (what a first visit downloads)."""

    sent = {"bytes": 0}
    lock = threading.Lock()

    def end_headers(self):
        path = self.path.split("?")[0]
        if re.search(r"/lite/static/pyodide-[^/]+/(?!pyodide-lock\.json)", path) or re.search(
                r"/lite/(build|extensions/.+/static)/[^/]*\.[0-9a-f]{7,}\.js$", path):
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
        else:
            self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_GET(self):
        if self.path.split("?")[0] == "/lite/jupyter-lite.json":  # let the benchmark drive the app
            config = json.loads((Path(self.directory) / "lite" / "jupyter-lite.json").read_text())
            config["jupyter-config-data"]["exposeAppInBrowser"] = True
            body = json.dumps(config).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def copyfile(self, source, outputfile):
        data = source.read()
        with self.lock:
            self.sent["bytes"] += len(data)
        outputfile.write(data)

    def log_message(self, *args):
        pass


def edition_numbers(html_dir: Path, notebook: str = "exercises/ex03_easi/student/ex03_easi.ipynb") -> dict:
    """The in-browser edition (_build/html/lite): its size on disk, the bytes a first visit to an
    exercise downloads until its first cell has run, and the time from opening the exercise to
    its first executed cell (the set-up cell: Pyodide, pandas, Altair, the course package and
    otter), cold (new browser profile) and warm (same profile, second visit)."""
    from playwright.sync_api import sync_playwright

    edition = html_dir / "lite"
    out = {"mb": sum(p.stat().st_size for p in edition.rglob("*") if p.is_file()) / 1e6}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(EditionHandler, directory=str(html_dir)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/lite/lab/index.html?path={notebook}"
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        # A real profile (disk cache), as a student's browser has: an incognito context's
        # in-memory cache does not keep files as large as the interpreter or pandas.
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=shutil.which("chromium"), viewport={"width": 1280, "height": 900},
            args=CHROMIUM_FLAGS + ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"])

        def first_cell() -> float:
            """Seconds from navigation until the first code cell has run, run as soon as the
            kernel is idle (JupyterLite 0.6 can lose a request sent while its kernel starts)."""
            page = context.new_page()
            EditionHandler.sent["bytes"] = 0
            start = time.perf_counter()
            page.goto(url, wait_until="commit")
            page.wait_for_function(f"""(() => {{ const p = window.jupyterapp && jupyterapp.shell.currentWidget;
                const k = p && p.context && p.context.path === {json.dumps(notebook)} && p.sessionContext.session
                    && p.sessionContext.session.kernel;
                return k && k.status === 'idle'; }})()""", timeout=600_000, polling=100)
            page.evaluate("""() => { const nb = jupyterapp.shell.currentWidget.content;
                nb.activeCellIndex = nb.widgets.findIndex(c => c.model.type === 'code');
                jupyterapp.commands.execute('notebook:run-cell'); }""")
            page.wait_for_function("""jupyterapp.shell.currentWidget.content.widgets
                .find(c => c.model.type === 'code').model.executionCount !== null""", timeout=600_000, polling=100)
            seconds = time.perf_counter() - start
            page.close()
            return seconds

        out["cold_s"] = first_cell()
        out["first_visit_bytes"] = EditionHandler.sent["bytes"]
        out["warm_s"] = first_cell()
        out["warm_visit_bytes"] = EditionHandler.sent["bytes"]
        context.close()
    httpd.shutdown()
    return out


def install_numbers() -> dict:
    """The course environment as `make book` installs it (the lock, requirements.txt), in a fresh
    venv with an empty pip cache: seconds and size."""
    with tempfile.TemporaryDirectory() as tmp:
        env_dir = Path(tmp) / "env"
        env = {**os.environ, "PIP_NO_CACHE_DIR": "1"}
        seconds = timed(["make", "-s", f"{env_dir}/.book-env", f"VENV={env_dir}"], ROOT, env=env)
        size = int(subprocess.run(["du", "-sm", str(env_dir)], capture_output=True, text=True).stdout.split()[0])
    return {"seconds": seconds, "mb": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-install", action="store_true", help="skip the fresh-install measurement")
    parser.add_argument("--lighthouse-only", action="store_true",
                        help="only the browser measures (Lighthouse, first chart drawn), on an existing build "
                             "(--html), and update their section")
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html",
                        help="the built book for --lighthouse-only (default: this working tree's _build/html)")
    parser.add_argument("--runs", type=int, default=3,
                        help="Lighthouse runs per page and preset, and first-chart visits (medians)")
    args = parser.parse_args()
    machine = f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"
    now = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
    results_md = ROOT / "bench" / "RESULTS.md"
    if args.lighthouse_only:
        if not (args.html / "intro.html").exists():
            raise SystemExit(f"no built book in {args.html}: run `make book` first")
        chart_pages = sorted(page_sizes(args.html)["spec_bytes"])
        browser = [browser_numbers(args.html, chart_pages[0], chart_pages[min(1, len(chart_pages) - 1)])
                   for _ in range(args.runs)]
        first_chart = browser_rows(browser, chart_pages)
        scores = lighthouse.measure(args.html, runs=args.runs)
        lighthouse.replace_section(results_md, lighthouse.section(scores, now, machine, str(args.html), first_chart))
        for what, value, budget, ok in first_chart + lighthouse.budget_rows(scores):
            verdict = "" if ok is None else ("PASS" if ok else "FAIL")
            print(f"{verdict:4} {what}: {value}" + (f"  (budget {budget})" if budget else ""))
        print(f"wrote the Lighthouse section of {results_md}")
        return

    book = clean_copy()
    builds = build_times(book)
    html_dir = book / "_build" / "html"
    sizes = page_sizes(html_dir)
    chart_pages = sorted(sizes["spec_bytes"])
    browser = [browser_numbers(html_dir, chart_pages[0], chart_pages[min(1, len(chart_pages) - 1)])
               for _ in range(args.runs)]
    scores = lighthouse.measure(html_dir, runs=args.runs)
    grading = grading_throughput(book)
    edition = edition_numbers(html_dir)
    install = {} if args.skip_install else install_numbers()

    html = sorted(sizes["sizes"].values())
    rows = []

    def row(what, value, budget=None, ok=None):
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        rows.append((what, value, budget or "", verdict))
        print(f"{verdict:4} {what}: {value}" + (f"  (budget {budget})" if budget else ""))

    row("Clean build with execution (s)", f"{builds['clean']:.1f}", "≤ 60 s", builds["clean"] <= 60)
    ratio = builds["clean"] / builds["stock"]
    row("Stock `jupyter-book create` template, clean build (s)", f"{builds['stock']:.1f}")
    row("Clean build ÷ stock template", f"{ratio:.1f}×", "≤ 15×", ratio <= 15)
    row("No-op rebuild, `make book` (s)", f"{builds['noop_make']:.2f}", "≤ 1.5 s", builds["noop_make"] <= 1.5)
    row("No-op rebuild, `jupyter-book build` itself (s)", f"{builds['noop']:.2f}", "≤ 1.5 s", builds["noop"] <= 1.5)
    row("Rebuild after a one-chapter text edit (s)", f"{builds['edit']:.2f}", "≤ 3 s", builds["edit"] <= 3)
    row("Pages", len(html))
    row("HTML per page, median (KB)", f"{statistics.median(html) / 1000:.0f}", "≤ 100 KB", statistics.median(html) <= 100_000)
    row("HTML per page, largest (KB)", f"{html[-1] / 1000:.0f} ({max(sizes['sizes'], key=sizes['sizes'].get)})",
        "≤ 400 KB", html[-1] <= 400_000)
    spec = sizes["spec_bytes"]
    row("Chart-spec bytes per chart page, median / largest (KB)",
        f"{statistics.median(spec.values()) / 1000:.0f} / {max(spec.values()) / 1000:.0f}")
    for what, value, budget, ok in browser_rows(browser, chart_pages):
        row(what, value, budget, ok)
    if grading:
        row("Grading, 1 worker (submissions/min)", f"{grading[1]:.1f}")
        row("Grading, 2 workers (submissions/min)", f"{grading[2]:.1f}", "≥ 20", grading[2] >= 20)
    else:
        row("Grading throughput", "not measured (no batch grader or autograder zip)")
    row("Clean build including the in-browser edition (s)", f"{builds['clean']:.1f}", "≤ 90 s", builds["clean"] <= 90)
    row("In-browser edition on disk (MB)", f"{edition['mb']:.1f}", "≤ 80 MB", edition["mb"] <= 80)
    row("In-browser edition, first visit to an exercise until its first cell ran (MB downloaded)",
        f"{edition['first_visit_bytes'] / 1e6:.1f}")
    row("In-browser edition, same visit with a warm cache (MB downloaded)", f"{edition['warm_visit_bytes'] / 1e6:.2f}")
    row("In-browser edition, opening an exercise to its first executed cell, cold (s)", f"{edition['cold_s']:.1f}",
        "≤ 20 s", edition["cold_s"] <= 20)
    row("In-browser edition, opening an exercise to its first executed cell, warm (s)", f"{edition['warm_s']:.1f}",
        "≤ 8 s", edition["warm_s"] <= 8)
    if install:
        row("Fresh install of the course environment (lock), empty pip cache (s)", f"{install['seconds']:.0f}")
        row("Environment size (MB)", install["mb"], "report")

    for what, value, budget, ok in lighthouse.budget_rows(scores):
        row(what, value, budget, ok)
    lines = ["# Benchmark results", "",
             f"Measured {now} on {machine} by `make bench`",
             "(bench/run.py) on a clean copy of the committed files. Browser numbers: Debian chromium, headless,",
             "pages served on 127.0.0.1 gzip-compressed with `Cache-Control: max-age=600`, as GitHub Pages",
             "serves them (no other host is reachable here). Lighthouse: see its section below.",
             "Budgets missed, and the plan for each: [README.md](README.md).", "",
             "| measure | value | budget | result |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    results_md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lighthouse.replace_section(results_md, lighthouse.section(scores, now, machine, "the clean copy's _build/html"))
    print(f"wrote {results_md}")


if __name__ == "__main__":
    main()
