// The callbot console: a client of the public API (REST with the X-API-Key header, call sockets
// with single-use tickets). The key lives in this tab's sessionStorage only.

import { $, main, KEY, cleanup, h, svg, parseEvent, act, toast, api, fmtTime, page, reloadIn2s } from "/console/lib.js";
import { campaigns, campaignPage } from "/console/campaigns.js";
import { testRuns, testRunPage } from "/console/tests.js";

let config = { stream_base: location.origin.replace(/^http/, "ws") };
/** A new bot's webhook secret, shown once on the bots page until dismissed. */
let newSecret = null;

/** A single-use ticket and the socket URL it opens (`supervise` names the call it opens). */
async function socketUrl(path, purpose, params = {}) {
  const body = purpose === "supervise" ? { purpose, call_id: params.id } : { purpose };
  const t = await api("POST", "/call/tickets", body);
  const q = new URLSearchParams({ ...params, ticket: t.ticket });
  return `${config.stream_base}${path}?${q}`;
}

// ---------------------------------------------------------------- sign in

function signIn() {
  $("#nav").hidden = true;
  const err = h("p", { class: "error", role: "alert" });
  const key = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true });
  page("Sign in",
    h("form", { class: "grid", onsubmit: async (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY, key.value.trim());
      try {
        await api("GET", "/bots");
        location.hash = "#/bots";
      } catch (ex) {
        sessionStorage.removeItem(KEY);
        err.textContent = ex.status === 401 ? "That API key was refused." : ex.message;
      }
    } },
      h("label", { for: "key" }, "API key", key),
      h("p", { class: "muted", text: "Kept in this tab only; closing the tab forgets it." }),
      h("button", { type: "submit", text: "Sign in" }), err));
}

// ---------------------------------------------------------------- bots

const BOT_FIELDS = [
  ["goal", "Goal", "textarea"],
  ["webhook", "Webhook URL", "input"],
  ["context", "Context", "textarea"],
  ["voice", "Voice", "select"],
  ["first_message", "First message", "input"],
  ["mode", "Mode", "mode"],
];

async function botForm(bot) {
  const voices = await api("GET", "/voices").catch(() => ({ voices: [] }));
  const inputs = {};
  const errors = {};
  const fields = BOT_FIELDS.map(([name, label, kind]) => {
    const id = `bot-${name}`;
    let input;
    if (kind === "textarea") input = h("textarea", { id, name });
    else if (kind === "select") {
      input = h("select", { id, name },
        (voices.voices || []).filter((v) => v.configured).map((v) => {
          const value = v.name.includes(":") ? v.name : `${v.provider}:${v.name}`;
          return h("option", { value, text: `${value}${v.language ? ` (${v.language})` : ""}` });
        }));
    } else if (kind === "mode") {
      input = h("select", { id, name }, h("option", { value: "webhook", text: "webhook (the webhook decides, the LLM suggests)" }),
        h("option", { value: "llm", text: "llm (the model answers)" }));
    } else input = h("input", { id, name, type: name === "webhook" ? "url" : "text" });
    if (bot && bot[name] != null) input.value = bot[name];
    inputs[name] = input;
    errors[name] = h("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
    input.setAttribute("aria-describedby", `${id}-error`);
    return h("label", { for: id }, label, input, errors[name]);
  });
  const general = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "grid", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    for (const el of Object.values(errors)) el.textContent = "";
    general.textContent = "";
    const body = {};
    for (const [name, input] of Object.entries(inputs)) {
      const v = input.value.trim();
      if (v !== "" || bot) body[name] = v === "" ? null : v;
    }
    if (!bot) for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
    try {
      const saved = bot ? await api("PATCH", `/bots/${bot.id}`, body) : await api("POST", "/bots", body);
      if (!bot && saved.webhook_secret) newSecret = { number: saved.number, secret: saved.webhook_secret };
      location.hash = "#/bots";
    } catch (ex) {
      const field = ex.body.field || (ex.body.error || "").split(":")[0];
      if (errors[field]) {
        errors[field].textContent = ex.message;
        inputs[field].setAttribute("aria-invalid", "true");
        inputs[field].focus();
      } else general.textContent = ex.message;
    }
  } }, fields, h("div", { class: "row" }, h("button", { type: "submit", text: bot ? "Save" : "Create bot" }),
    h("a", { href: "#/bots", text: "Cancel" })), general);
  return form;
}

async function bots() {
  const list = await api("GET", "/bots");
  const rows = (list.bots || list).map((b) => h("tr", {},
    h("td", {}, h("a", { href: `#/bots/${b.id}`, text: b.goal.slice(0, 60) })),
    h("td", { text: b.number }),
    h("td", { text: b.status }),
    h("td", { class: "wide", text: b.voice }),
    h("td", { class: "wide", text: String(b.calls_today ?? "") }),
    h("td", {}, h("div", { class: "row" },
      h("a", { class: "button", href: `#/talk/${b.id}`, text: "Talk to this bot" }),
      h("a", { class: "button secondary", href: `#/tests/${b.id}`, text: "Test calls" }),
      h("button", { type: "button", class: "secondary", text: b.status === "paused" ? "Resume" : "Pause",
        onclick: () => act(async () => { await api("PATCH", `/bots/${b.id}`, { status: b.status === "paused" ? "active" : "paused" }); await bots(); }) }),
      h("button", { type: "button", class: "danger", text: "Delete", onclick: () => act(async () => {
        if (confirm(`Delete this bot and release ${b.number}?`)) { await api("DELETE", `/bots/${b.id}`); await bots(); }
      }) })))));
  let notice = null;
  if (newSecret) {
    const { number, secret } = newSecret;
    newSecret = null;
    notice = h("div", { class: "notice", role: "status" },
      h("p", {}, `Bot ${number} created. Its webhook signing secret is shown only now; keep it with your webhook:`),
      h("code", { text: secret }), " ",
      h("button", { type: "button", class: "secondary", text: "Dismiss", onclick: () => notice.remove() }));
  }
  page("Bots", notice,
    h("p", {}, h("a", { class: "button", href: "#/bots/new", text: "New bot" })),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Goal", "Number", "Status"].map((t) => h("th", { text: t })),
        h("th", { class: "wide", text: "Voice" }), h("th", { class: "wide", text: "Calls today" }), h("th", { text: "" }))),
      h("tbody", {}, rows))));
}

async function newBot() { page("New bot", await botForm(null)); }

async function editBot(id) {
  const bot = await api("GET", `/bots/${id}`);
  page("Edit bot", h("p", { class: "muted", text: `${bot.id} · ${bot.number}` }), await botForm(bot));
}

// ---------------------------------------------------------------- calls

async function calls(params) {
  const q = new URLSearchParams();
  for (const k of ["bot_id", "status", "date"]) if (params.get(k)) q.set(k, params.get(k));
  const [list, botList] = await Promise.all([api("GET", `/calls?${q}`), api("GET", "/bots")]);
  const botSel = h("select", { id: "f-bot", name: "bot_id" }, h("option", { value: "", text: "All bots" }),
    (botList.bots || botList).map((b) => h("option", { value: b.id, text: `${b.number} · ${b.goal.slice(0, 30)}` })));
  const statusSel = h("select", { id: "f-status", name: "status" }, h("option", { value: "", text: "Any status" }),
    ["in-progress", "completed", "queued", "ringing", "busy", "failed", "no-answer", "canceled"].map((s) => h("option", { value: s, text: s })));
  const date = h("input", { id: "f-date", name: "date", type: "date" });
  botSel.value = params.get("bot_id") || "";
  statusSel.value = params.get("status") || "";
  date.value = params.get("date") || "";
  const filters = h("form", { class: "row", onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (botSel.value) p.set("bot_id", botSel.value);
    if (statusSel.value) p.set("status", statusSel.value);
    if (date.value) p.set("date", date.value);
    location.hash = `#/calls?${p}`;
  } }, h("label", { for: "f-bot" }, "Bot", botSel), h("label", { for: "f-status" }, "Status", statusSel),
    h("label", { for: "f-date" }, "Date", date), h("button", { type: "submit", text: "Filter" }));
  const rows = list.calls.map((c) => h("tr", {},
    h("td", {}, h("a", { href: `#/calls/${c.sid}`, text: fmtTime(c.created_at) })),
    h("td", { text: c.channel }), h("td", { class: "wide", text: c.from }), h("td", { text: c.status }),
    h("td", { class: "wide", text: c.duration != null ? `${c.duration} s` : "" })));
  page("Calls", filters, h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Started", "Channel"].map((t) => h("th", { text: t })), h("th", { class: "wide", text: "From" }),
      h("th", { text: "Status" }), h("th", { class: "wide", text: "Duration" }))),
    h("tbody", {}, rows))), rows.length ? null : h("p", { class: "muted", text: "No calls match." }));
}

const STAGES = [
  ["endpoint", "Endpointing", "#8e99a4"],
  ["stt", "Recognition", "#0b63ce"],
  ["llm", "LLM", "#8a3ffc"],
  ["webhook", "Webhook", "#e8890c"],
  ["tts", "Synthesis", "#1e7b34"],
];

/** One turn's latency as a waterfall: stages one after the other from the end of the caller's speech. */
function waterfall(turns) {
  const rowH = 22, left = 70, width = 640, right = 30;
  const rows = turns.filter((t) => t.timings).map((t) => {
    const x = t.timings;
    const llm = x.llm ? (x.llm.ttft_ms ?? x.llm.total_ms ?? 0) : 0;
    return { turn: t.turn, segs: [["endpoint", -(x.endpoint_ms || 0), x.endpoint_ms || 0], ["stt", 0, x.stt_ms || 0],
      ["llm", x.stt_ms || 0, llm], ["webhook", (x.stt_ms || 0) + llm, x.webhook_ms || 0],
      ["tts", (x.stt_ms || 0) + llm + (x.webhook_ms || 0), x.tts_first_byte_ms || 0]],
      sent: x.first_frame_ms, heard: x.first_mark_ms };
  });
  const maxEnd = Math.max(1000, ...rows.map((r) => Math.max(r.heard || 0, r.sent || 0, ...r.segs.map(([, a, d]) => a + d))));
  const minStart = Math.min(0, ...rows.map((r) => r.segs[0][1]));
  const scale = (width - left - right) / (maxEnd - minStart);
  const X = (ms) => left + (ms - minStart) * scale;
  const out = svg("svg", { class: "waterfall", viewBox: `0 0 ${width} ${rows.length * rowH + 24}`, role: "img",
    "aria-label": "Latency per turn: endpointing, recognition, LLM, webhook, synthesis, first audio sent and heard" });
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    out.append(svg("text", { x: 4, y: y + 14 }, `turn ${r.turn}`));
    for (const [name, at, d] of r.segs) {
      if (!d) continue;
      const color = STAGES.find((s) => s[0] === name)[2];
      out.append(svg("rect", { x: X(at), y, width: Math.max(1, d * scale), height: rowH - 8, fill: color },
        svg("title", {}, `${name} ${d} ms`)));
    }
    for (const [ms, color, label] of [[r.sent, "#111", "first audio sent"], [r.heard, "#b3261e", "first audio heard"]]) {
      if (ms == null) continue;
      out.append(svg("line", { x1: X(ms), x2: X(ms), y1: y - 2, y2: y + rowH - 6, stroke: color, "stroke-width": 2 },
        svg("title", {}, `${label} ${ms} ms`)));
    }
  });
  const axisY = rows.length * rowH + 18;
  for (let ms = 0; ms <= maxEnd; ms += maxEnd > 4000 ? 1000 : 500) {
    out.append(svg("text", { x: X(ms), y: axisY, "text-anchor": "middle" }, `${ms}`));
  }
  return out;
}

/** What the model made of a call: summary, pass/fail, structured data, and what went wrong. */
function analysisView(a) {
  return h("div", { class: "analysis" },
    a.summary ? h("p", { class: "summary", text: a.summary }) : null,
    a.success ? h("p", { class: "success", text: `${a.success.passed ? "Passed" : "Failed"}: ${a.success.reason}` }) : null,
    a.structured_data ? h("pre", { class: "structured", text: JSON.stringify(a.structured_data, null, 2) }) : null,
    (a.errors || []).length ? h("ul", { class: "error" }, a.errors.map((e) => h("li", { text: e }))) : null);
}

async function callPage(sid) {
  const c = await api("GET", `/calls/${sid}`);
  const swatch = (color) => svg("svg", { width: 12, height: 12, "aria-hidden": "true" }, svg("rect", { width: 12, height: 12, fill: color }));
  const legend = h("div", { class: "legend" },
    [...STAGES.map(([, label, color]) => [label, color]), ["first audio sent", "#111"], ["first audio heard", "#b3261e"]]
      .map(([label, color]) => h("span", {}, swatch(color), ` ${label}`)));
  page(`Call ${c.sid}`,
    h("p", { class: "muted", text: `${c.channel} · ${c.direction} · ${c.from} → ${c.to} · ${c.status} · ${fmtTime(c.created_at)}` }),
    c.answered_by ? h("p", { class: "answered-by", text: `Answered by: ${c.answered_by.replaceAll("_", " ")}` }) : null,
    Object.keys(c.variables || {}).length
      ? h("p", { class: "variables", text: `Variables: ${Object.entries(c.variables).map(([k, v]) => `${k} = ${v}`).join(" · ")}` }) : null,
    c.analysis ? h("h2", { text: "Analysis" }) : null,
    c.analysis ? analysisView(c.analysis) : null,
    h("h2", { text: "Recording" }),
    c.recording_url ? h("audio", { controls: true, src: c.recording_url, preload: "metadata", "aria-label": "Call recording (caller left, bot right)" })
      : h("p", { class: "muted", text: "No recording yet." }),
    h("h2", { text: "Latency per turn (ms)" }), legend, waterfall(c.turns || []),
    h("h2", { text: "Transcript" }),
    h("ol", { class: "transcript" }, (c.transcript || []).map((l) => h("li", { class: l.role, text: `${l.role === "user" ? "caller" : "bot"}: ${l.text}` }))));
}

// ---------------------------------------------------------------- live calls

async function live() {
  const render = async () => {
    const list = await api("GET", "/call/lists");
    const rows = list.calls.map((c) => h("tr", {},
      h("td", {}, h("a", { href: `#/live/${c.id}`, text: c.id })), h("td", { text: c.call_type }),
      h("td", { text: c.option.caller }), h("td", { text: fmtTime(c.created_at) })));
    page("Live calls", rows.length ? h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Call", "Channel", "Caller", "Started"].map((t) => h("th", { text: t })))), h("tbody", {}, rows)))
      : h("p", { class: "muted", text: "No live calls." }));
    reloadIn2s("#/live", render);
  };
  await render();
}

/** A transcript that shows partial words until the final ones arrive. */
function liveTranscript() {
  const list = h("ol", { class: "transcript", "aria-live": "polite" });
  let partial = null;
  return {
    el: list,
    event(e) {
      if (e.event === "asrDelta") {
        if (!partial) { partial = h("li", { class: "user partial" }); list.append(partial); }
        partial.textContent = `caller: ${e.text}`;
      } else if (e.event === "asrFinal") {
        if (partial) partial.remove();
        partial = null;
        list.append(h("li", { class: "user", text: `caller: ${e.text}` }));
      } else if (e.event === "transcription" && e.role === "bot") {
        list.append(h("li", { class: "bot", text: `bot: ${e.text}` }));
      }
    },
  };
}

function speakingBadge() {
  const el = h("span", { class: "speaking", "data-who": "nobody", text: "nobody is speaking" });
  return {
    el,
    event(e) {
      const who = e.event === "speaking" ? "caller" : e.event === "trackStart" ? "bot"
        : ["silence", "trackEnd", "interruption"].includes(e.event) ? "nobody" : null;
      if (who) { el.dataset.who = who; el.textContent = who === "nobody" ? "nobody is speaking" : `${who} is speaking`; }
    },
  };
}

async function livePage(sid) {
  const transcript = liveTranscript();
  const badge = speakingBadge();
  const status = h("p", { class: "muted", text: "connecting…" });
  const line = h("input", { id: "say", name: "say", type: "text", placeholder: "A line to speak into the call" });
  let ws = null;
  const send = (cmd) => ws && ws.readyState === 1 && ws.send(JSON.stringify(cmd));
  page(`Live call ${sid}`, status, h("p", {}, badge.el),
    h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); if (line.value.trim()) send({ command: "tts", text: line.value.trim() }); line.value = ""; } },
      h("label", { for: "say" }, "Speak into the call", line), h("button", { type: "submit", text: "Say" }),
      h("button", { type: "button", class: "secondary", text: "Interrupt the bot", onclick: () => send({ command: "interrupt" }) }),
      h("button", { type: "button", class: "danger", text: "Kill", onclick: async () => {
        try { await api("POST", `/call/kill/${sid}`); toast("Call ended"); } catch (ex) { toast(ex.message); }
      } })),
    h("h2", { text: "Transcript" }), transcript.el);
  // What was said before this page opened, then the rest as it is spoken.
  const past = await api("GET", `/calls/${sid}`).catch(() => null);
  for (const l of (past && past.transcript) || []) {
    transcript.el.append(h("li", { class: l.role, text: `${l.role === "user" ? "caller" : "bot"}: ${l.text}` }));
  }
  ws = new WebSocket(await socketUrl("/call", "supervise", { id: sid }));
  ws.onopen = () => { status.textContent = "watching"; };
  // What the page is watching (read by the browser test and by anyone debugging the page).
  window.callbotLive = { socket: ws, status };
  ws.onmessage = (m) => {
    const e = parseEvent(m);
    if (!e) return;
    transcript.event(e);
    badge.event(e);
    if (e.event === "hangup") status.textContent = `ended (${e.reason})`;
    if (e.event === "error") toast(e.error);
  };
  ws.onclose = () => { if (status.textContent === "watching") status.textContent = "ended"; };
  cleanup.push(() => ws.close());
}

// ---------------------------------------------------------------- talk to a bot (WebRTC)

/** Figures the page measures (read by the browser tests and the round-trip benchmark). */
window.callbotStats = { turns: [], state: "idle", callSid: null, events: [] };

async function talk(botId) {
  const bot = await api("GET", `/bots/${botId}`);
  const transcript = liveTranscript();
  const badge = speakingBadge();
  const status = h("p", { class: "muted", id: "talk-status", text: "asking for the microphone…" });
  const audio = h("audio", { autoplay: true, "aria-label": "The bot's voice" });
  const stats = (window.callbotStats = { turns: [], state: "starting", callSid: null, events: [] });
  let ws = null;
  const hangup = h("button", { type: "button", class: "danger", text: "Hang up", disabled: true,
    onclick: () => ws && ws.readyState === 1 && ws.send(JSON.stringify({ command: "hangup", initiator: "console" })) });
  page(`Talk to ${bot.number}`, h("p", { class: "muted", text: bot.goal }), status, h("p", {}, badge.el, " ", hangup), audio,
    h("h2", { text: "Transcript" }), transcript.el);
  let mic;
  try {
    mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (ex) {
    status.textContent = `No microphone: ${ex.message}`;
    return;
  }
  const iceServers = await api("GET", "/iceservers").catch(() => []);
  const pc = new RTCPeerConnection({ iceServers });
  for (const t of mic.getTracks()) pc.addTrack(t, mic);
  // The bot's audio: played, and watched for the moment it becomes audible (round-trip figure).
  let analyser = null, waitingSince = null;
  pc.ontrack = (ev) => {
    audio.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    const ctx = new AudioContext();
    analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    ctx.createMediaStreamSource(audio.srcObject).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    const poll = () => {
      if (stats.state === "ended") return;
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const v of buf) sum += v * v;
      const rms = Math.sqrt(sum / buf.length);
      if (waitingSince !== null && rms > 0.02) {
        stats.turns.push({ silence_at: waitingSince, audible_at: Date.now(), round_trip_ms: Date.now() - waitingSince });
        waitingSince = null;
      }
      requestAnimationFrame(poll);
    };
    poll();
  };
  cleanup.push(() => { pc.close(); for (const t of mic.getTracks()) t.stop(); if (ws) ws.close(); stats.state = "ended"; });
  await pc.setLocalDescription(await pc.createOffer());
  // Send the offer with every candidate gathered (no trickle needed on the server).
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && done());
    setTimeout(done, 3000);
  });
  ws = new WebSocket(await socketUrl("/call/webrtc", "call"));
  ws.onopen = () => ws.send(JSON.stringify({ command: "invite", option: { callee: bot.id, caller: "console", offer: pc.localDescription.sdp } }));
  ws.onmessage = async (m) => {
    const e = parseEvent(m);
    if (!e) return;
    stats.events.push(e);
    transcript.event(e);
    badge.event(e);
    if (e.event === "answer") {
      stats.callSid = e.callSid;
      await pc.setRemoteDescription({ type: "answer", sdp: e.sdp });
      status.textContent = `connected · call ${e.callSid}`;
      stats.state = "connected";
      hangup.disabled = false;
    } else if (e.event === "silence") {
      // The end of the user's speech (server clock: the same machine's in the benchmark).
      waitingSince = e.startTime || Date.now();
    } else if (e.event === "hangup") {
      status.textContent = `call ended (${e.reason})`;
      stats.state = "ended";
      hangup.disabled = true;
      pc.close();
      for (const t of mic.getTracks()) t.stop();
    } else if (e.event === "error") toast(e.error);
  };
  ws.onclose = () => { if (stats.state !== "ended") { stats.state = "ended"; status.textContent = "disconnected"; } };
}

// ---------------------------------------------------------------- routing

async function route() {
  const [path, query] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const parts = (path || "/bots").split("/").filter(Boolean);
  if (!sessionStorage.getItem(KEY) || parts[0] === "signin") return signIn();
  $("#nav").hidden = false;
  try {
    if (parts[0] === "bots" && parts[1] === "new") await newBot();
    else if (parts[0] === "bots" && parts[1]) await editBot(parts[1]);
    else if (parts[0] === "calls" && parts[1]) await callPage(parts[1]);
    else if (parts[0] === "calls") await calls(params);
    else if (parts[0] === "campaigns" && parts[1]) await campaignPage(parts[1]);
    else if (parts[0] === "campaigns") await campaigns();
    else if (parts[0] === "live" && parts[1]) await livePage(parts[1]);
    else if (parts[0] === "live") await live();
    else if (parts[0] === "talk" && parts[1]) await talk(parts[1]);
    else if (parts[0] === "tests" && parts[2]) await testRunPage(parts[1], parts[2]);
    else if (parts[0] === "tests" && parts[1]) await testRuns(parts[1]);
    else await bots();
  } catch (ex) {
    if (ex.status !== 401) page("Something went wrong", h("p", { class: "error", role: "alert", text: ex.message }));
  }
}

$("#signout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.hash = "#/signin"; });
window.addEventListener("hashchange", route);
fetch("/console/config.json").then((r) => r.json())
  .then((c) => { if (c.stream_base) config = c; }).catch(() => {}).finally(route);
