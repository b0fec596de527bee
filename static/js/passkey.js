// Passkeys (WebAuthn). The browser's API needs JavaScript: without it these parts of the page
// stay hidden, and the code fields beside them work as before.
//
// - A box with data-passkey-get holds the server's challenge (JSON). Its button asks the
//   browser for a passkey, puts the signed answer into the form's "passkey" field and submits
//   the form; the server checks it.
// - A form with data-passkey-create holds the options for a new passkey. Submitting it asks the
//   browser to create one, puts the answer into its "credential" field, then submits.
(function () {
  "use strict";

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function say(box, message) {
    var status = box.querySelector("[data-passkey-status]");
    if (status) { status.textContent = message; status.hidden = false; }
  }

  var supported = !!(window.PublicKeyCredential && navigator.credentials);

  document.querySelectorAll("[data-passkey-get]").forEach(function (box) {
    if (!supported) { return; }
    var form = box.closest("form");
    var button = box.querySelector("button");
    box.hidden = false;
    button.addEventListener("click", function () {
      var options = JSON.parse(box.getAttribute("data-passkey-get")).publicKey;
      options.challenge = toBytes(options.challenge);
      (options.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
      button.disabled = true;
      navigator.credentials.get({ publicKey: options }).then(function (answer) {
        form.querySelector("input[name=passkey]").value = JSON.stringify({
          id: answer.id,
          rawId: toText(answer.rawId),
          type: answer.type,
          response: {
            authenticatorData: toText(answer.response.authenticatorData),
            clientDataJSON: toText(answer.response.clientDataJSON),
            signature: toText(answer.response.signature),
            userHandle: answer.response.userHandle ? toText(answer.response.userHandle) : null
          }
        });
        form.submit();
      }).catch(function () {
        button.disabled = false;
        say(box, "No passkey was used. Try again, or enter a code below.");
      });
    });
  });

  document.querySelectorAll("form[data-passkey-create]").forEach(function (form) {
    var box = form.querySelector("[data-passkey-box]");
    if (!supported) {
      if (box) { say(box, "This browser cannot create passkeys. Try another browser or device."); }
      return;
    }
    form.querySelectorAll("[data-passkey-needs-js]").forEach(function (el) { el.hidden = false; });
    form.addEventListener("submit", function (event) {
      var field = form.querySelector("input[name=credential]");
      if (field.value) { return; }
      event.preventDefault();
      var options = JSON.parse(form.getAttribute("data-passkey-create")).publicKey;
      options.challenge = toBytes(options.challenge);
      options.user.id = toBytes(options.user.id);
      (options.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
      navigator.credentials.create({ publicKey: options }).then(function (created) {
        field.value = JSON.stringify({
          id: created.id,
          rawId: toText(created.rawId),
          type: created.type,
          response: {
            attestationObject: toText(created.response.attestationObject),
            clientDataJSON: toText(created.response.clientDataJSON)
          }
        });
        form.submit();
      }).catch(function () {
        if (box) { say(box, "No passkey was created. Try again, or use another device or security key."); }
      });
    });
  });
})();
