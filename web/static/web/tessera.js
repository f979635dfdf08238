/* Progressive enhancement only: every page works without this file.
   - Forms marked data-track-changes announce unsaved changes next to their save button.
   - Buttons with data-confirm ask before submitting (the server asks again anyway).
   - An element with data-refresh-seconds (work in progress) reloads the page after that long. */
(function () {
  "use strict";
  document.querySelectorAll("form[data-track-changes]").forEach(function (form) {
    var status = form.querySelector("[data-unsaved]");
    if (!status) { return; }
    var initial = new FormData(form);
    form.addEventListener("change", function () {
      var now = new FormData(form);
      var changed = false;
      form.querySelectorAll("input[type=checkbox]").forEach(function (box) {
        var was = initial.getAll(box.name).indexOf(box.value) !== -1;
        var is = now.getAll(box.name).indexOf(box.value) !== -1;
        if (was !== is) { changed = true; }
      });
      status.textContent = changed ? "You have unsaved changes." : "";
    });
  });
  document.querySelectorAll("[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  var refresh = document.querySelector("[data-refresh-seconds]");
  if (refresh) {
    window.setTimeout(function () { window.location.reload(); },
                      1000 * parseFloat(refresh.getAttribute("data-refresh-seconds")));
  }
})();
