"""Lighthouse on the built book, served the way a static host serves it.

    .venv/bin/python bench/run.py --lighthouse-only [--html _build/html] [--runs 3]

Runs npm's `lighthouse` (pinned in package.json; `npm ci` installs it) with Debian's
chromium (CHROME_PATH; no browser is downloaded) on chapter 1 and on the page with the
most charts, with Lighthouse's mobile preset (simulated slow 4G, 4x slower CPU) and its
desktop preset, `runs` times each, and reports the medians.

The pages are served on 127.0.0.1 by :class:`StaticHost`, which answers like GitHub
Pages, Netlify or Cloudflare Pages do for a static site: text files (HTML, CSS, JS, JSON,
SVG) gzip-compressed when the browser asks for it, and a ``Cache-Control`` header. Both
matter for the numbers: Lighthouse counts the bytes on the wire, and without compression
the Vega bundle alone would weigh 0.9 MB instead of ~0.3 MB.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
COMPRESSIBLE = (".html", ".css", ".js", ".mjs", ".json", ".svg", ".txt", ".ipynb", ".map", ".xml")
CHROME_FLAGS = ("--headless=new --no-sandbox --disable-gpu --disable-background-networking "
                "--disable-component-update --disable-sync --no-first-run --disable-quic")


class StaticHost(http.server.SimpleHTTPRequestHandler):
    """A static host: gzip for text when asked for, ``Cache-Control: max-age=600`` (GitHub
    Pages' default), and JavaScript served as text/javascript (module scripts need it)."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".mjs": "text/javascript", ".svg": "image/svg+xml",
                      ".ipynb": "application/x-ipynb+json"}
    _gzipped: dict = {}
    _lock = threading.Lock()

    def send_head(self):
        path = self.translate_path(self.path)
        wants_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
        if os.path.isdir(path) or not path.endswith(COMPRESSIBLE) or not wants_gzip or not os.path.isfile(path):
            return super().send_head()
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            body = self._gzipped.get(key)
        if body is None:
            body = gzip.compress(Path(path).read_bytes(), compresslevel=6)
            with self._lock:
                self._gzipped[key] = body
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)

    def end_headers(self):
        self.send_header("Cache-Control", "max-age=600")
        super().end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def serve(html_dir: Path):
    """Serve ``html_dir`` on a free port of 127.0.0.1; yields the base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(StaticHost, directory=str(html_dir)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def chart_count(page: Path) -> int:
    return page.read_text(encoding="utf-8").count('class="usrok-spec"')


def pages_to_measure(html_dir: Path) -> list[str]:
    """Chapter 1 and the page with the most charts (relative paths)."""
    pages = sorted(p for p in (html_dir / "chapters").glob("*.html"))
    first = next(p for p in pages if p.name.startswith("01_"))
    most = max(pages, key=lambda p: (chart_count(p), p.name))
    return [str(p.relative_to(html_dir)) for p in dict.fromkeys([first, most])]


def lighthouse_once(url: str, preset: str, out: Path) -> dict:
    """One Lighthouse run; the numbers this benchmark reports."""
    if not LIGHTHOUSE.exists():
        raise SystemExit("npm's lighthouse is not installed: run `npm ci` (or `make bench`)")
    chrome = shutil.which("chromium")
    if not chrome:
        raise SystemExit("Debian's chromium is not installed: run `make browser`")
    cmd = [str(LIGHTHOUSE), url, "--output=json", f"--output-path={out}", "--quiet",
           "--only-categories=performance,accessibility", "--disable-full-page-screenshot",
           f"--chrome-flags={CHROME_FLAGS}"]
    if preset == "desktop":
        cmd.append("--preset=desktop")
    result = subprocess.run(cmd, env={**os.environ, "CHROME_PATH": chrome}, capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0 or not out.exists():
        raise SystemExit(f"lighthouse failed on {url} ({preset}):\n{result.stderr[-3000:]}")
    report = json.loads(out.read_text(encoding="utf-8"))
    audits = report["audits"]

    def value(audit):
        return audits[audit].get("numericValue")

    blocking = [item["url"] for item in (audits.get("render-blocking-resources", {}).get("details") or {})
                .get("items", [])]
    lcp_element = ((audits.get("largest-contentful-paint-element", {}).get("details") or {}).get("items") or [{}])
    lcp_node = ""
    for item in lcp_element:  # Lighthouse 12: a table of tables; the first holds the node
        for sub in (item.get("items") or [item]):
            node = sub.get("node") or {}
            lcp_node = lcp_node or node.get("selector") or node.get("snippet") or ""
    if report.get("runtimeError"):
        raise SystemExit(f"lighthouse runtime error on {url}: {report['runtimeError']}")
    return {
        "performance": round(100 * (report["categories"]["performance"]["score"] or 0)),
        "accessibility": round(100 * (report["categories"]["accessibility"]["score"] or 0)),
        "fcp_ms": value("first-contentful-paint"),
        "lcp_ms": value("largest-contentful-paint"),
        "tbt_ms": value("total-blocking-time"),
        "cls": value("cumulative-layout-shift"),
        "si_ms": value("speed-index"),
        "bytes": value("total-byte-weight"),
        "render_blocking": blocking,
        "lcp_element": lcp_node,
    }


def median_run(runs: list[dict]) -> dict:
    """Per-measure medians of several runs (lists are taken from the median-score run)."""
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out[key] = statistics.median(values) if isinstance(values[0], (int, float)) else values[0]
    by_score = sorted(runs, key=lambda r: r["performance"])
    out["render_blocking"] = by_score[len(by_score) // 2]["render_blocking"]
    out["lcp_element"] = by_score[len(by_score) // 2]["lcp_element"]
    out["performance_runs"] = [r["performance"] for r in runs]
    return out


def measure(html_dir: Path, runs: int = 3, presets=("mobile", "desktop"), pages=None,
            keep: Path | None = None) -> dict:
    """{(page, preset): medians}. Reports of each run are kept in ``keep`` when given."""
    pages = pages or pages_to_measure(html_dir)
    results = {}
    with serve(html_dir) as base, tempfile.TemporaryDirectory() as tmp:
        for page in pages:
            for preset in presets:
                measured = []
                for i in range(runs):
                    out = Path(tmp) / f"{re.sub(r'[^a-z0-9]+', '_', page.lower())}-{preset}-{i}.json"
                    measured.append(lighthouse_once(f"{base}/{page}", preset, out))
                    print(f"  lighthouse {preset:7} {page}: {measured[-1]['performance']} "
                          f"(LCP {measured[-1]['lcp_ms']:.0f} ms, TBT {measured[-1]['tbt_ms']:.0f} ms, "
                          f"{measured[-1]['bytes'] / 1024:.0f} KiB)", flush=True)
                    if keep:
                        keep.mkdir(parents=True, exist_ok=True)
                        shutil.copy(out, keep / out.name)
                results[(page, preset)] = median_run(measured)
    return results


BUDGETS = {  # issue 18
    "mobile": {"performance": 90, "lcp_ms": 2500, "tbt_ms": 200},
    "desktop": {"performance": 98},
    "accessibility": 100,
    "bytes": 800 * 1024,
}


def budget_rows(results: dict) -> list[tuple[str, str, str, bool]]:
    """(measure, value, budget, met) for every Lighthouse budget, page by page."""
    rows = []
    for (page, preset), m in results.items():
        name = f"Lighthouse {preset}, {page}"
        runs = ", ".join(str(r) for r in m["performance_runs"])
        goal = BUDGETS[preset]
        rows.append((f"{name}: performance (median; runs {runs})", f"{m['performance']:.0f}",
                     f"≥ {goal['performance']}", m["performance"] >= goal["performance"]))
        if preset == "mobile":
            rows.append((f"{name}: largest contentful paint (ms)", f"{m['lcp_ms']:.0f}",
                         f"≤ {goal['lcp_ms']} ms", m["lcp_ms"] <= goal["lcp_ms"]))
            rows.append((f"{name}: total blocking time (ms)", f"{m['tbt_ms']:.0f}",
                         f"≤ {goal['tbt_ms']} ms", m["tbt_ms"] <= goal["tbt_ms"]))
        rows.append((f"{name}: accessibility", f"{m['accessibility']:.0f}", "100",
                     m["accessibility"] >= BUDGETS["accessibility"]))
        rows.append((f"{name}: transferred (KiB)", f"{m['bytes'] / 1024:.0f}", "≤ 800 KiB",
                     m["bytes"] <= BUDGETS["bytes"]))
    return rows


def section(results: dict, when: str, machine: str, html_dir: str, first_chart: list | None = None) -> str:
    """The Lighthouse section of RESULTS.md: budgets (and the first-chart rows of
    bench/run.py's --lighthouse-only, when given), then every median measured."""
    lines = ["## Lighthouse", "",
             f"Measured {when} on {machine} by `bench/run.py` (Lighthouse {lighthouse_version()},",
             f"Debian chromium, headless) on `{html_dir}`, served by bench/lighthouse.py's StaticHost",
             "(gzip, `Cache-Control: max-age=600`, like GitHub Pages). Medians of the runs listed;",
             "Lighthouse's mobile preset simulates slow 4G and a 4× slower CPU, so numbers vary with the",
             "machine's load.", "",
             "| measure | value | budget | result |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {'' if ok is None else 'PASS' if ok else 'FAIL'} |"
              for a, b, c, ok in (first_chart or []) + budget_rows(results)]
    lines += ["", "| page | preset | performance | FCP (ms) | LCP (ms) | TBT (ms) | CLS | speed index (ms) "
              "| transferred (KiB) | accessibility |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (page, preset), m in results.items():
        lines.append(f"| {page} | {preset} | {m['performance']:.0f} | {m['fcp_ms']:.0f} | {m['lcp_ms']:.0f} "
                     f"| {m['tbt_ms']:.0f} | {m['cls']:.3f} | {m['si_ms']:.0f} | {m['bytes'] / 1024:.0f} "
                     f"| {m['accessibility']:.0f} |")
    return "\n".join(lines) + "\n"


def lighthouse_version() -> str:
    package = ROOT / "node_modules" / "lighthouse" / "package.json"
    return json.loads(package.read_text())["version"] if package.exists() else "?"


def replace_section(results_md: Path, text: str) -> None:
    """Put the Lighthouse section into RESULTS.md (replacing an earlier one)."""
    old = results_md.read_text(encoding="utf-8") if results_md.exists() else "# Benchmark results\n"
    head = old.split("## Lighthouse", 1)[0].rstrip("\n")
    results_md.write_text(head + "\n\n" + text, encoding="utf-8")
