// pjp console: live refresh. An element with data-live="/path" has its
// contents replaced by that path's HTML every data-every milliseconds; the
// last refresh time goes into #refreshed. Nothing else runs.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var url = el.getAttribute("data-live");
    var every = Math.max(500, parseInt(el.getAttribute("data-every") || "2000", 10));
    var busy = false;
    function refresh() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.text();
        })
        .then(function (html) {
          el.innerHTML = html;
          el.classList.remove("stale");
          var stamp = document.getElementById("refreshed");
          if (stamp) { stamp.textContent = "refreshed " + new Date().toLocaleTimeString(); }
        })
        .catch(function () { el.classList.add("stale"); })
        .then(function () { busy = false; });
    }
    setInterval(refresh, every);
  });
});
