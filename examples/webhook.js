#!/usr/bin/env node
// A business webhook for callbot in Node.js, standard library only.
//
// Run:  WEBHOOK_SECRET=whsec_... node examples/webhook.js 9000
// It checks X-Callbot-Signature (HMAC-SHA256 over "<t>.<body>", 5-minute tolerance), then:
// - webhook-mode turns: books a table when the caller mentions one, hangs up on "bye", and
//   otherwise lets the bot speak the LLM's suggestion ({"action": "continue"}, no "say");
// - LLM-mode tool calls ("type": "tool_call"): answers check_availability with {"result": ...};
// - LLM-mode turn notices (they carry "reply"): logs them.
"use strict";
const http = require("node:http");
const crypto = require("node:crypto");

const SECRET = process.env.WEBHOOK_SECRET || "";

function verified(header, body) {
  const parts = Object.fromEntries(
    header.split(",").filter((p) => p.includes("=")).map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]),
  );
  const t = Number.parseInt(parts.t, 10);
  if (!Number.isFinite(t) || Math.abs(Date.now() / 1000 - t) > 300) return false;
  const want = crypto.createHmac("sha256", SECRET).update(`${t}.`).update(body).digest("hex");
  const got = Buffer.from(parts.v1 || "", "utf8");
  return got.length === want.length && crypto.timingSafeEqual(got, Buffer.from(want, "utf8"));
}

function answerFor(turn, key) {
  if (turn.type === "tool_call") {
    console.log(`tool ${turn.name}(${JSON.stringify(turn.arguments)}) (${key})`);
    return turn.name === "check_availability"
      ? { result: { available: true, times: ["18:30", "20:45"] } }
      : { error: `unknown tool ${turn.name}` };
  }
  if ("reply" in turn) {
    console.log(`turn ${turn.turn} (${key}): ${JSON.stringify(turn.user_text)} -> ${JSON.stringify(turn.reply)}`);
    return {};
  }
  const text = (turn.user_text || "").toLowerCase();
  console.log(`turn ${turn.turn} (${key}): ${JSON.stringify(turn.user_text)}; suggestion ${JSON.stringify(turn.llm_suggestion ?? null)}`);
  if (text.includes("bye")) return { say: "Thank you for calling. Goodbye!", action: "hangup" };
  if (text.includes("table")) return { say: "Certainly. I have booked that table for you. Is there anything else?" };
  if (turn.llm_suggestion) return { action: "continue" }; // speak the LLM's suggestion
  return { say: "I can book a table for you. For how many people, and when?" };
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    if (req.method !== "POST" || !verified(req.headers["x-callbot-signature"] || "", body)) {
      res.writeHead(401).end();
      return;
    }
    let turn;
    try {
      turn = JSON.parse(body.toString("utf8"));
    } catch {
      res.writeHead(400).end();
      return;
    }
    const out = JSON.stringify(answerFor(turn, req.headers["idempotency-key"]));
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(out) }).end(out);
  });
});

const port = Number.parseInt(process.argv[2] || "9000", 10);
server.listen(port, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));
