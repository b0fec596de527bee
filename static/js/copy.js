// Copy buttons: an enhancement. Without JavaScript the values sit in read-only fields that can
// be selected and copied by hand, and the buttons stay hidden; with it, each button copies its
// field. The button's accessible name (aria-label, "Copy client ID") changes with its text, so a
// screen reader hears "Copied" too.
document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field || !navigator.clipboard) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(field.value).then(function () {
      var text = button.textContent;
      var name = button.getAttribute("aria-label");
      button.textContent = "Copied";
      if (name) { button.setAttribute("aria-label", "Copied"); }
      setTimeout(function () {
        button.textContent = text;
        if (name) { button.setAttribute("aria-label", name); }
      }, 1500);
    });
  });
});
