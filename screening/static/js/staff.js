// Staff idle timeout: warn two minutes before the server ends the session, and let the person stay.
// Without JavaScript the session still ends on the server after the idle time.
(function () {
  "use strict";
  var box = document.getElementById("idle-warning");
  if (!box) { return; }
  var idle = parseInt(box.getAttribute("data-idle-seconds"), 10);
  var warnAt = Math.max(idle - 120, Math.floor(idle / 2));
  var started = Date.now();
  var countdown = document.getElementById("idle-countdown");
  var form = box.querySelector("form");
  function tick() {
    var elapsed = (Date.now() - started) / 1000;
    var left = Math.max(0, Math.round(idle - elapsed));
    if (left === 0) { window.location.reload(); return; }
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
      .catch(function () { window.location.reload(); });
  });
  setInterval(tick, 1000);
})();
