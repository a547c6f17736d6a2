// Load the ~0.9 MB Vega bundle only on a page with charts, after the first paint, when the
// first chart comes within a screen of the viewport (or the page is printed). The bundle
// announces itself ("vega-ready") and charts.js draws the charts.
(function () {
  const url = new URL(document.currentScript.dataset.vegaBundle, document.baseURI).href;
  let observer = null;
  let started = false;
  function load() {
    if (started) return;
    started = true;
    if (observer) observer.disconnect();
    import(url).catch((err) => console.error("usrok: the chart library did not load:", err));
  }
  window.addEventListener("beforeprint", load, { once: true });
  if (!("IntersectionObserver" in window)) {
    load();
    return;
  }
  observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) load();
  }, { rootMargin: "100% 0px 100% 0px" });
  document.querySelectorAll(".usrok-chart").forEach((chart) => observer.observe(chart));
})();
