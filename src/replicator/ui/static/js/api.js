// Reading the server's JSON API. Every error the server sends is JSON {"error": "..."}; it is
// raised as ApiError with that text so that pages can show it as it was written.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export async function getJSON(path, params = {}) {
  const url = withParams(path, params);
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (err) {
    throw new ApiError(`The replicator ui server did not answer (${err.message}); is it still running?`, 0);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const text = body && body.error ? body.error : `${response.status} ${response.statusText} for ${path}`;
    throw new ApiError(text, response.status);
  }
  return body;
}

// Fetches a file the server makes (a report) and hands it to the browser as a download; a refusal
// is raised as ApiError with the server's reason instead of a failed download.
export async function fetchDownload(url, filename) {
  const response = await fetch(url);
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new ApiError(body && body.error ? body.error : `${response.status} ${response.statusText}`, response.status);
  }
  const blobUrl = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = blobUrl;
  link.download = filename;
  link.className = "hidden";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(blobUrl), 1000);
}

export function withParams(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    query.set(name, Array.isArray(value) ? value.join(",") : String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// The last path segment of the page's URL, decoded: /runs/<id> -> <id>.
export function pathTail() {
  const parts = location.pathname.split("/").filter(Boolean);
  return decodeURIComponent(parts[parts.length - 1] || "");
}

export function queryList(name) {
  const value = new URLSearchParams(location.search).get(name) || "";
  return value.split(",").map((s) => s.trim()).filter(Boolean);
}

export function runUrl(id) {
  return `/runs/${encodeURIComponent(id)}`;
}

export function experimentUrl(name) {
  return `/experiments/${encodeURIComponent(name)}`;
}
