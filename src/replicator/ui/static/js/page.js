// The frame every page shares: the header with its navigation, and one place to show a failure
// (the server's error text, never a stack trace) instead of a blank page.

import { h } from "./util.js";

export function showError(message, where = document.getElementById("main")) {
  where.prepend(h("div", { class: "error-box", role: "alert", "data-testid": "page-error" }, message));
}

// Runs the page's async setup and shows any failure on the page itself.
export function start(setup) {
  setup().catch((err) => {
    showError(err && err.message ? err.message : String(err));
    // Errors the API reported are handled; anything else is a bug worth a console entry.
    if (!(err && "status" in err)) console.error(err);
  });
}

export function setTitle(text) {
  document.title = `${text} · replicator`;
  const heading = document.getElementById("page-title");
  if (heading) heading.textContent = text;
}
