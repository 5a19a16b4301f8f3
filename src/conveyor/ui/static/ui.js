// Progressive enhancement only: every page works without this file.
// Elements of running runs carry data-run-status="running"; their .run-status badge is
// refreshed from /runs/status.json until they finish. A run's own page (body attribute
// data-reload-when-done) then reloads once to show the final values.
(function () {
  "use strict";
  var rows = document.querySelectorAll("[data-run-id][data-run-status='running']");
  if (!rows.length) { return; }
  var pending = Array.prototype.slice.call(rows);
  var finished = false;
  function poll() {
    var ids = pending.map(function (row) { return row.getAttribute("data-run-id"); });
    fetch("/runs/status.json?ids=" + encodeURIComponent(ids.join(",")), {
      headers: { "Accept": "application/json" }, credentials: "same-origin"
    }).then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body) { return; }
        var statuses = body.statuses || body;
        pending = pending.filter(function (row) {
          var id = row.getAttribute("data-run-id");
          var status = statuses[id];
          if (!status) { return true; }
          var cell = row.querySelector(".run-status");
          if (cell) { cell.textContent = status; cell.className = "badge run-status " + status; }
          row.setAttribute("data-run-status", status);
          if (status !== "running") { finished = true; return false; }
          return true;
        });
      })
      .catch(function () { /* the next poll retries */ })
      .then(function () {
        if (pending.length) { window.setTimeout(poll, 2000); }
        else if (finished && document.body.getAttribute("data-reload-when-done") === "1") {
          window.location.reload();
        }
      });
  }
  window.setTimeout(poll, 2000);
})();
