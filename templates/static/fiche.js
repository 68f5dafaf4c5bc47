/* Progressive enhancements of the static pages; without JavaScript every page works as it is.
 * - On a fiche: a "Copier la référence" button next to "Ref : …".
 * - On forms marked data-siret-form: go straight to /organismes/<SIRET>.html (without JS the form
 *   leads to the list of organismes).
 */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy")); }
    });
  }

  function selectNode(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function addCopyButton(refNode) {
    var ref = refNode.getAttribute("data-ref");
    if (!ref) { return; }
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button button-small button-secondary copy-ref";
    button.textContent = "Copier la référence";
    var status = document.createElement("span");
    status.className = "copy-status";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    button.addEventListener("click", function () {
      copyText(ref).then(function () {
        status.textContent = "Référence " + ref + " copiée.";
      }, function () {
        selectNode(refNode);
        status.textContent = "Copie impossible : la référence est sélectionnée, faites Ctrl+C.";
      });
    });
    refNode.parentNode.appendChild(document.createTextNode(" "));
    refNode.parentNode.appendChild(button);
    refNode.parentNode.appendChild(status);
  }

  function enhanceSiretForm(form) {
    var input = form.querySelector("input[name=siret]");
    if (!input) { return; }
    form.addEventListener("submit", function (event) {
      var siret = input.value.replace(/[\s.]/g, "");
      if (/^\d{14}$/.test(siret)) {
        event.preventDefault();
        window.location.href = "/organismes/" + siret + ".html";
      } else if (siret !== "") {
        event.preventDefault();
        input.setCustomValidity("Un SIRET compte 14 chiffres.");
        input.reportValidity();
      }
    });
    input.addEventListener("input", function () { input.setCustomValidity(""); });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll(".fiche-ref-ref[data-ref]"), addCopyButton);
    Array.prototype.forEach.call(document.querySelectorAll("form[data-siret-form]"), enhanceSiretForm);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
