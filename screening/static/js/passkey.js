// Passkeys (WebAuthn) with the browser's own navigator.credentials API: registering one (forms with
// data-passkey-register) and signing in with one (data-passkey-sign-in). The server makes the options and keeps
// the challenge; this script turns base64url into bytes and back, and posts the answer as a form field.
// Without this script (or a browser without passkeys) the forms stay hidden and the codes still work.
(function () {
  "use strict";

  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) {
      base64 += "=";
    }
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i += 1) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i += 1) {
      raw += String.fromCharCode(bytes[i]);
    }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBytes(item.id), transports: item.transports };
    });
  }

  function creationOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    return options;
  }

  function requestOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    return options;
  }

  function answer(credential) {
    var response = credential.response;
    var out = { id: credential.id, rawId: toText(credential.rawId), type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      authenticatorAttachment: credential.authenticatorAttachment || undefined, response: {} };
    out.response.clientDataJSON = toText(response.clientDataJSON);
    if (response.attestationObject) {
      out.response.attestationObject = toText(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toText(response.authenticatorData);
      out.response.signature = toText(response.signature);
      if (response.userHandle) {
        out.response.userHandle = toText(response.userHandle);
      }
    }
    return JSON.stringify(out);
  }

  function showError(form, message) {
    var box = form.querySelector("#passkey-error") || document.getElementById("passkey-error");
    if (box) {
      box.textContent = message;
      box.classList.add("error-message");
      box.hidden = false;
    }
  }

  function post(url, body) {
    return fetch(url, { method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json" } }).then(function (response) {
      return response.json().catch(function () {
        return { error: response.status === 429
          ? "Too many tries: wait a few minutes, then try again."
          : "Something went wrong. Reload the page and try again." };
      });
    });
  }

  function csrfOnly(form) {
    var body = new FormData();
    body.append("csrf_token", form.querySelector("[name=csrf_token]").value);
    return body;
  }

  function attach(form, kind) {
    form.hidden = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      var nameField = form.querySelector("[name=name]");
      if (kind === "register" && nameField && !nameField.value.trim()) {
        showError(form, "Give the passkey a name, like “Work laptop” or “My phone”.");
        nameField.focus();
        button.disabled = false;
        return;
      }
      post(form.dataset.optionsUrl, csrfOnly(form)).then(function (options) {
        if (options.error) {
          throw new Error(options.error);
        }
        return kind === "register"
          ? navigator.credentials.create({ publicKey: creationOptions(options) })
          : navigator.credentials.get({ publicKey: requestOptions(options) });
      }).then(function (credential) {
        if (!credential) {
          throw new Error("No passkey was given. Try again.");
        }
        var body = new FormData(form);
        body.set("credential", answer(credential));
        return post(form.action, body);
      }).then(function (result) {
        if (result.redirect) {
          window.location.assign(result.redirect);
          return;
        }
        throw new Error(result.error || "The passkey was not accepted. Try again.");
      }).catch(function (error) {
        var message = error && error.name === "NotAllowedError"
          ? "The passkey was cancelled or timed out. Try again."
          : (error && error.message) || "The passkey did not work. Try again.";
        showError(form, message);
        button.disabled = false;
      });
    });
  }

  document.querySelectorAll("[data-passkey-unsupported]").forEach(function (note) {
    note.hidden = true;
  });
  document.querySelectorAll("form[data-passkey-register]").forEach(function (form) {
    attach(form, "register");
  });
  document.querySelectorAll("form[data-passkey-sign-in]").forEach(function (form) {
    attach(form, "sign-in");
  });
}());
