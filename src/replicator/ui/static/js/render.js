// Generic views of recorded data: any object as a key/value table, any list of objects as a
// table, a unified diff with its lines coloured, a section panel with a CSV export.
// Records come from many versions of replicator, so nothing here assumes a field exists.

import { h, flatten, fmtValue, toCSV, download } from "./util.js";

const LONG_TABLE = 40; // rows; longer key/value tables start folded

export function panel(id, title, ...children) {
  return h("section", { class: "panel", id, "data-section": id }, h("h2", {}, title), ...children);
}

export function isEmpty(value) {
  if (value === null || value === undefined || value === "") return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === "object") return Object.keys(value).length === 0;
  return false;
}

export function nothing(text = "Not recorded for this run.") {
  return h("p", { class: "muted" }, text);
}

// Nested objects become dotted keys; with ``fold``, a top-level entry with more than LONG_TABLE
// rows (the package list of an environment) is folded into one row of its own.
export function kvTable(value, { fold = true, csvName = null } = {}) {
  if (isEmpty(value)) return nothing();
  const rows = flatten(value);
  const body = [];
  const entries = value && typeof value === "object" && !Array.isArray(value) ? Object.entries(value) : [];
  for (const [top, inner] of entries) {
    const innerRows = flatten(inner, top);
    if (fold && innerRows.length > LONG_TABLE) {
      body.push(h("tr", {}, h("th", {}, top), h("td", {}, lazyDetails(`${innerRows.length} entries`, () => kvTable(inner, { fold: false })))));
    } else {
      body.push(innerRows.map(([key, v]) => h("tr", {}, h("th", {}, key), h("td", {}, cellValue(v)))));
    }
  }
  const table = h("table", { class: "kv" }, h("tbody", {}, body));
  const tools = csvName ? csvButton(csvName, ["key", "value"], rows) : null;
  return h("div", {}, tools, table);
}

// A folded block whose content is built when first opened (an environment lists ~1,700 packages).
export function lazyDetails(summary, build) {
  const details = h("details", {}, h("summary", {}, summary));
  details.addEventListener("toggle", () => {
    if (details.open && details.childElementCount === 1) details.append(build());
  });
  return details;
}

function cellValue(v) {
  if (Array.isArray(v)) {
    if (v.length && v.every((x) => x && typeof x === "object" && !Array.isArray(x))) return listTable(v);
    return v.map(fmtValue).join(", ");
  }
  return fmtValue(v);
}

export function listTable(items, { columns = null, csvName = null } = {}) {
  if (isEmpty(items)) return nothing();
  if (!Array.isArray(items)) return kvTable(items);
  const objects = items.map((item) => (item && typeof item === "object" && !Array.isArray(item) ? item : { value: item }));
  const keys = columns || [...new Set(objects.flatMap((o) => Object.keys(o)))];
  const table = h("table", { class: "list" },
    h("thead", {}, h("tr", {}, keys.map((k) => h("th", {}, k)))),
    h("tbody", {}, objects.map((o) =>
      h("tr", {}, keys.map((k) => h("td", { class: typeof o[k] === "number" ? "num" : null }, cellValue(o[k])))))));
  if (!csvName) return table;
  return h("div", {}, csvButton(csvName, keys, objects.map((o) => keys.map((k) => o[k]))), table);
}

export function csvButton(filename, header, rows) {
  return h("div", { class: "toolbar" },
    h("button", { type: "button", class: "csv", onclick: () => download(filename, toCSV(header, rows)) }, "Export CSV"));
}

const MAX_PATCH_LINES = 5000;

// A unified diff, each line coloured by its kind; very long patches are cut with a note.
export function patchView(text) {
  if (!text) return nothing("No patch: the working tree matched the commit.");
  const lines = text.split("\n");
  const shown = lines.slice(0, MAX_PATCH_LINES).map((line) => {
    let cls = "ctx";
    if (line.startsWith("diff ") || line.startsWith("+++") || line.startsWith("---") || line.startsWith("index ")) cls = "meta";
    else if (line.startsWith("@@")) cls = "hunk";
    else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    return h("span", { class: cls }, line || " ");
  });
  const more = lines.length > MAX_PATCH_LINES ? nothing(`${lines.length - MAX_PATCH_LINES} more lines not shown.`) : null;
  return h("div", {}, h("pre", { class: "block patch" }, shown), more);
}
