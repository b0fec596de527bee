// Copy buttons: an enhancement. Without JavaScript the values sit in read-only fields that can
// be selected and copied by hand; with it, each button copies its field.
document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field || !navigator.clipboard) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(field.value).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });
});
