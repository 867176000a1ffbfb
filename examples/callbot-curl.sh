#!/usr/bin/env bash
# callbot API from the shell. Generated from /openapi.json by `callbot devkit curl`; do not edit.
# Usage: source examples/callbot-curl.sh; CALLBOT_API_KEY=cb_... callbot_list_bots
#   Path parameters come first, in order; then, for requests with a body, the JSON body
#   (default: the example shown); for others, an optional query string ("status=completed").
CALLBOT_URL="${CALLBOT_URL:-http://127.0.0.1:8080}"

# GET /bots — List the tenant's bots, newest first, with today's call counts.
callbot_list_bots() {
  curl -sS -X GET "$CALLBOT_URL/bots${1:+?$1}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /bots — Create a bot and give it a phone number.
callbot_create_bot() {
  local example='{"context":"Open 5PM-10PM","goal":"Take table reservations for Bella Vista","voice":"local:en-us","webhook":"https://example.com/callbot"}'
  curl -sS -X POST "$CALLBOT_URL/bots" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}" -H 'Content-Type: application/json' --data "${1:-$example}"
}

# GET /bots/{id} — Show one bot.
callbot_get_bot() {
  curl -sS -X GET "$CALLBOT_URL/bots/${1:?id}${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# PATCH /bots/{id} — Change a bot's goal, webhook, context, voice, first message or status.
callbot_update_bot() {
  local example='{}'
  curl -sS -X PATCH "$CALLBOT_URL/bots/${1:?id}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}" -H 'Content-Type: application/json' --data "${2:-$example}"
}

# DELETE /bots/{id} — Delete a bot and release its number.
callbot_delete_bot() {
  curl -sS -X DELETE "$CALLBOT_URL/bots/${1:?id}${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# GET /bots/{id}/tests — A bot's test runs, newest first.
#   query: limit
callbot_list_test_runs() {
  curl -sS -X GET "$CALLBOT_URL/bots/${1:?id}/tests${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /bots/{id}/tests — Run test calls against a bot.
callbot_start_test_run() {
  local example='{"mode":"text","scenarios":[{"caller":["A table for four at seven, please.","Ann Miller. Thanks, bye."],"expect":{"max_latency_ms":4000,"never_says":["sorry for your loss"],"says":["four"]},"name":"books a table"}]}'
  curl -sS -X POST "$CALLBOT_URL/bots/${1:?id}/tests" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}" -H 'Content-Type: application/json' --data "${2:-$example}"
}

# GET /bots/{id}/tests/{run_id} — One test run, with each scenario's checks and transcript once finished.
callbot_get_test_run() {
  curl -sS -X GET "$CALLBOT_URL/bots/${1:?id}/tests/${2:?run_id}${3:+?$3}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# GET /call-status — Status of a call placed with `/outbound-call`.
#   query: callSid (required), user_id (required)
callbot_call_status() {
  curl -sS -X GET "$CALLBOT_URL/call-status${1:+?$1}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /call/kill/{id} — End a live call now (the carrier hangs up; the engine stores the last words and the recording).
callbot_kill_call() {
  curl -sS -X POST "$CALLBOT_URL/call/kill/${1:?id}${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# GET /call/lists — Calls of your tenant that are live now (ringing or in progress).
callbot_live_calls() {
  curl -sS -X GET "$CALLBOT_URL/call/lists${1:+?$1}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /call/tickets — Trade your API key for a single-use ticket to open a call or observer WebSocket.
callbot_create_ticket() {
  local example='{"purpose":"call"}'
  curl -sS -X POST "$CALLBOT_URL/call/tickets" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}" -H 'Content-Type: application/json' --data "${1:-$example}"
}

# GET /calls — List the tenant's calls, newest first.
#   query: bot_id, status, cursor, limit, date
callbot_list_calls() {
  curl -sS -X GET "$CALLBOT_URL/calls${1:+?$1}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# GET /calls/{sid} — Show one call with its turns, transcript and recording link.
callbot_get_call() {
  curl -sS -X GET "$CALLBOT_URL/calls/${1:?sid}${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# GET /calls/{sid}/recording — A call's recording (stereo WAV), through the signed link from `GET /calls/{sid}`.
#   query: expires (required), sig (required)
callbot_get_recording() {
  curl -sS -X GET "$CALLBOT_URL/calls/${1:?sid}/recording${2:+?$2}"
}

# GET /campaigns — List your campaigns, newest first.
callbot_list_campaigns() {
  curl -sS -X GET "$CALLBOT_URL/campaigns${1:+?$1}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /campaigns — Start a campaign.
callbot_create_campaign() {
  local example='{"bot_id":"bot_0193a5c4e1f27c3d8a9b0c1d2e3f4a5b","max_concurrency":10,"name":"December reminders","retry":{"no_answer":{"attempts":3,"delay_seconds":3600}},"rows":[{"to":"+15551230001","variables":{"name":"Ana","time":"7 PM"}}],"window":{"days":["mon","tue","wed","thu","fri"],"end":"17:00","start":"09:00"}}'
  curl -sS -X POST "$CALLBOT_URL/campaigns" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}" -H 'Content-Type: application/json' --data "${1:-$example}"
}

# GET /campaigns/{id} — Show a campaign: its settings, rows per state and finished rows per outcome.
callbot_get_campaign() {
  curl -sS -X GET "$CALLBOT_URL/campaigns/${1:?id}${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /campaigns/{id}/cancel — Cancel a campaign: rows still waiting are cancelled; calls in progress finish.
callbot_cancel_campaign() {
  curl -sS -X POST "$CALLBOT_URL/campaigns/${1:?id}/cancel${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /campaigns/{id}/pause — Pause a running campaign: nothing new is dialled; calls in progress finish.
callbot_pause_campaign() {
  curl -sS -X POST "$CALLBOT_URL/campaigns/${1:?id}/pause${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# GET /campaigns/{id}/results.csv — Download a campaign's results as CSV.
callbot_campaign_results() {
  curl -sS -X GET "$CALLBOT_URL/campaigns/${1:?id}/results.csv${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /campaigns/{id}/resume — Resume a paused campaign.
callbot_resume_campaign() {
  curl -sS -X POST "$CALLBOT_URL/campaigns/${1:?id}/resume${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# GET /campaigns/{id}/rows — List a campaign's rows with their attempts and call sids, in list order.
callbot_campaign_rows() {
  curl -sS -X GET "$CALLBOT_URL/campaigns/${1:?id}/rows${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /end-call — End a call placed with `/outbound-call`.
callbot_end_call() {
  local example='{"callSid":"CA0123456789abcdef0123456789abcdef","user_id":"customer-42"}'
  curl -sS -X POST "$CALLBOT_URL/end-call" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}" -H 'Content-Type: application/json' --data "${1:-$example}"
}

# GET /healthz — Liveness and the active backends. Does not need an API key.
callbot_healthz() {
  curl -sS -X GET "$CALLBOT_URL/healthz${1:+?$1}"
}

# GET /iceservers — The STUN/TURN servers for WebRTC calls (RTCIceServer shape, as RustPBX serves them).
callbot_ice_servers() {
  curl -sS -X GET "$CALLBOT_URL/iceservers${1:+?$1}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# GET /keys — List your API keys (ids and labels; the keys themselves are never shown again).
callbot_list_keys() {
  curl -sS -X GET "$CALLBOT_URL/keys${1:+?$1}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /keys — Create another API key for your tenant (to rotate one: create, deploy, revoke the old).
callbot_create_key() {
  local example='{"label":"ci"}'
  curl -sS -X POST "$CALLBOT_URL/keys" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}" -H 'Content-Type: application/json' --data "${1:-$example}"
}

# DELETE /keys/{id} — Revoke one of your API keys: requests with it fail from now on (the current key included).
callbot_revoke_key() {
  curl -sS -X DELETE "$CALLBOT_URL/keys/${1:?id}${2:+?$2}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

# POST /outbound-call — Place an outbound call.
callbot_outbound_call() {
  local example='{"first_message":"Hi, this is Bella Vista confirming your table.","number":"+15551234567","user_id":"customer-42"}'
  curl -sS -X POST "$CALLBOT_URL/outbound-call" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}" -H 'Content-Type: application/json' --data "${1:-$example}"
}

# POST /voice — Answer a call (Twilio's VoiceUrl).
#   query: bot_id
callbot_answer() {
  curl -sS -X POST "$CALLBOT_URL/voice${1:+?$1}"
}

# POST /voice/status — Call-progress callback (Twilio's StatusCallback).
callbot_status_callback() {
  curl -sS -X POST "$CALLBOT_URL/voice/status${1:+?$1}"
}

# GET /voices — What voices this deployment can speak.
callbot_list_voices() {
  curl -sS -X GET "$CALLBOT_URL/voices${1:+?$1}" -H "X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}"
}

