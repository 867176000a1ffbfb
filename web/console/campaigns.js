// Campaigns in the console: the list with progress, a form that uploads a CSV list, and a
// campaign's page (counts, outcomes, rows with their calls, pause/resume/cancel, results CSV).

import { KEY, h, act, toast, api, fmtTime, page, ApiError, reloadIn2s } from "/console/lib.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** A multipart POST (the API key in its header, as every request). */
async function upload(path, form) {
  const r = await fetch(path, { method: "POST", headers: { "X-API-Key": sessionStorage.getItem(KEY) || "" }, body: form });
  const json = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

function progress(c) {
  const finished = c.counts.done + c.counts.cancelled;
  return h("span", { class: "progress" },
    h("progress", { max: c.rows, value: finished, "aria-label": `${finished} of ${c.rows} rows finished` }),
    ` ${finished} / ${c.rows}`);
}

const outcomes = (c) => Object.entries(c.outcomes).map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`).join(" · ");

function newCampaignForm(bots) {
  const err = h("p", { class: "error", role: "alert" });
  const bot = h("select", { id: "c-bot", name: "bot_id", required: true },
    bots.map((b) => h("option", { value: b.id, text: `${b.number} · ${b.goal.slice(0, 30)}` })));
  const name = h("input", { id: "c-name", name: "name", maxlength: 100 });
  const conc = h("input", { id: "c-conc", name: "max_concurrency", type: "number", min: 1, max: 100, value: 5 });
  const start = h("input", { id: "c-start", name: "start", value: "09:00", pattern: "[0-2][0-9]:[0-5][0-9]" });
  const end = h("input", { id: "c-end", name: "end", value: "20:00", pattern: "[0-2][0-9]:[0-5][0-9]" });
  const days = DAYS.map((d) => h("input", { type: "checkbox", id: `c-day-${d}`, value: d, checked: true }));
  const file = h("input", { id: "c-rows", name: "rows", type: "file", accept: ".csv,text/csv", required: true });
  return h("form", { class: "grid", onsubmit: (e) => act(async () => {
    e.preventDefault();
    err.textContent = "";
    const form = new FormData();
    form.set("bot_id", bot.value);
    if (name.value.trim()) form.set("name", name.value.trim());
    form.set("max_concurrency", conc.value);
    form.set("window", JSON.stringify({ days: days.filter((d) => d.checked).map((d) => d.value), start: start.value, end: end.value }));
    form.set("rows", file.files[0]);
    try {
      const c = await upload("/campaigns", form);
      location.hash = `#/campaigns/${c.id}`;
    } catch (ex) {
      err.textContent = ex.body && ex.body.field ? `${ex.message}` : ex.message;
    }
  }) },
  h("label", { for: "c-bot" }, "Bot", bot), h("label", { for: "c-name" }, "Name", name),
  h("label", { for: "c-rows" }, "List (CSV: a “to” column, one column per variable)", file),
  h("label", { for: "c-conc" }, "Calls at once", conc),
  h("fieldset", {}, h("legend", { text: "Calling window (the bot's time zone)" }),
    h("label", { for: "c-start" }, "From", start), h("label", { for: "c-end" }, "Until", end),
    h("div", { class: "row" }, days.map((d) => h("label", { for: d.id }, d, ` ${d.value}`)))),
  h("button", { type: "submit", text: "Start campaign" }), err);
}

export async function campaigns() {
  const [list, botList] = await Promise.all([api("GET", "/campaigns"), api("GET", "/bots")]);
  const rows = list.campaigns.map((c) => h("tr", {},
    h("td", {}, h("a", { href: `#/campaigns/${c.id}`, text: c.name })), h("td", { text: c.status }),
    h("td", {}, progress(c)), h("td", { class: "wide", text: outcomes(c) }), h("td", { class: "wide", text: fmtTime(c.created_at) })));
  page("Campaigns",
    rows.length ? h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "Status", "Progress"].map((t) => h("th", { text: t })),
        h("th", { class: "wide", text: "Outcomes" }), h("th", { class: "wide", text: "Created" }))),
      h("tbody", {}, rows))) : h("p", { class: "muted", text: "No campaigns yet." }),
    h("h2", { text: "New campaign" }),
    (botList.bots || botList).length ? newCampaignForm(botList.bots || botList) : h("p", { class: "muted", text: "Create a bot first." }));
}

async function downloadResults(c) {
  const r = await fetch(`/campaigns/${c.id}/results.csv`, { headers: { "X-API-Key": sessionStorage.getItem(KEY) || "" } });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  const url = URL.createObjectURL(await r.blob());
  const a = h("a", { href: url, download: `${c.id}-results.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export async function campaignPage(id) {
  const [c, rows] = await Promise.all([api("GET", `/campaigns/${id}`), api("GET", `/campaigns/${id}/rows?limit=500`)]);
  const move = (action) => h("button", { type: "button", id: `c-${action}`, text: action[0].toUpperCase() + action.slice(1), onclick: () => act(async () => {
    await api("POST", `/campaigns/${id}/${action}`);
    toast(`Campaign ${action === "cancel" ? "cancelled" : action + "d"}.`);
    await campaignPage(id);
  }) });
  const actions = { running: ["pause", "cancel"], paused: ["resume", "cancel"] }[c.status] || [];
  const table = h("table", {},
    h("thead", {}, h("tr", {}, ["#", "To", "State", "Outcome", "Calls"].map((t) => h("th", { text: t })))),
    h("tbody", {}, rows.rows.map((r) => h("tr", {},
      h("td", { text: String(r.index) }), h("td", { text: r.to }), h("td", { text: r.state }),
      h("td", { text: (r.outcome || "").replaceAll("_", " ") }),
      h("td", {}, r.attempts.map((a, i) => a.call_sid
        ? h("a", { href: `#/calls/${a.call_sid}`, text: `${i + 1}: ${(a.outcome || "in progress").replaceAll("_", " ")} ` })
        : h("span", { text: `${i + 1}: placing ` })))))));
  page(c.name,
    h("p", { class: "muted", text: `${c.status} · ${c.window.days.join(" ")} ${c.window.start}-${c.window.end} · at most ${c.max_concurrency} at once · created ${fmtTime(c.created_at)}` }),
    h("p", {}, progress(c)),
    h("p", { class: "counts", text: Object.entries(c.counts).map(([k, v]) => `${k} ${v}`).join(" · ") }),
    c.rows && Object.keys(c.outcomes).length ? h("p", { class: "outcomes", text: `Outcomes: ${outcomes(c)}` }) : null,
    h("p", { class: "row" }, actions.map(move),
      h("button", { type: "button", text: "Download results (CSV)", onclick: () => act(() => downloadResults(c)) })),
    h("div", { class: "scroll" }, table),
    rows.next_after != null ? h("p", { class: "muted", text: "First 500 rows shown; the results CSV has them all." }) : null);
  if (c.status === "running" || c.counts.dialling + c.counts.calling > 0) {
    reloadIn2s(`#/campaigns/${id}`, () => campaignPage(id).catch((ex) => toast(ex.message)));
  }
}
