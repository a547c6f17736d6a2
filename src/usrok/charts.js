// Draw every course chart on the page with the locally bundled Vega-Embed.
// Specs arrive already compiled to Vega at build time (usrok.book), so the browser
// skips the Vega-Lite compile step.
const OPTIONS = {
  mode: "vega",
  renderer: "svg",
  actions: { export: true, source: false, compiled: false, editor: false },
};


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

async function drawAll() {
  for (const script of document.querySelectorAll("script.usrok-spec")) {
    const target = script.previousElementSibling;
    if (!target || target.dataset.drawn) continue;
    try {
      const spec = JSON.parse(script.textContent);
      target.textContent = "";
      await window.vegaEmbed(target, spec, OPTIONS);
      labelForAssistiveTech(target);
      target.dataset.drawn = "true";
      // The benchmark reads this mark: time from navigation to the first chart drawn.
      if (!performance.getEntriesByName("usrok-first-chart").length) performance.mark("usrok-first-chart");
    } catch (err) {
      target.dataset.drawn = "error";
      target.textContent = "This chart could not be drawn; its data are in the table below.";
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
