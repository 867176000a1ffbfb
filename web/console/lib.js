// The console's building blocks: elements, the API client (X-API-Key from this tab's
// sessionStorage), notices, and pages.

export const $ = (sel, el = document) => el.querySelector(sel);
export const main = $("#main");
export const KEY = "callbot.key";
/** What the current page must undo when another page replaces it. */
export const cleanup = [];

/** Elements from a tag, attributes and children (text is escaped by the DOM). */
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
}

export const svg = (tag, attrs = {}, ...kids) => {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const kid of kids.flat()) el.append(kid);
  return el;
};

/** A socket message as an event, or null (and a notice) when it is not JSON. */
export function parseEvent(m) {
  try {
    const e = JSON.parse(m.data);
    if (e && typeof e === "object" && typeof e.event === "string") return e;
  } catch { /* shown below */ }
  toast("The call socket sent a message the console cannot read; it was skipped.");
  return null;
}

/** Runs an action of a button; its failure is shown, never swallowed. */
export async function act(f) {
  try { await f(); } catch (ex) { toast(ex.message || String(ex)); }
}

export function toast(msg) {
  const t = $("#toast");
  t.textContent = msg;
  t.hidden = false;
  setTimeout(() => { t.hidden = true; }, 4000);
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export async function api(method, path, body) {
  const headers = { "X-API-Key": sessionStorage.getItem(KEY) || "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (r.status === 401 && !location.hash.startsWith("#/signin")) {
    sessionStorage.removeItem(KEY);
    location.hash = "#/signin";
  }
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

/** Runs `render` again in 2 s if the page is still `hash` (and not left meanwhile). */
export function reloadIn2s(hash, render) {
  const timer = setTimeout(() => { if (location.hash === hash) render(); }, 2000);
  cleanup.push(() => clearTimeout(timer));
}

export const fmtTime = (s) => (s ? new Date(s).toLocaleString() : "");

export function page(title, ...kids) {
  for (const f of cleanup.splice(0)) f();
  main.replaceChildren(h("h1", { text: title }), ...kids.filter((k) => k !== null && k !== undefined));
  document.title = `${title} · callbot`;
  main.focus();
}
