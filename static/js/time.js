// Times in the viewer's time zone. The pages write times in UTC inside <time datetime="…Z">;
// this shows each in local time with how long ago (or ahead) it is, and keeps the UTC text as
// the tooltip. Without JavaScript the UTC text stays, which is still right.
(function () {
  "use strict";
  var relative = window.Intl && Intl.RelativeTimeFormat
    ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" })
    : null;
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
    ["hour", 3600], ["minute", 60], ["second", 1]];

  function ago(when) {
    var seconds = (when.getTime() - Date.now()) / 1000;
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1] || units[i][0] === "second") {
        var n = Math.round(seconds / units[i][1]);
        return relative.format(units[i][0] === "second" && Math.abs(n) < 10 ? 0 : n, units[i][0]);
      }
    }
    return "";
  }

  document.querySelectorAll("time[datetime*='T']").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when.getTime())) { return; }
    var local = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    el.title = el.textContent;
    el.textContent = relative ? local + " (" + ago(when) + ")" : local;
  });
})();
