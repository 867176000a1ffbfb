"""Schemathesis hooks: sign every generated request to Twilio's webhooks (`/voice`,
`/voice/status`) the way Twilio does, with Twilio's own helper library (the reference our
signature code is cross-checked against in tests/twilio_signature_crosscheck.rs), so the fuzzer
reaches the handlers behind the signature check instead of only seeing 403s.

Loaded with SCHEMATHESIS_HOOKS=twilio_hooks (tests/api_description.rs puts this directory on
PYTHONPATH). CALLBOT_TEST_TWILIO_AUTH_TOKEN is the server's auth token and
CALLBOT_TEST_PUBLIC_BASE its public base URL (the URL Twilio signs).
"""

import os
from urllib.parse import parse_qsl

import requests
import schemathesis
from twilio.request_validator import RequestValidator

TWILIO_PATHS = ("/voice", "/voice/status")


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.path not in TWILIO_PATHS or case.method.upper() != "POST":
        return
    headers = dict(case.headers or {})
    if not any(k.lower() == "x-twilio-signature" for k in headers):
        # A case without the header tests that it is required: left unsigned.
        return
    base = os.environ["CALLBOT_TEST_PUBLIC_BASE"].rstrip("/")
    validator = RequestValidator(os.environ["CALLBOT_TEST_TWILIO_AUTH_TOKEN"])
    # The URL and body exactly as they will be sent (the same encoding as the real request).
    body = case.body if isinstance(case.body, dict) else None
    prepared = requests.Request(
        "POST", base + case.formatted_path, params=case.query or None, data=body
    ).prepare()
    raw = prepared.body or ""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    # A generated form has each field once.
    params = dict(parse_qsl(raw, keep_blank_values=True))
    signature = validator.compute_signature(prepared.url, params)
    for k in [k for k in headers if k.lower() == "x-twilio-signature"]:
        del headers[k]
    headers["X-Twilio-Signature"] = signature
    case.headers = headers


@schemathesis.hook
def after_call(context, case, response):
    """Notes each answer of a Twilio route, so the test can tell signed requests got through."""
    log = os.environ.get("CALLBOT_TEST_TWILIO_LOG")
    if log and case.path in TWILIO_PATHS:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{case.method.upper()} {case.path} {response.status_code}\n")
