// Progressive enhancement only: everything works without this file.
// Follow-up questions are hidden until the answer that needs them is chosen.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var blocks = Array.prototype.slice.call(document.querySelectorAll(".conditional[data-parent]"));
  function inputsOf(block) {
    return document.querySelectorAll('input[name="' + block.getAttribute("data-parent") + '"]');
  }
  // Each answer that reveals a follow-up says which one (aria-controls), once: an answer that reveals
  // two follow-ups names both, and one that reveals none names none.
  blocks.forEach(function (block) {
    var wanted = block.getAttribute("data-values").split(" ");
    Array.prototype.forEach.call(inputsOf(block), function (input) {
      if (wanted.indexOf(input.value) === -1) { return; }
      var ids = (input.getAttribute("aria-controls") || "").split(" ").filter(Boolean);
      if (ids.indexOf(block.id) === -1) { ids.push(block.id); }
      input.setAttribute("aria-controls", ids.join(" "));
    });
  });
  function sync() {
    blocks.forEach(function (block) {
      var wanted = block.getAttribute("data-values").split(" ");
      var show = false;
      Array.prototype.forEach.call(inputsOf(block), function (input) {
        if (input.checked && wanted.indexOf(input.value) !== -1) { show = true; }
      });
      var parentBlock = block.parentElement.closest(".conditional");
      if (parentBlock && parentBlock.hidden) { show = false; }
      block.hidden = !show;
    });
  }
  // "None of these" stands alone: ticking it unticks the others, and ticking another unticks it.
  // (The server refuses the mix anyway; this saves a round trip.)
  function exclusive(event) {
    var box = event.target;
    if (!box || box.type !== "checkbox" || !box.checked) { return; }
    var group = document.querySelectorAll('input[type="checkbox"][name="' + box.name + '"]');
    Array.prototype.forEach.call(group, function (other) {
      if (other !== box && (box.value === "none" || other.value === "none")) { other.checked = false; }
    });
  }
  document.addEventListener("change", function (event) { exclusive(event); sync(); });
  sync();
})();

// What a client types on a question page survives a reload (or a connection lost while sending) until the
// server has it: kept in this tab's sessionStorage, never on a kiosk (its pages have no data-keep), and
// forgotten once the page was sent and the next one loaded, or when the questionnaire is finished.
(function () {
  "use strict";
  var store;
  try { store = window.sessionStorage; } catch (e) { return; }
  if (!store) { return; }
  var form = document.querySelector("form[data-keep]");
  var prefix = "typed:";
  var here = form ? prefix + form.getAttribute("data-keep") : null;
  function read(key) {
    try { return JSON.parse(store.getItem(key) || "null"); } catch (e) { return null; }
  }
  // Pages sent before this one was loaded are with the server now; on a page with no questions, all are.
  for (var i = store.length - 1; i >= 0; i -= 1) {
    var key = store.key(i);
    if (key && key.indexOf(prefix) === 0 && key !== here && (!form || (read(key) || {}).sent)) {
      store.removeItem(key);
    }
  }
  if (!form) { return; }
  function fields() {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && el.name !== "csrf_token" && el.name !== "action" &&
        ["submit", "button", "hidden", "file"].indexOf(el.type) === -1;
    });
  }
  function save(sent) {
    var values = {};
    fields().forEach(function (el) {
      if (el.type === "radio" || el.type === "checkbox") {
        values[el.name] = values[el.name] || [];
        if (el.checked) { values[el.name].push(el.value); }
      } else {
        values[el.name] = el.value;
      }
    });
    try { store.setItem(here, JSON.stringify({ sent: sent, values: values })); } catch (e) { /* full: ignore */ }
  }
  var kept = read(here);
  // After a refused send the server shows what was sent, with its errors: nothing to bring back then.
  if (kept && kept.values && !document.querySelector(".error-summary")) {
    fields().forEach(function (el) {
      if (!(el.name in kept.values)) { return; }
      if (el.type === "radio" || el.type === "checkbox") {
        el.checked = kept.values[el.name].indexOf(el.value) !== -1;
      } else {
        el.value = kept.values[el.name];
      }
    });
    var note = document.createElement("p");
    note.className = "notice";
    note.setAttribute("role", "status");
    note.textContent = form.getAttribute("data-kept-message");
    form.insertBefore(note, form.firstChild);
    form.dispatchEvent(new Event("change", { bubbles: true }));  // show the follow-ups that were open
  }
  form.addEventListener("input", function () { save(false); });
  form.addEventListener("change", function () { save(false); });
  form.addEventListener("submit", function () { save(true); });
})();
