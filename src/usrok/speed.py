"""Pages that show their text at once, on a phone's first visit too.

Registered from :func:`usrok.book.setup` (``speed.setup(app)``). After every HTML build it
rewrites the pages of the site (not the JupyterLite edition under ``lite/``):

- **No script blocks the first paint.** Every script the themes and extensions put in
  ``<head>`` (copy buttons, toggles, tabs, search highlighting, the book theme's own
  script) loads with ``defer``: fetched in parallel, run in order once the page is
  parsed. Inline scripts that only set ``DOCUMENTATION_OPTIONS`` fields become
  ``type="module"`` scripts, which run in the same ordered queue, after the file that
  defines the object. The theme's inline colour-mode script stays as it is: it must run
  before the first paint (dark mode without a flash of light) and loads nothing.
- **One small stylesheet.** The page's stylesheets (the theme's ``theme.css``, which
  ``@import``\\ s ``basic.css`` — a second round trip before anything shows — Bootstrap and
  the PyData theme, the book theme, Pygments, the extensions' and the course's CSS) become
  one minified file named by its content, ``_static/usrok/site.<hash>.css``. Its web fonts
  (Font Awesome's icons) use ``font-display: swap``.
- **Minified scripts.** The extensions' unminified scripts in ``_static`` are minified
  in place (``rjsmin``); the themes' own bundles already are.
- **A favicon**, so browsers do not ask for a missing ``/favicon.ico``.
- **The Vega bundle on demand**: chart pages load ``vega-loader.js`` instead of the
  ~0.9 MB bundle; it imports the bundle after the first paint, when the first chart
  comes near the screen.

Every rewrite is idempotent and every page is visited on every build, so pages Sphinx
did not rewrite this time still point at the current stylesheet.
"""

from __future__ import annotations

import hashlib
import html
import posixpath
import re
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC_DIR = "usrok"  # under _static, shared with usrok.book
SKIP_DIRS = {"_static", "_sources", "_downloads", "_images", "lite"}  # lite: the JupyterLite edition
CSS_BUNDLE = re.compile(r"site\.[0-9a-f]{12}\.css$")


# --------------------------------------------------------------------------- favicon
def _favicon(app, config) -> None:
    if not config.html_favicon:
        config.html_favicon = str(HERE / "favicon.svg")


# --------------------------------------------------------------------------- Vega on demand
def _vega_on_demand(app, pagename, templatename, context, doctree) -> None:
    """Replace the Vega bundle's script by the small loader that imports it when needed."""
    scripts = context.get("script_files")
    if not scripts:
        return
    bundle = next((js for js in scripts if "vega-bundle-" in str(getattr(js, "filename", "") or "")), None)
    if bundle is None:
        return
    from sphinx.builders.html._assets import _JavaScript

    url = context["pathto"](str(bundle.filename), 1)  # filename starts with _static/
    loader = _JavaScript(f"_static/{STATIC_DIR}/vega-loader.js", priority=bundle.priority, defer="defer",
                         **{"data-vega-bundle": url})
    context["script_files"] = [loader if js is bundle else js for js in scripts]


def _write_loader(app) -> None:
    if app.builder.format != "html":
        return
    out = Path(app.outdir) / "_static" / STATIC_DIR
    out.mkdir(parents=True, exist_ok=True)
    src = (HERE / "vega-loader.js").read_bytes()
    dest = out / "vega-loader.js"
    if not dest.exists() or dest.read_bytes() != src:
        dest.write_bytes(src)


# --------------------------------------------------------------------------- pages
_HEAD = re.compile(r"<head>.*?</head>", re.DOTALL)
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL)
_STYLESHEET = re.compile(r'[ \t]*<link\b(?=[^>]*\brel="stylesheet")[^>]*>\n?')
_ATTR = re.compile(r'([\w:-]+)(?:="([^"]*)")?')


def _attrs(tag_inside: str) -> dict:
    return {m.group(1).lower(): m.group(2) for m in _ATTR.finditer(tag_inside)}


def _is_local(url: str) -> bool:
    return not re.match(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", url, re.IGNORECASE)


def defer_head_scripts(head: str) -> str:
    """Scripts in <head> load without blocking the parser (see the module docstring)."""

    def fix(match):
        attrs, body = match.group(1), match.group(2)
        found = _attrs(attrs)
        if "src" in found:
            if "defer" in found or "async" in found or found.get("type") == "module":
                return match.group(0)
            return f"<script defer{attrs}>{body}</script>"
        kind = found.get("type", "text/javascript")
        if kind in ("text/javascript", "application/javascript") and re.match(
                r"\s*DOCUMENTATION_OPTIONS\.\w+\s*=[^;]*;\s*$", body):
            return f'<script type="module"{attrs}>{body}</script>'
        return match.group(0)

    return _SCRIPT.sub(fix, head)


class Stylesheets:
    """Builds the one stylesheet of the site from the stylesheets a page links to."""

    def __init__(self, outdir: Path, names: set[str]):
        self.outdir = outdir.resolve()
        self.names = names  # see names_in_use
        self.fonts: set[str] = set()  # the subset fonts the bundles use
        self.bundles: dict[tuple[str, ...], str] = {}  # source files -> bundle path (from outdir)

    def bundle(self, sources: tuple[str, ...]) -> str:
        if sources not in self.bundles:
            css = '@charset "UTF-8";' + "".join(self._inline(self.outdir / s, set()) for s in sources)
            css = minify_css(css).replace("font-display:block", "font-display:swap")
            css = self._subset_icon_fonts(purge_css(css, self.names))
            name = f"site.{hashlib.sha256(css.encode()).hexdigest()[:12]}.css"
            out = self.outdir / "_static" / STATIC_DIR / name
            if not out.exists():
                out.write_text(css, encoding="utf-8")
            self.bundles[sources] = f"_static/{STATIC_DIR}/{name}"
        return self.bundles[sources]

    def _subset_icon_fonts(self, css: str) -> str:
        """Each Font Awesome face (the theme's icons: ~300 KB for solid and brands) cut down to
        the icons the kept rules name, as a small WOFF file named by its content."""
        codepoints = icon_codepoints(css)
        fonts_dir = self.outdir / "_static" / STATIC_DIR / "fonts"

        def subset_face(match):
            face = match.group(0)
            if "Font Awesome" not in face.replace("\\", ""):
                return face  # only the theme's icon fonts: text fonts keep every character
            ttf = re.search(r"url\(([^)?]+\.ttf)(?:\?[^)]*)?\)", face)
            if not ttf:
                return face
            source = (self.outdir / "_static" / STATIC_DIR / ttf.group(1)).resolve()
            font = subset_font(source, codepoints, fonts_dir)
            if font is None:
                return face
            self.fonts.add(font.name)
            return re.sub(r"src:[^;}]*", f'src:url(fonts/{font.name}) format("woff")', face, count=1)

        return re.sub(r"@font-face\{[^}]*\}", subset_face, css)

    def _inline(self, path: Path, seen: set) -> str:
        """A stylesheet's text with its local @imports inlined and url()s made relative to
        the bundle's folder (each with ``?v=`` and the file's digest, so they cache safely)."""
        if path in seen:
            return ""
        seen.add(path)
        text = path.read_text(encoding="utf-8")
        text = re.sub(r'@charset\s+"[^"]*"\s*;', "", text)
        bundle_dir = self.outdir / "_static" / STATIC_DIR

        def imported(match):
            url = match.group(1) or match.group(2)
            if not _is_local(url):
                return match.group(0)
            return self._inline((path.parent / url.split("?")[0]).resolve(), seen)

        text = re.sub(r'@import\s+(?:url\()?\s*(?:"([^"]+)"|\'([^\']+)\')\s*\)?\s*;', imported, text)

        def relocated(match):
            quote, url = match.group(1), match.group(2).strip()
            if not _is_local(url) or url.startswith("data:"):
                return match.group(0)
            bare, _, rest = url.partition("?")
            bare, hashpart, frag = bare.partition("#")
            target = (path.parent / bare).resolve()
            rel = posixpath.relpath(target.as_posix(), bundle_dir.resolve().as_posix())
            if target.is_file():
                rest = rest or f"v={hashlib.sha256(target.read_bytes()).hexdigest()[:8]}"
            return f"url({quote}{rel}{'?' + rest if rest else ''}{hashpart}{frag}{quote})"

        return re.sub(r'url\(\s*(["\']?)([^"\')]+)\1\s*\)', relocated, text)


# ---- unused CSS: the PurgeCSS method (a selector whose classes or ids appear in no page and
# no script of the site cannot match), on the minified text, which rcssmin has normalised.
_CSS_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|/\*.*?\*/|[{};]', re.DOTALL)
_GROUPING_RULES = {"media", "supports", "layer", "container", "document"}
# Classes Bootstrap's scripts build from parts (``bs-${name}-auto``), which no page spells out.
_BUILT_BY_SCRIPTS = ("bs-",)


def css_items(css: str) -> list[tuple[str, str | None]]:
    """The top-level items of a stylesheet: (prelude, block) for rules, (statement, None)
    for statements and comments."""
    items, depth, start, prelude, body_start = [], 0, 0, "", 0
    for match in _CSS_TOKEN.finditer(css):
        token = match.group()
        if token == "{":
            if depth == 0:
                prelude, body_start = css[start:match.start()].strip(), match.end()
            depth += 1
        elif token == "}":
            depth -= 1
            if depth == 0:
                items.append((prelude, css[body_start:match.start()]))
                start = match.end()
        elif depth == 0 and (token == ";" or token.startswith("/*")):
            # a statement (@import ...;), or a comment (licence notices) kept as its own item
            if token.startswith("/*") and css[start:match.start()].strip():
                continue  # a comment inside a selector: stays part of it
            items.append((css[start:match.end()].strip(), None))
            start = match.end()
    return items


def split_selectors(prelude: str) -> list[str]:
    """A selector list split at its top-level commas (not those inside :is(...) or [...])."""
    parts, depth, current = [], 0, []
    for char in prelude:
        depth += (char in "([") - (char in ")]")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def selector_may_match(selector: str, names: set[str]) -> bool:
    """False when the selector names a class or id that nothing on the site uses.

    What is inside :not(), :is(), :has() or [attribute] is not judged (kept)."""
    if "\\" in selector:
        return True  # escaped names: keep
    bare = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|\[[^\]]*\]', "", selector)
    while (inner := re.sub(r"\([^()]*\)", "", bare)) != bare:
        bare = inner
    return all(name in names or name.startswith(_BUILT_BY_SCRIPTS)
               for name in re.findall(r"[.#](-?[_a-zA-Z][\w-]*)", bare))


def purge_css(css: str, names: set[str]) -> str:
    """The rules of ``css`` that may match something on the site."""
    out = []
    for prelude, block in css_items(css):
        if block is None:
            out.append(prelude)
        elif prelude.startswith("@"):
            rule = re.match(r"@([\w-]+)", prelude).group(1).lower()
            if rule in _GROUPING_RULES:
                inner = purge_css(block, names)
                if inner:
                    out.append(f"{prelude}{{{inner}}}")
            else:  # @font-face, @keyframes, @page, @property: kept whole
                out.append(f"{prelude}{{{block}}}")
        elif "{" in block:  # nested rules: kept whole
            out.append(f"{prelude}{{{block}}}")
        else:
            kept = [s for s in split_selectors(prelude) if selector_may_match(s, names)]
            if kept:
                out.append(",".join(kept) + "{" + block + "}")
    return "".join(out)


def names_in_use(outdir: Path, pages: list[Path]) -> set[str]:
    """Every word of every page and of every script the pages load: the class and id
    names anything can give an element (the PurgeCSS "content" scan)."""
    names, scripts = set(), set()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        names.update(re.findall(r"[\w-]+", text))
        for src in re.findall(r'<script\b[^>]*?\b(?:src|data-vega-bundle)="([^"?#]+)', text):
            scripts.add((page.parent / html.unescape(src)).resolve())
    for script in scripts:
        if script.is_file() and outdir in script.parents:
            names.update(re.findall(r"[\w-]+", script.read_text(encoding="utf-8", errors="replace")))
    return names


def icon_codepoints(css: str) -> set[int]:
    """The characters an icon font may be asked for: those of every short string in the
    stylesheet (Font Awesome's ``--fa:"\\f0c9"``, ``content:"\\f105"``, ``--fa:"0"``)."""
    found: set[int] = set()
    for double, single in re.findall(r'"((?:\\.|[^"\\])*)"|\'((?:\\.|[^\'\\])*)\'', css):
        text = re.sub(r"\\([0-9a-fA-F]{1,6}) ?|\\(.)",
                      lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(2), double or single)
        if 0 < len(text) <= 2:
            found.update(ord(char) for char in text)
    return found


def subset_font(source: Path, codepoints: set[int], out_dir: Path) -> Path | None:
    """``source`` (a TrueType font) cut down to ``codepoints``, as WOFF, named by content;
    None when it has none of them."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    if not source.is_file():
        return None
    key = hashlib.sha256(source.read_bytes() + repr(sorted(codepoints)).encode()).hexdigest()[:12]
    out = out_dir / f"{source.stem}.{key}.woff"
    if out.exists():
        return out
    font = TTFont(source)
    wanted = set(font.getBestCmap()) & codepoints
    if not wanted:
        return None
    options = subset.Options()
    options.flavor = "woff"
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(wanted))
    subsetter.subset(font)
    out_dir.mkdir(parents=True, exist_ok=True)
    font.save(out)
    return out


def minify_css(css: str) -> str:
    import rcssmin

    return rcssmin.cssmin(css, keep_bang_comments=True)


_TEMPLATE_LITERAL = re.compile(r"`(?:\\.|[^`\\])*`")


def minify_js(js: str) -> str:
    """``js`` minified (rjsmin), or unchanged if minifying would alter a template literal
    (rjsmin does not parse them all: the Vega bundle's multi-line ones come out changed)."""
    import rjsmin

    small = rjsmin.jsmin(js, keep_bang_comments=True)
    return small if _TEMPLATE_LITERAL.findall(small) == _TEMPLATE_LITERAL.findall(js) else js


def one_stylesheet(page: Path, head: str, sheets: Stylesheets) -> str:
    """The page's local stylesheets replaced by the site's one stylesheet, in their place."""
    outdir = sheets.outdir
    to_root = posixpath.relpath(outdir.as_posix(), page.parent.as_posix())
    prefix = "" if to_root == "." else to_root + "/"
    sources: list[str] = []
    bundled = []  # the <link> elements the bundle replaces
    for match in _STYLESHEET.finditer(head):
        found = _attrs(match.group(0))
        href = html.unescape(found.get("href") or "")
        if found.get("media", "all") not in ("all", "screen") or not _is_local(href):
            continue  # print-only or remote stylesheets keep their own link
        if "data-usrok-css" in found:  # a page rewritten by an earlier build
            sources += found["data-usrok-css"].split()
        else:
            target = (page.parent / href.split("?")[0]).resolve()
            if not target.is_file():
                continue
            sources.append(target.relative_to(outdir).as_posix())
        bundled.append(match)
    if not sources:
        return head
    bundle = sheets.bundle(tuple(sources))
    link = (f'<link rel="stylesheet" href="{prefix}{bundle}" '
            f'data-usrok-css="{html.escape(" ".join(sources))}" />\n')
    parts, pos = [], 0
    for i, match in enumerate(bundled):
        parts += [head[pos:match.start()], link if i == 0 else ""]
        pos = match.end()
    return "".join(parts) + head[pos:]


def site_pages(outdir: Path) -> list[Path]:
    return sorted(p for p in outdir.rglob("*.html") if p.relative_to(outdir).parts[0] not in SKIP_DIRS)


def _minify_static_scripts(outdir: Path) -> None:
    """Minify the unminified scripts in _static (not the themes' bundles, not ``*.min.js``)."""
    for path in (outdir / "_static").rglob("*.js"):
        if path.name.endswith(".min.js"):
            continue
        text = path.read_text(encoding="utf-8")
        if is_minified(text):
            continue
        path.write_text(minify_js(text), encoding="utf-8")


def is_minified(text: str) -> bool:
    """A minifier's output: long lines (the Vega bundle, the themes' bundles, Sphinx's search
    index are each a few lines), or nothing left for rjsmin to take out (within 5%)."""
    return len(text) / (text.count("\n") + 1) >= 500 or len(minify_js(text)) >= 0.95 * len(text)


def speed_up_site(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir).resolve()
    _minify_static_scripts(outdir)
    pages = site_pages(outdir)
    sheets = Stylesheets(outdir, names_in_use(outdir, pages))
    for page in pages:
        text = page.read_text(encoding="utf-8")
        head = _HEAD.search(text)
        if not head:
            continue
        new_head = one_stylesheet(page, defer_head_scripts(head.group(0)), sheets)
        if new_head != head.group(0):
            page.write_text(text[:head.start()] + new_head + text[head.end():], encoding="utf-8")
    current = {Path(b).name for b in sheets.bundles.values()}
    for old in (outdir / "_static" / STATIC_DIR).glob("site.*.css"):
        if CSS_BUNDLE.search(old.name) and old.name not in current:
            old.unlink()
    for old in (outdir / "_static" / STATIC_DIR / "fonts").glob("*.woff"):
        if old.name not in sheets.fonts:
            old.unlink()


def setup(app) -> dict:
    app.connect("config-inited", _favicon)
    app.connect("builder-inited", _write_loader)
    app.connect("html-page-context", _vega_on_demand, priority=950)
    # After usrok.book's own page fixes (priority 500), which expect the theme's markup.
    app.connect("build-finished", speed_up_site, priority=800)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
