// Draw every course chart on the page with the locally bundled Vega-Embed (no CDN).
// Each chart is a Vega-Lite spec in <script class="usrok-spec">; the data of all charts
// of the page sit once in <script id="usrok-datasets"> (see usrok.book.pool_datasets).
const OPTIONS = {
  mode: "vega-lite",
  renderer: "svg",
  actions: { export: true, source: false, compiled: false, editor: false },
};
const MAX_ROWS = 400;

function pageDatasets() {
  const pool = document.getElementById("usrok-datasets");
  return pool ? JSON.parse(pool.textContent) : {};
}

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

// The names of the datasets a spec (or any of its layers/panels) draws from.
function datasetNames(node, names = new Set()) {
  if (Array.isArray(node)) node.forEach((n) => datasetNames(n, names));
  else if (node && typeof node === "object") {
    if (node.data && typeof node.data.name === "string") names.add(node.data.name);
    Object.values(node).forEach((v) => datasetNames(v, names));
  }
  return names;
}

function table(rows) {
  const wrap = document.createElement("div");
  wrap.className = "usrok-table-wrap";
  const t = document.createElement("table");
  t.className = "usrok-table";
  const columns = Object.keys(rows[0] || {});
  const head = t.createTHead().insertRow();
  columns.forEach((c) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = c;
    head.appendChild(th);
  });
  const body = t.createTBody();
  rows.slice(0, MAX_ROWS).forEach((row) => {
    const tr = body.insertRow();
    columns.forEach((c) => { tr.insertCell().textContent = row[c] ?? ""; });
  });
  wrap.appendChild(t);
  if (rows.length > MAX_ROWS) {
    const more = document.createElement("p");
    more.textContent = `First ${MAX_ROWS} of ${rows.length} rows.`;
    wrap.appendChild(more);
  }
  return wrap;
}

// Fill "Data behind the chart" the first time a reader opens it.
function attachDataTable(block, spec, pool) {
  const details = block.querySelector("details.usrok-data");
  if (!details) return;
  details.addEventListener("toggle", () => {
    if (!details.open || details.dataset.filled) return;
    details.dataset.filled = "true";
    details.querySelector(".usrok-table-note")?.remove();
    for (const name of datasetNames(spec)) {
      if (pool[name] && pool[name].length) details.appendChild(table(pool[name]));
    }
  });
}

async function drawAll() {
  const pool = pageDatasets();
  for (const script of document.querySelectorAll("script.usrok-spec")) {
    const target = script.previousElementSibling;
    if (!target || target.dataset.drawn) continue;
    try {
      const spec = JSON.parse(script.textContent);
      spec.datasets = pool;
      attachDataTable(target.parentElement, spec, pool);
      target.textContent = "";
      await window.vegaEmbed(target, spec, OPTIONS);
      labelForAssistiveTech(target);
      target.dataset.drawn = "true";
      // The benchmark reads this mark: time from navigation to the first chart drawn.
      if (!performance.getEntriesByName("usrok-first-chart").length) performance.mark("usrok-first-chart");
    } catch (err) {
      target.dataset.drawn = "error";
      target.textContent = "This chart could not be drawn; its data are on the Data sources page.";
      console.error("usrok chart:", err);
    }
  }
}

// Both scripts load as async modules: draw as soon as Vega is ready and the page has been
// parsed, without waiting for the theme's deferred scripts.
function whenParsed(fn) {
  if (document.readyState !== "loading") fn();
  else document.addEventListener("readystatechange", fn, { once: true });
}
if (window.vegaEmbed) whenParsed(drawAll);
else window.addEventListener("vega-ready", () => whenParsed(drawAll), { once: true });
