// Test calls in the console: a bot's test runs (status, how many scenarios passed), a form that
// starts a run from scenarios written as JSON, and a run's page (each scenario's checks and
// transcript), refreshed while the run is under way.

import { h, act, api, fmtTime, page, reloadIn2s } from "/console/lib.js";

const EXAMPLE = JSON.stringify([
  { name: "greets and answers", caller: ["Hello, are you open tonight?", "Thanks, bye."],
    expect: { never_says: ["sorry for your loss"], max_latency_ms: 5000 } },
], null, 2);

const underway = (r) => r.status === "queued" || r.status === "running";

const summary = (r) => (underway(r)
  ? `${r.outcomes.length} / ${r.scenarios} scenarios run`
  : `${r.passed} / ${r.scenarios} passed`);

function newRunForm(botId) {
  const err = h("p", { class: "error", role: "alert" });
  const scenarios = h("textarea", { id: "t-scenarios", rows: 12, spellcheck: "false" });
  scenarios.value = EXAMPLE;
  const mode = h("select", { id: "t-mode" },
    h("option", { value: "text", text: "text (fast: the caller's lines as text)" }),
    h("option", { value: "phone", text: "phone (the caller's lines spoken and recognised)" }));
  return h("form", { class: "grid", onsubmit: (e) => act(async () => {
    e.preventDefault();
    err.textContent = "";
    let list;
    try { list = JSON.parse(scenarios.value); } catch (ex) { err.textContent = `Scenarios are not JSON: ${ex.message}`; return; }
    try {
      const run = await api("POST", `/bots/${botId}/tests`, { mode: mode.value, scenarios: list });
      location.hash = `#/tests/${botId}/${run.id}`;
    } catch (ex) {
      err.textContent = ex.message;
    }
  }) },
  h("label", { for: "t-scenarios" }, "Scenarios (JSON: name, caller lines or persona, expect)", scenarios),
  h("label", { for: "t-mode" }, "Mode", mode),
  h("button", { type: "submit", text: "Run tests" }), err);
}

export async function testRuns(botId) {
  const [bot, list] = await Promise.all([api("GET", `/bots/${botId}`), api("GET", `/bots/${botId}/tests`)]);
  const rows = list.runs.map((r) => h("tr", {},
    h("td", {}, h("a", { href: `#/tests/${botId}/${r.id}`, text: fmtTime(r.created_at) })),
    h("td", { class: `status-${r.status}`, text: r.status }), h("td", { text: summary(r) }),
    h("td", { class: "wide", text: r.mode || "text" })));
  page(`Test calls · ${bot.number}`,
    h("p", { class: "muted", text: bot.goal }),
    rows.length ? h("div", { class: "scroll" }, h("table", { id: "t-runs" },
      h("thead", {}, h("tr", {}, ["Started", "Status", "Scenarios"].map((t) => h("th", { text: t })),
        h("th", { class: "wide", text: "Mode" }))),
      h("tbody", {}, rows))) : h("p", { class: "muted", text: "No test runs yet." }),
    h("h2", { text: "New test run" }), newRunForm(botId));
  if (list.runs.some(underway)) reloadIn2s(`#/tests/${botId}`, () => testRuns(botId).catch(() => {}));
}

function outcomeView(o) {
  const checks = o.checks.map((c) => h("li", { class: c.passed ? "pass" : "fail", text: `${c.passed ? "✓" : "✗"} ${c.check}: ${c.detail}` }));
  const lines = o.transcript.map((l) => h("li", { class: l.role },
    h("strong", { text: `${l.role}: ` }), l.text,
    l.heard && l.heard !== l.text ? h("span", { class: "muted", text: ` (heard: ${l.heard})` }) : null,
    l.latency_ms != null ? h("span", { class: "muted", text: ` · ${l.latency_ms} ms` }) : null));
  return h("section", { class: "scenario" },
    h("h2", { text: `${o.passed ? "PASS" : "FAIL"} ${o.name}` }),
    h("p", { class: "muted" }, `${o.mode}`, o.call_sid ? [" · ", h("a", { href: `#/calls/${o.call_sid}`, text: "call record" })] : null),
    o.error ? h("p", { class: "error", text: o.error }) : null,
    checks.length ? h("ul", { class: "checks" }, checks) : null,
    lines.length ? h("ol", { class: "transcript" }, lines) : null);
}

export async function testRunPage(botId, runId) {
  const r = await api("GET", `/bots/${botId}/tests/${runId}`);
  page(`Test run ${summary(r)}`,
    h("p", { class: "muted", id: "t-status", text: `${r.status} · started ${fmtTime(r.created_at)}${r.finished_at ? ` · finished ${fmtTime(r.finished_at)}` : ""}` }),
    h("p", {}, h("a", { href: `#/tests/${botId}`, text: "All test runs of this bot" })),
    h("div", { id: "t-outcomes" }, r.outcomes.map(outcomeView)));
  if (underway(r)) reloadIn2s(`#/tests/${botId}/${runId}`, () => testRunPage(botId, runId).catch(() => {}));
}
