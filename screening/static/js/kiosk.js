// Kiosk mode (the clinic's tablet): clear a client's answers after a time without activity, with a visible
// countdown first. The server enforces the same limit (screening/kiosk.py) when this script does not run.
(function () {
  "use strict";
  // A page restored from the back-forward cache could show the previous client's answers: fetch it again,
  // and the server answers with what is there now (nothing of theirs).
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { window.location.reload(); }
  });

  // The confirmation page: leave after a countdown, which the client can restart to note the reference.
  var done = document.getElementById("kiosk-done-countdown");
  if (done) {
    var total = parseInt(done.getAttribute("data-seconds"), 10);
    var left = total;
    var more = document.getElementById("kiosk-done-more");
    more.hidden = false;
    more.addEventListener("click", function () { left = total; done.textContent = done.textContent.replace(/\d+/, String(left)); });
    setInterval(function () {
      left -= 1;
      if (left <= 0) { window.location.replace(done.getAttribute("data-start-url")); return; }
      if (left % 5 === 0) { done.textContent = done.textContent.replace(/\d+/, String(left)); }
    }, 1000);
  }

  var box = document.getElementById("kiosk-idle");
  if (!box) { return; }
  var idle = parseInt(box.getAttribute("data-idle-seconds"), 10) * 1000;
  var warning = parseInt(box.getAttribute("data-warning-seconds"), 10);
  var aliveUrl = box.getAttribute("data-alive-url");
  var startUrl = box.getAttribute("data-start-url");
  var message = box.getAttribute("data-message");
  var count = document.getElementById("kiosk-idle-count");
  var status = document.getElementById("kiosk-idle-status");
  var stay = document.getElementById("kiosk-idle-stay");
  var resetForm = document.getElementById("kiosk-reset");
  var PING_AFTER = 15000;  // while the client is busy on one page, tell the server at most this often
  // The server restarts its idle clock on each request it sees, so this page counts from the last one.
  var lastContact = Date.now();
  var resetting = false;
  var spoken = null;

  function hide() {
    box.hidden = true;
    status.textContent = "";
    spoken = null;
  }

  function ping() {
    lastContact = Date.now();
    fetch(aliveUrl, { method: "POST", body: new FormData(resetForm), credentials: "same-origin" })
      .then(function (response) {
        if (response.status !== 204) { window.location.replace(startUrl); }
      })
      .catch(function () { /* offline: the countdown carries on and the server decides on the next request */ });
  }

  function activity(event) {
    if (resetting || box.contains(event.target)) { return; }
    if (!box.hidden || Date.now() - lastContact > PING_AFTER) {
      hide();
      ping();
    }
  }

  function speak(left) {
    if (spoken === left) { return; }
    if (spoken === null || left % 10 === 0 || left === 5) {
      status.textContent = message.replace("{n}", String(left));
      spoken = left;
    }
  }

  function tick() {
    if (resetting) { return; }
    var left = Math.ceil((idle - (Date.now() - lastContact)) / 1000);
    if (left <= 0) {
      resetting = true;
      resetForm.submit();
      return;
    }
    if (left <= warning) {
      if (box.hidden) {
        box.hidden = false;
        stay.focus();
      }
      count.textContent = String(left);
      speak(left);
    }
  }

  stay.addEventListener("click", function () {
    hide();
    ping();
  });
  ["keydown", "pointerdown", "input", "touchstart", "scroll"].forEach(function (name) {
    document.addEventListener(name, activity, { capture: true, passive: true });
  });
  setInterval(tick, 1000);
})();
