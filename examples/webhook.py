#!/usr/bin/env python3
"""A business webhook for callbot, standard library only.

Run:  WEBHOOK_SECRET=whsec_... python3 examples/webhook.py 9000
It checks X-Callbot-Signature (HMAC-SHA256 over "<t>.<body>", 5-minute tolerance), then:
- webhook-mode turns ("type": "turn"): books a table when the caller mentions one, hangs up on
  "bye", and otherwise lets the bot speak the LLM's suggestion ({"action": "continue"}, no "say");
- LLM-mode tool calls ("type": "tool_call"): answers check_availability with {"result": ...};
- LLM-mode turn notices (they carry "reply"): logs them.
"""
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("WEBHOOK_SECRET", "").encode()


def verified(header: str, body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > 300:
        return False
    want = hmac.new(SECRET, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts.get("v1", ""))


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not verified(self.headers.get("X-Callbot-Signature", ""), body):
            self.send_response(401)
            self.end_headers()
            return
        turn = json.loads(body)
        key = self.headers.get("Idempotency-Key")
        if turn.get("type") == "tool_call":
            print(f"tool {turn['name']}({turn['arguments']}) ({key})", flush=True)
            if turn["name"] == "check_availability":
                answer = {"result": {"available": True, "times": ["18:30", "20:45"]}}
            else:
                answer = {"error": f"unknown tool {turn['name']}"}
        elif "reply" in turn:
            print(f"turn {turn['turn']} ({key}): {turn['user_text']!r} -> {turn['reply']!r}", flush=True)
            answer = {}
        else:
            text = turn["user_text"].lower()
            print(f"turn {turn['turn']} ({key}): {turn['user_text']!r}; "
                  f"suggestion {turn.get('llm_suggestion')!r}", flush=True)
            if "bye" in text:
                answer = {"say": "Thank you for calling. Goodbye!", "action": "hangup"}
            elif "table" in text:
                answer = {"say": "Certainly. I have booked that table for you. Is there anything else?"}
            elif turn.get("llm_suggestion"):
                answer = {"action": "continue"}  # speak the LLM's suggestion
            else:
                answer = {"say": "I can book a table for you. For how many people, and when?"}
        out = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    HTTPServer(("127.0.0.1", port), Hook).serve_forever()
