// Draw every course chart on the page with the locally bundled Vega-Embed.
// Specs arrive already compiled to Vega at build time (usrok.book), so the browser
// skips the Vega-Lite compile step.
const OPTIONS = {
  mode: "vega",
  renderer: "svg",
  actions: { export: true, source: false, compiled: false, editor: false },
};


async function drawAll() {
  for (const script of document.querySelectorAll("script.usrok-spec")) {
    const target = script.previousElementSibling;
    if (!target || target.dataset.drawn) continue;
    try {
      const spec = JSON.parse(script.textContent);
      target.textContent = "";
      await window.vegaEmbed(target, spec, OPTIONS);
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
