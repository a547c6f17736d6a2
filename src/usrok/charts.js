// Draw every course chart on the page with the locally bundled Vega-Embed (no CDN).
// Each chart is a Vega-Lite spec in <script class="usrok-spec">; the data of all charts
// of the page sit once in <script id="usrok-datasets"> (see usrok.book.pool_datasets).
// The spec's usermeta.usrok (set by usrok.charts.finish) names the chart's source,
// description and the dataset + columns of its data table.
//
// A chart is drawn when it comes within about a screen of the viewport (charts on the
// screen first; a link to a figure scrolls it there) or when the page is printed; the
// first chart that needs drawing asks vega-loader.js for the Vega bundle.
//
// Before drawing, a chart is fitted to its column (narrow columns: legends below, axis
// labels and titles that wrap or shorten) and themed for the page's light or dark mode;
// after drawing, views wider than the column are narrowed. A drawn chart is drawn again
// when the theme or the column width changes; one not drawn yet takes the theme of the
// moment it is drawn.
const OPTIONS = {
  mode: "vega-lite",
  renderer: "svg",
  // Vega's expression interpreter instead of code generation with new Function, so the
  // page's Content-Security-Policy needs no 'unsafe-eval'.
  ast: true,
  actions: { export: true, source: false, compiled: false, editor: false },
};
const MAX_ROWS = 400;
const NARROW = 560; // px: below this column width legends go below and labels shorten
const MENU_ROOM = 40; // px kept free at the top right for the chart menu button
const TAP_RADIUS = 44; // px: a tap shows the tooltip of the nearest point within this distance

// --------------------------------------------------------------------------- helpers
function pageDatasets() {
  const pool = document.getElementById("usrok-datasets");
  return pool ? JSON.parse(pool.textContent) : {};
}

function courseMeta(spec) {
  return (spec.usermeta && spec.usermeta.usrok) || {};
}

function titleText(spec) {
  const t = spec.title;
  return typeof t === "string" ? t : t && typeof t.text === "string" ? t.text : "";
}

// Every view of a spec that can carry an encoding (layers and concatenations walked).
function* views(node) {
  if (!node || typeof node !== "object") return;
  yield node;
  for (const key of ["layer", "vconcat", "hconcat", "concat"]) {
    for (const child of node[key] || []) yield* views(child);
  }
  if (node.spec) yield* views(node.spec);
}

function isDark() {
  return document.documentElement.dataset.theme === "dark";
}

// --------------------------------------------------------------------------- dark theme
const DARK_CONFIG = {
  background: "transparent",
  title: { color: "#ececec", subtitleColor: "#c9c9c9" },
  axis: { labelColor: "#d0d0d0", titleColor: "#ececec", gridColor: "#3b3f46",
          domainColor: "#8a8f98", tickColor: "#8a8f98" },
  legend: { labelColor: "#d6d6d6", titleColor: "#ececec" },
  header: { labelColor: "#d6d6d6", titleColor: "#ececec" },
  text: { color: "#e6e6e6" },
  view: { stroke: null },
};
// Inks and surfaces the course's charts use, and what they become on a dark page. White
// and #111 are kept: they are text on coloured or light fills (bars, heatmap cells).
const DARK_COLOURS = {
  "#000": "#e8e8e8", "#000000": "#e8e8e8", black: "#e8e8e8", "#222": "#e6e6e6", "#222222": "#e6e6e6",
  "#333": "#dddddd", "#444": "#cccccc", "#555": "#bdbdbd", "#666": "#adadad", "#6b6b6b": "#a8a8a8",
  "#7a4d00": "#f0b860", "#8a3b00": "#ff9d60", "#f3f3f3": "#2c3038", "#d9d9d9": "#454a54", "#f6d9a8": "#5e4622",
};
const COLOUR_KEYS = new Set(["color", "fill", "stroke", "range", "value", "category"]);

function recolour(node, key) {
  if (typeof node === "string") {
    return COLOUR_KEYS.has(key) ? DARK_COLOURS[node.toLowerCase()] ?? node : node;
  }
  if (Array.isArray(node)) return node.map((v) => recolour(v, key));
  if (node && typeof node === "object") {
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      // Data never changes colour; only mark properties, encoding values and scale ranges.
      out[k] = k === "datasets" || k === "data" || k === "usermeta" ? v : recolour(v, k);
    }
    return out;
  }
  return node;
}

function merge(base, extra) {
  const out = { ...(base || {}) };
  for (const [k, v] of Object.entries(extra)) {
    out[k] = v && typeof v === "object" && !Array.isArray(v) ? merge(out[k], v) : v;
  }
  return out;
}

function darken(spec) {
  const out = recolour(spec, "");
  out.config = merge(out.config, DARK_CONFIG);
  return out;
}

// --------------------------------------------------------------------------- fitting
let measureContext;
function textWidth(text, size, weight = 400, font = "sans-serif") {
  measureContext = measureContext || document.createElement("canvas").getContext("2d");
  measureContext.font = `${weight} ${size}px ${font}`;
  return measureContext.measureText(text).width;
}

function wrapLine(text, width, size, weight, font) {
  const words = String(text).split(/\s+/);
  const lines = [];
  let line = "";
  for (const word of words) {
    const next = line ? `${line} ${word}` : word;
    if (line && textWidth(next, size, weight, font) > width) {
      lines.push(line);
      line = word;
    } else line = next;
  }
  if (line) lines.push(line);
  return lines;
}

// Titles do not wrap in Vega: break titles and subtitles (of the chart and of its views,
// e.g. a zoom strip's instructions) into lines that fit.
function wrapTitles(spec, width) {
  const cfg = (spec.config && spec.config.title) || {};
  const font = (spec.config && spec.config.font) || "sans-serif";
  const sideBySide = new Set(spec.hconcat || spec.concat || []);
  const share = Math.max(100, (width - 70) / Math.max(1, sideBySide.size));
  for (const view of views(spec)) {
    if (!view.title) continue;
    const title = typeof view.title === "string" || Array.isArray(view.title) ? { text: view.title } : { ...view.title };
    // The chart's title shares its row with the menu button; a view's title starts
    // after its y axis labels.
    const room = view === spec ? width - MENU_ROOM : sideBySide.has(view) ? share : width - 70;
    const wrap = (value, size, weight) =>
      [].concat(value).flatMap((line) => wrapLine(line, room, size, weight, font));
    if (title.text) title.text = wrap(title.text, title.fontSize || cfg.fontSize || 13, title.fontWeight || cfg.fontWeight || 700);
    if (title.subtitle) title.subtitle = wrap(title.subtitle, title.subtitleFontSize || cfg.subtitleFontSize || 10, 400);
    view.title = title;
  }
}

// Narrow columns: legends below the chart in columns, shorter axis and legend labels.
function narrow(spec, width) {
  const columns = width < 400 ? 2 : 3;
  const legend = { orient: "bottom", direction: "horizontal", columns,
                   labelLimit: Math.max(60, Math.floor(width / columns) - 40) };
  const labelLimit = Math.round(width * 0.34);
  // Several legends below the chart stack up instead of standing side by side.
  const layout = { bottom: { anchor: "start", direction: "vertical", margin: 6 } };
  spec.config = merge(spec.config, { legend: { ...legend, layout }, axis: { labelLimit } });
  for (const view of views(spec)) {
    for (const [channel, def] of Object.entries(view.encoding || {})) {
      if (!def || typeof def !== "object") continue;
      if (def.legend) Object.assign(def.legend, legend, { labelLimit: legend.labelLimit });
      if (def.axis && (channel === "y" || channel === "x") && (def.axis.labelLimit || 0) > labelLimit) {
        def.axis.labelLimit = labelLimit;
      }
      // Slanted x labels reach far left and right; upright ones take height instead.
      if (def.axis && channel === "x" && def.axis.labelAngle && def.axis.labelAngle % 90) {
        def.axis.labelAngle = -90;
        def.axis.labelAlign = "right";
        def.axis.labelBaseline = "middle";
      }
    }
  }
}

// Touch screens: points at least ~7.5 px across (a tap also finds the nearest point).
function biggerPoints(spec) {
  for (const view of views(spec)) {
    const mark = view.mark;
    if (!mark || typeof mark !== "object") continue;
    if (["point", "circle", "square"].includes(mark.type) && (mark.size ?? 30) < 44) mark.size = 44;
    if (mark.point && typeof mark.point === "object" && (mark.point.size ?? 30) < 44) mark.point.size = 44;
  }
}

function prepare(spec, pool, width) {
  let out = JSON.parse(JSON.stringify(spec));
  if (isDark()) out = darken(out);
  if (width < NARROW) narrow(out, width);
  // usrok.charts declares this parameter (false in a notebook); builders use it to place
  // or leave out labels in a narrow column.
  for (const param of out.params || []) if (param.name === "usrok_narrow") param.value = width < NARROW;
  if (matchMedia("(pointer: coarse)").matches) biggerPoints(out);
  wrapTitles(out, width);
  // Lay the drawing out again when shrinkToFit narrows its views.
  out.autosize = { type: "pad", ...(typeof out.autosize === "object" ? out.autosize : {}), resize: true };
  out.datasets = pool;
  return out;
}

// The width signals of the chart's views (one per concatenated view; facets: child_width).
function widthSignals(view) {
  const state = view.getState({ signals: (name) => /^(width|child_width|concat_\d+_(?:child_)?width)$/.test(name),
                                data: () => false, recurse: true }).signals;
  return Object.entries(state || {}).filter(([, v]) => typeof v === "number" && v > 0);
}

// Narrow the views until the drawing fits its column (axis labels take what is left).
// Text placed in pixels (labels beside a rule, notes at a fixed x) can keep a drawing wide
// however narrow its views get: then stop narrowing, and as a last resort scale the
// drawing down to the column (data-scaled says by how much; the tests watch it).
async function shrinkToFit(view, target, spec) {
  const side_by_side = Boolean(spec.hconcat || spec.concat);
  const svg = () => target.querySelector("svg");
  const natural = Object.fromEntries(widthSignals(view));
  for (let round = 0; round < 6 && svg(); round++) {
    const before = svg().getBoundingClientRect().width;
    const over = before - target.clientWidth;
    if (over <= 0.5) break;
    const signals = widthSignals(view);
    const total = signals.reduce((sum, [, v]) => sum + v, 0);
    let changed = false;
    for (const [name, value] of signals) {
      const cut = side_by_side ? (over * value) / total : over;
      const next = Math.max(Math.ceil(0.4 * (natural[name] || value)), Math.floor(value - cut - 1));
      if (next < value) {
        view.signal(name, next);
        changed = true;
      }
    }
    if (!changed) break;
    await view.runAsync();
    if (svg().getBoundingClientRect().width > before - 0.25 * over) break; // text, not views, is wide
  }
  const drawing = svg();
  delete target.dataset.scaled;
  if (drawing && drawing.getBoundingClientRect().width > target.clientWidth + 0.5) {
    const scale = target.clientWidth / drawing.getBoundingClientRect().width;
    drawing.style.width = "100%";
    drawing.style.height = "auto";
    target.dataset.scaled = scale.toFixed(2);
  }
}

// --------------------------------------------------------------------------- touch
// A tap shows the tooltip of the nearest point (points are small for a finger).
function tapTooltips(chart) {
  const { target } = chart;
  target.addEventListener("pointerup", (event) => {
    const view = chart.result && chart.result.view;
    if (event.pointerType !== "touch" || !view) return;
    let best = null;
    let bestDistance = TAP_RADIUS;
    for (const el of target.querySelectorAll("svg path, svg rect, svg line, svg text")) {
      const item = el.__data__;
      if (!item || item.tooltip == null || !item.mark || item.opacity === 0) continue;
      const type = item.mark.marktype;
      if (type === "line" || type === "area" || type === "group") continue; // one tooltip per series
      if (type === "text" && !item.text) continue; // a label left out (narrow column)
      const box = el.getBoundingClientRect();
      const dx = Math.max(box.left - event.clientX, 0, event.clientX - box.right);
      const dy = Math.max(box.top - event.clientY, 0, event.clientY - box.bottom);
      // Points win over bands and rules they sit on.
      const distance = Math.hypot(dx, dy) + (type === "symbol" ? 0 : 8);
      if (distance < bestDistance) {
        best = item;
        bestDistance = distance;
      }
    }
    const show = view.tooltip();
    if (best && show) show.call(view, view._handler, event, best, best.tooltip);
  });
}

// --------------------------------------------------------------------------- data table
function formatNumber(value, format) {
  const m = /^(,)?(?:\.(\d+))?([dfe%])?$/.exec(format || ",");
  const group = m ? Boolean(m[1]) : true;
  const digits = m && m[2] !== undefined ? Number(m[2]) : null;
  const type = m ? m[3] : undefined;
  const number = (v, min, max) => new Intl.NumberFormat("en-US", {
    useGrouping: group, minimumFractionDigits: min, maximumFractionDigits: max }).format(v);
  if (type === "%") return `${number(value * 100, digits ?? 0, digits ?? 0)}%`;
  if (type === "d") return number(Math.round(value), 0, 0);
  if (type === "f") return number(value, digits ?? 6, digits ?? 6);
  return number(value, 0, digits ?? 3);
}

function cellText(value, column) {
  if (value === null || value === undefined || (typeof value === "number" && Number.isNaN(value))) return "";
  if (column.type === "temporal") {
    const text = String(value);
    return column.format === "%Y" ? text.slice(0, 4) : text.slice(0, 10);
  }
  if (typeof value === "number") return formatNumber(value, column.format);
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

// One CSV cell. Text that a spreadsheet would run as a formula (starting with = + - @,
// tab or carriage return) gets a leading ' (OWASP's rule); numbers stay numbers.
function csvCell(value) {
  if (value === null || value === undefined || (typeof value === "number" && Number.isNaN(value))) return "";
  let text = typeof value === "boolean" ? String(value) : String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvText(rows, columns) {
  const lines = [columns.map((c) => csvCell(c.title)).join(",")];
  for (const row of rows) lines.push(columns.map((c) => csvCell(row[c.field])).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

function slug(text) {
  // At most 60 characters, cut at a word boundary ("...-germany-1950-2023", not "...-1950-").
  const words = text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").split("-");
  let out = "";
  for (const w of words) {
    if (out && out.length + 1 + w.length > 60) break;
    out = out ? `${out}-${w}` : w.slice(0, 60);
  }
  return out || "chart";
}

function dataTable(spec, pool) {
  const table = courseMeta(spec).table || {};
  const rows = pool[table.dataset] || [];
  let columns = table.columns || [];
  if (!columns.length && rows.length) {
    columns = Object.keys(rows[0]).map((field) => ({ field, title: field, type: "nominal" }));
  }
  const wrap = document.createElement("div");
  wrap.className = "usrok-table-wrap";
  wrap.tabIndex = 0; // the box scrolls: keyboard users can scroll it too
  const t = document.createElement("table");
  t.className = "usrok-table";
  const caption = t.createCaption();
  caption.textContent = `Data behind the chart “${titleText(spec)}”: ${rows.length.toLocaleString("en-US")} rows.`;
  const head = t.createTHead().insertRow();
  for (const c of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = c.title;
    head.appendChild(th);
  }
  const body = t.createTBody();
  for (const row of rows.slice(0, MAX_ROWS)) {
    const tr = body.insertRow();
    for (const c of columns) {
      const td = tr.insertCell();
      td.textContent = cellText(row[c.field], c);
      if (typeof row[c.field] === "number") td.className = "usrok-num";
    }
  }
  wrap.appendChild(t);
  const out = document.createDocumentFragment();
  out.appendChild(wrap);
  if (rows.length > MAX_ROWS) {
    const more = document.createElement("p");
    more.textContent = `First ${MAX_ROWS} of ${rows.length} rows; the CSV has them all.`;
    out.appendChild(more);
  }
  const link = document.createElement("a");
  link.className = "usrok-csv";
  link.download = `${slug(titleText(spec))}.csv`;
  link.href = URL.createObjectURL(new Blob([csvText(rows, columns)], { type: "text/csv;charset=utf-8" }));
  link.textContent = `Download this table as CSV (${link.download})`;
  const p = document.createElement("p");
  p.appendChild(link);
  out.appendChild(p);
  return out;
}

// Fill "Data behind the chart" the first time a reader opens it (drawn chart or not: the
// table needs no Vega).
function attachDataTable(chart) {
  const details = chart.target.parentElement.querySelector("details.usrok-data");
  if (!details || details.dataset.bound) return;
  details.dataset.bound = "true";
  details.addEventListener("toggle", () => {
    if (!details.open || details.dataset.filled) return;
    details.dataset.filled = "true";
    details.querySelector(".usrok-table-note")?.remove();
    details.appendChild(dataTable(specOf(chart), datasets()));
  });
}

// --------------------------------------------------------------------------- drawing
// One accessible name per chart (its description), instead of Vega's per-mark roles,
// which name hundreds of unlabelled shapes; the data table under the chart gives the values.
function labelForAssistiveTech(target) {
  const svg = target.querySelector("svg");
  if (svg) {
    svg.querySelectorAll("[role], [aria-roledescription], [aria-label]").forEach((el) => {
      ["role", "aria-roledescription", "aria-label"].forEach((a) => el.removeAttribute(a));
    });
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", target.dataset.description || "chart");
  }
  const menu = target.querySelector(".vega-actions")?.parentElement?.querySelector("summary");
  if (menu) menu.setAttribute("aria-label", "Chart menu: save the chart as SVG or PNG");
}

// Every chart of the page: {target, script, spec, wanted, failed, result, width, theme}.
const charts = [];
let datasetPool = null; // parsed when the first chart is drawn or its table opened
function datasets() {
  datasetPool = datasetPool || pageDatasets();
  return datasetPool;
}
function specOf(chart) {
  chart.spec = chart.spec || JSON.parse(chart.script.textContent);
  return chart.spec;
}

async function draw(chart) {
  const { target } = chart;
  const spec = specOf(chart);
  const width = target.clientWidth;
  const theme = isDark() ? "dark" : "light";
  chart.result?.finalize();
  target.textContent = "";
  const result = await window.vegaEmbed(target, prepare(spec, datasets(), width), OPTIONS);
  chart.result = result;
  target.usrokView = result.view; // for the browser tests
  chart.width = width;
  chart.theme = theme;
  await shrinkToFit(result.view, target, spec);
  labelForAssistiveTech(target);
  target.dataset.theme = theme;
}

// A chart to draw now: wanted and not drawn yet, or drawn for another theme or width.
function needsDrawing(chart) {
  if (!chart.wanted || chart.failed) return false;
  if (!chart.result) return true;
  return chart.theme !== (isDark() ? "dark" : "light") || Math.abs(chart.target.clientWidth - chart.width) >= 8;
}

// How far the chart is from the screen, in px (0: on it).
function distanceFromScreen(chart) {
  const box = chart.target.getBoundingClientRect();
  return Math.max(0, box.top - innerHeight, -box.bottom);
}

async function drawOne(chart) {
  const { target } = chart;
  const again = Boolean(chart.result);
  if (again) target.dataset.redrawing = "true";
  try {
    await draw(chart);
    target.dataset.drawn = "true";
    // The benchmark reads this mark: time from navigation to the first chart drawn.
    if (!performance.getEntriesByName("usrok-first-chart").length) performance.mark("usrok-first-chart");
  } catch (err) {
    chart.failed = true; // not tried again (the loop would retry it for ever)
    console.error("usrok chart:", err);
    if (!again) {
      target.dataset.drawn = "error";
      target.textContent = "This chart could not be drawn; its data are on the Data sources page.";
    }
  }
  delete target.dataset.redrawing;
}

// One drawing loop, one chart at a time (a redraw never runs beside a first draw of the
// same chart), the charts nearest the screen first (those on it before any other).
const vegaReady = window.vegaEmbed ? Promise.resolve()
  : new Promise((resolve) => window.addEventListener("vega-ready", resolve, { once: true }));
let drawing = null; // the running loop
async function drawLoop() {
  try {
    await vegaReady;
    for (let todo = charts.filter(needsDrawing); todo.length; todo = charts.filter(needsDrawing)) {
      const distances = todo.map(distanceFromScreen);
      await drawOne(todo[distances.indexOf(Math.min(...distances))]);
    }
  } finally {
    drawing = null; // before the loop's promise settles: a chart wanted now starts a new loop
  }
}
function drawWanted() {
  if (!drawing && charts.some(needsDrawing)) drawing = drawLoop();
  return drawing || Promise.resolve();
}
// For the browser tests: the running drawing loop (a promise), or null when idle.
window.usrokChartsDrawing = () => drawing;

// Draw a chart soon (the first one asks vega-loader.js for the bundle).
let nearScreen = null; // the IntersectionObserver
function want(chart) {
  if (chart.wanted) return;
  chart.wanted = true;
  nearScreen?.unobserve(chart.target);
  window.usrokVegaWanted = true; // vega-loader.js may run after this script: it looks here
  window.usrokLoadVega?.();
  drawWanted();
}

function setUp() {
  for (const script of document.querySelectorAll("script.usrok-spec")) {
    const target = script.previousElementSibling;
    if (!target || !target.classList.contains("usrok-chart") || charts.some((c) => c.target === target)) continue;
    const chart = { target, script };
    charts.push(chart);
    attachDataTable(chart);
    tapTooltips(chart);
  }
  if (!charts.length) return;
  // Charts within about a screen of the viewport (a screen height above and below it);
  // this covers a link to a figure (#fig-...), which scrolls it onto the screen. The first
  // report comes after the first paint, so the bundle never delays it.
  if ("IntersectionObserver" in window) {
    nearScreen = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) want(charts.find((c) => c.target === entry.target));
      }
    }, { rootMargin: "100% 0px 100% 0px" });
    for (const chart of charts) nearScreen.observe(chart.target);
  } else {
    requestAnimationFrame(() => setTimeout(() => charts.forEach(want)));
  }
  // Printing draws every chart. Drawing takes a moment, and a print job may be laid out
  // before it ends: a chart not drawn yet says so in the printout.
  window.addEventListener("beforeprint", () => {
    for (const chart of charts) {
      const loading = chart.target.querySelector(".usrok-chart-loading");
      if (loading) loading.textContent = "This chart is still being drawn: print again in a moment to include it.";
      want(chart);
    }
  });
  followThemeAndWidth();
}

// Draw again when the reader switches light/dark mode or the column width changes
// (rotating a phone, resizing a window); the loop finds the charts concerned.
function followThemeAndWidth() {
  let pending = null;
  const redraw = () => {
    clearTimeout(pending);
    pending = setTimeout(drawWanted, 60);
  };
  new MutationObserver(redraw).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  const resize = new ResizeObserver(redraw);
  for (const chart of charts) resize.observe(chart.target.parentElement);
}

// This script loads as an async module: set up as soon as the page has been parsed,
// without waiting for the theme's deferred scripts.
if (document.readyState !== "loading") setUp();
else document.addEventListener("readystatechange", setUp, { once: true });
