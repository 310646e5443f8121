// Small behaviours the pages need; kept here because the CSP allows no inline script.
(function () {
  "use strict";

  function copyText(text, field, done) {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text, field); done(); });
    } else {
      fallbackCopy(text, field);
      done();
    }
  }

  function fallbackCopy(text, field) {
    if (!field) {
      field = document.createElement("textarea");
      field.value = text;
      field.setAttribute("readonly", "");
      field.className = "copy-buffer";
      document.body.appendChild(field);
      field.select();
      document.execCommand("copy");
      field.remove();
      return;
    }
    field.select();
    document.execCommand("copy");
  }

  // Copy buttons: <button data-copy="#selector"> copies that input's value; a code block's button its code.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) {
      var field = document.querySelector(button.getAttribute("data-copy"));
      if (!field) return;
      field.select();
      copyText(field.value, field, function () { button.textContent = "Copied"; });
      return;
    }
    var codeButton = event.target.closest("[data-copy-code]");
    if (codeButton) {
      var code = codeButton.parentElement.querySelector("code");
      copyText(code.textContent, null, function () { codeButton.textContent = "Copied"; });
    }
  });

  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("[data-select-on-focus]")) event.target.select();
  });

  // Chat code blocks: a copy button each (the sanitised markdown cannot carry buttons itself).
  function addCopyButtons() {
    var blocks = document.querySelectorAll(".msg-body pre");
    Array.prototype.forEach.call(blocks, function (pre) {
      if (pre.parentElement.classList.contains("code-block")) return;
      var wrapper = document.createElement("div");
      wrapper.className = "code-block";
      pre.parentNode.insertBefore(wrapper, pre);
      wrapper.appendChild(pre);
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary outline small copy-code";
      button.setAttribute("data-copy-code", "");
      button.textContent = "Copy";
      wrapper.appendChild(button);
    });
  }

  // Composer: Enter sends, Shift+Enter makes a new line, Esc stops the answer being written;
  // Send is disabled while an answer is being written (also after a reload mid-answer).
  function liveAnswer() { return document.querySelector(".msg-live"); }

  function updateComposer() {
    var send = document.querySelector("#composer [data-send]");
    if (send) send.disabled = !!liveAnswer();
    document.querySelectorAll("[data-regenerate]").forEach(function (b) { b.disabled = !!liveAnswer(); });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && liveAnswer()) {
      var stop = liveAnswer().querySelector("[data-stop]");
      if (stop && !stop.disabled) stop.click();
      return;
    }
    var composer = event.target.closest && event.target.closest("#composer");
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && composer && event.target.tagName === "TEXTAREA") {
      event.preventDefault();
      var send = composer.querySelector("[data-send]");
      if (!send.disabled) composer.requestSubmit();
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (form.id === "composer" && event.detail.successful) {
      form.querySelector("textarea").value = "";
      scrollMessages();
    }
  });

  // After a delete, Undo is offered only while the server still accepts it.
  function expireUndo() {
    var toasts = document.querySelectorAll("[data-expires-in]");
    Array.prototype.forEach.call(toasts, function (toast) {
      window.setTimeout(function () { toast.remove(); }, Number(toast.getAttribute("data-expires-in")) * 1000);
    });
  }

  function scrollMessages() {
    var messages = document.getElementById("messages");
    if (messages) messages.lastElementChild && messages.lastElementChild.scrollIntoView({ block: "end" });
  }
  document.addEventListener("htmx:sseMessage", scrollMessages);

  document.addEventListener("htmx:load", function () {
    addCopyButtons();
    updateComposer();
  });
  document.addEventListener("htmx:afterSettle", updateComposer);
  document.addEventListener("htmx:sseClose", function () { window.setTimeout(updateComposer, 0); });
  document.addEventListener("DOMContentLoaded", function () {
    addCopyButtons();
    expireUndo();
    updateComposer();
    scrollMessages();
  });
})();
