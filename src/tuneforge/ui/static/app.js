// Auto-refresh of pages about active jobs, copy buttons, the new-job form's preview, and
// confirmation before a destructive form. No framework: a page that sets
// data-refresh on <body> fetches itself every few seconds and swaps in the new <main>.
(function () {
  "use strict";

  function busy() {
    var active = document.activeElement;
    if (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return true;
    var selection = window.getSelection && window.getSelection();
    return Boolean(selection && selection.toString());  // the user is copying a name
  }

  function schedule() {
    var seconds = Number(document.body.dataset.refresh);
    if (seconds > 0) window.setTimeout(refresh, seconds * 1000);
  }

  function refresh() {
    if (document.hidden || busy()) return schedule();
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error("stale page");
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var main = fresh.querySelector("main");
        if (main) document.querySelector("main").replaceWith(main);
        document.body.dataset.refresh = fresh.body.dataset.refresh || "";
        schedule();
      })
      .catch(function () { window.setTimeout(refresh, 30000); });
  }

  document.addEventListener("click", function (event) {
    var back = event.target.closest("a.back");  // no inline script: the CSP forbids it
    if (back && window.history.length > 1) {
      event.preventDefault();
      window.history.back();
      return;
    }
    var button = event.target.closest("button.copy");
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(button.dataset.copy).then(function () {
      button.textContent = "copied";
      window.setTimeout(function () { button.textContent = "copy"; }, 1500);
    });
  });

  // The new-job form: choosing another file, model, method or mode shows its preview (the
  // form's "Preview" button, which works without this script too).
  document.addEventListener("change", function (event) {
    if (!event.target.matches("[data-preview-on-change]")) return;
    var preview = event.target.form && event.target.form.querySelector('button[value="preview"]');
    if (preview) preview.click();
  });

  // A form marked data-confirm (cancel a job, delete a file or a model) asks first; without
  // this script it submits at once, as any form does.
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // A GET form's select marked data-submit-on-change (the file page's tokenizer) applies at once.
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-submit-on-change]") && event.target.form) event.target.form.submit();
  });

  if (!navigator.clipboard) document.documentElement.classList.add("no-clipboard");
  schedule();
})();
