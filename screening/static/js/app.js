// Progressive enhancement only: everything works without this file.
// Follow-up questions are hidden until the answer that needs them is chosen.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var blocks = Array.prototype.slice.call(document.querySelectorAll(".conditional[data-parent]"));
  function sync() {
    blocks.forEach(function (block) {
      var name = block.getAttribute("data-parent");
      var wanted = block.getAttribute("data-values").split(" ");
      var inputs = document.querySelectorAll('input[name="' + name + '"]');
      var show = false;
      Array.prototype.forEach.call(inputs, function (input) {
        if (input.checked && wanted.indexOf(input.value) !== -1) { show = true; }
      });
      var parentBlock = block.parentElement.closest(".conditional");
      if (parentBlock && parentBlock.hidden) { show = false; }
      block.hidden = !show;
      Array.prototype.forEach.call(inputs, function (input) {
        input.setAttribute("aria-controls", block.id);
      });
    });
  }
  document.addEventListener("change", sync);
  sync();
})();
