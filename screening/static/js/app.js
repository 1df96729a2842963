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
