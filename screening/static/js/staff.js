// Staff idle timeout: warn two minutes before the server ends the session, and let the person stay.
// Without JavaScript the session still ends on the server after the idle time.
// When the countdown runs out, the page does not reload itself (a reload would count as activity and as a
// view): it asks the server, with the X-Screening-Automatic header, how long the session has left. The server
// renews nothing for that question and decides alone: time left (another tab was used) restarts the countdown;
// a session that has ended sends the page to the sign-in page.
(function () {
  "use strict";
  var box = document.getElementById("idle-warning");
  if (!box) { return; }
  var idle = parseInt(box.getAttribute("data-idle-seconds"), 10);
  var statusUrl = box.getAttribute("data-status-url");
  var loginUrl = box.getAttribute("data-login-url");
  var warnAt = Math.max(idle - 120, Math.floor(idle / 2));
  var started = Date.now();
  var asking = false;
  var countdown = document.getElementById("idle-countdown");
  var form = box.querySelector("form");
  function signedOut() { window.location.assign(loginUrl); }
  function ask() {
    asking = true;
    fetch(statusUrl, { headers: { "Accept": "application/json", "X-Screening-Automatic": "1" },
                       credentials: "same-origin", redirect: "manual" })
      .then(function (r) { if (r.status !== 200) { throw new Error("ended"); } return r.json(); })
      .then(function (data) {
        var left = data.idle_seconds_left;
        if (!(left > 0)) { throw new Error("ended"); }
        started = Date.now() - (idle - left) * 1000;  // the server's clock decides what is left
        if (idle - left < warnAt) { box.hidden = true; }
        asking = false;
      })
      .catch(signedOut);
  }
  function tick() {
    if (asking) { return; }
    var elapsed = (Date.now() - started) / 1000;
    var left = Math.max(0, Math.round(idle - elapsed));
    if (left === 0) { ask(); return; }
    if (elapsed >= warnAt) {
      if (box.hidden) { box.hidden = false; document.getElementById("idle-stay").focus(); }
      countdown.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
    }
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    fetch(form.action, { method: "POST", body: new FormData(form), headers: { "Accept": "application/json" },
                         credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("expired"); } return r.json(); })
      .then(function () { started = Date.now(); box.hidden = true; })
      .catch(ask);
  });
  setInterval(tick, 1000);
})();
