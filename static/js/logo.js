// An application's logo that does not load (a dead URL, a blocked host) is taken away, so its
// initials, drawn under it, show instead of a broken image.
(function () {
  "use strict";
  document.querySelectorAll(".app-logo img").forEach(function (img) {
    function fail() { img.remove(); }
    if (img.complete && img.naturalWidth === 0) {
      fail();
    } else {
      img.addEventListener("error", fail);
    }
  });
})();
