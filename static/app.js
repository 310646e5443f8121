// Small behaviours the pages need; kept here because the CSP allows no inline script.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="#selector"> copies that input's value.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) return;
    field.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });

  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("[data-select-on-focus]")) event.target.select();
  });

  // Composer: Ctrl/Cmd+Enter sends; the text box empties once the question is accepted.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.closest("#composer")) {
      event.preventDefault();
      event.target.closest("form").requestSubmit();
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (form.id === "composer" && event.detail.successful) {
      form.querySelector("textarea").value = "";
      scrollMessages();
    }
  });

  function scrollMessages() {
    var messages = document.getElementById("messages");
    if (messages) messages.lastElementChild && messages.lastElementChild.scrollIntoView({ block: "end" });
  }
  document.addEventListener("htmx:sseMessage", scrollMessages);
})();
