// Load the ~0.9 MB Vega bundle on a page with charts only when charts.js asks for it: when
// the first chart comes within about a screen of the viewport (which is after the first
// paint) or the page is printed. The bundle announces itself ("vega-ready") and charts.js
// draws the charts that need drawing.
(function () {
  const url = new URL(document.currentScript.dataset.vegaBundle, document.baseURI).href;
  let loading = null;
  window.usrokLoadVega = function () {
    loading = loading || import(url).catch((err) => console.error("usrok: the chart library did not load:", err));
    return loading;
  };
  // charts.js (an async module) may have asked before this deferred script ran.
  if (window.usrokVegaWanted) window.usrokLoadVega();
})();
