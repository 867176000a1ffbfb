//! The simulator's REST API: `AvailablePhoneNumbers`, `IncomingPhoneNumbers` and `Calls` of API
//! 2010-04-01. Requests are checked like Twilio checks them — basic auth against the account,
//! the account sid in the path, form content type, known PascalCase parameters only, required
//! parameters present — and answered in Twilio's JSON shapes, errors included.

use crate::carrier::{Answer, Control, Script};
use crate::{Fault, Op, OwnedNumber, Sim, lock, rfc2822_now};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

/// Twilio's error answer.
#[derive(Debug)]
pub struct TwilioError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl TwilioError {
    fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        TwilioError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code,
            message: message.into(),
        }
    }
}

impl From<Fault> for TwilioError {
    fn from(f: Fault) -> Self {
        TwilioError::new(f.status, f.code, "injected failure")
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult = Result<Response, TwilioError>;

/// The REST API, to be served at the root of the simulator's base URL.
pub fn router(sim: Sim) -> Router {
    let account = Router::new()
        .route(
            "/AvailablePhoneNumbers/{country}/{kind}",
            get(search_numbers),
        )
        .route(
            "/IncomingPhoneNumbers.json",
            get(list_numbers).post(buy_number),
        )
        .route(
            "/IncomingPhoneNumbers/{file}",
            post(update_number).delete(release_number),
        )
        .route("/Calls.json", post(create_call))
        .route("/Calls/{file}", get(fetch_call).post(update_call))
        .fallback(|| async { TwilioError::new(404, 20404, "The requested resource was not found") })
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            authenticate,
        ))
        .with_state(sim);
    Router::new().nest("/2010-04-01/Accounts/{account}", account)
}

/// Basic auth with the account sid and auth token, or an API key of the account; the path's
/// account must be the caller's.
async fn authenticate(State(sim): State<Sim>, req: Request, next: Next) -> Response {
    let unauthorized = || TwilioError::new(401, 20003, "Authenticate").into_response();
    let Some(creds) = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return unauthorized();
    };
    let Some((user, password)) = creds.split_once(':') else {
        return unauthorized();
    };
    let account_creds = user == sim.0.account_sid && password == sim.0.auth_token;
    let api_key = lock(&sim.0.api_keys)
        .iter()
        .any(|(k, secret)| k == user && secret == password);
    if !account_creds && !api_key {
        return unauthorized();
    }
    // The account segment itself is checked by each handler (`account_ok`).
    lock(&sim.0.log).push(format!("{} {}", req.method(), req.uri().path()));
    next.run(req).await
}

fn account_ok(sim: &Sim, account: &str) -> Result<(), TwilioError> {
    if account == sim.0.account_sid {
        Ok(())
    } else {
        Err(TwilioError::new(
            403,
            20003,
            "The account in the URL does not match the credentials",
        ))
    }
}

/// A form body: content type checked, parameters parsed, unknown names refused.
fn form(
    headers: &HeaderMap,
    body: &Bytes,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, TwilioError> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some("application/x-www-form-urlencoded") {
        return Err(TwilioError::new(
            400,
            20001,
            format!("Content-Type must be application/x-www-form-urlencoded, got {ct:?}"),
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| TwilioError::new(400, 20001, format!("Malformed form body: {e}")))?;
    for (k, _) in &pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(TwilioError::new(
                400,
                20001,
                format!("Unknown parameter: {k}"),
            ));
        }
    }
    Ok(pairs)
}

fn one<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn json_file(file: &str) -> Result<&str, TwilioError> {
    file.strip_suffix(".json")
        .ok_or_else(|| TwilioError::new(404, 20404, "The requested resource was not found"))
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn number_json(sim: &Sim, n: &OwnedNumber) -> Value {
    json!({
        "sid": n.sid,
        "account_sid": sim.0.account_sid,
        "friendly_name": n.friendly_name,
        "phone_number": n.phone_number,
        "voice_url": n.voice_url,
        "voice_method": n.voice_method,
        "status_callback": n.status_callback,
        "status_callback_method": n.status_callback_method,
        "capabilities": {"voice": true, "SMS": true, "MMS": true, "fax": false},
        "status": "in-use",
        "api_version": "2010-04-01",
        "date_created": n.date_created,
        "date_updated": n.date_created,
        "uri": format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers/{}.json", sim.0.account_sid, n.sid),
    })
}

/// Simulated numbers `+1 <area> 555 dddd`, skipping owned ones.
fn available(sim: &Sim, area: &str, count: usize) -> Vec<String> {
    let owned: std::collections::HashSet<String> = lock(&sim.0.numbers)
        .values()
        .map(|n| n.phone_number.clone())
        .collect();
    (100..10_000)
        .map(|i| format!("+1{area}555{i:04}"))
        .filter(|p| !owned.contains(p))
        .take(count)
        .collect()
}

/// Whether `phone` is a simulated number nobody owns.
fn is_available(sim: &Sim, phone: &str) -> bool {
    let shape = phone.len() == 12
        && phone.starts_with("+1")
        && phone.get(5..8) == Some("555")
        && phone[2..].bytes().all(|b| b.is_ascii_digit());
    shape
        && !lock(&sim.0.numbers)
            .values()
            .any(|n| n.phone_number == phone)
}

const SEARCH_PARAMS: &[&str] = &[
    "AreaCode",
    "Contains",
    "VoiceEnabled",
    "SmsEnabled",
    "MmsEnabled",
    "FaxEnabled",
    "InRegion",
    "InPostalCode",
    "InLocality",
    "PageSize",
    "Page",
    "ExcludeAllAddressRequired",
    "Beta",
];

async fn search_numbers(
    State(sim): State<Sim>,
    Path((account, country, kind)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    account_ok(&sim, &account)?;
    if kind != "Local.json" {
        return Err(TwilioError::new(
            404,
            20404,
            "Only Local numbers are simulated",
        ));
    }
    if let Some((k, _)) = query
        .iter()
        .find(|(k, _)| !SEARCH_PARAMS.contains(&k.as_str()))
    {
        return Err(TwilioError::new(
            400,
            20001,
            format!("Unknown parameter: {k}"),
        ));
    }
    if let Some(f) = sim.take_fault(Op::Search) {
        return Err(f.into());
    }
    let area = one(&query, "AreaCode").unwrap_or("555");
    if !(area.len() == 3 && area.bytes().all(|b| b.is_ascii_digit())) {
        return Err(TwilioError::new(
            400,
            21452,
            format!("AreaCode {area:?} is not valid"),
        ));
    }
    let page_size = one(&query, "PageSize")
        .and_then(|p| p.parse().ok())
        .unwrap_or(50usize);
    // Area code 000 has no numbers, like an exhausted area in real life.
    let numbers = if matches!(country.as_str(), "US" | "CA") && area != "000" {
        available(&sim, area, page_size.min(1000))
    } else {
        Vec::new()
    };
    let items: Vec<Value> = numbers
        .iter()
        .map(|p| {
            json!({"friendly_name": p, "phone_number": p, "lata": null, "locality": "Simulated",
                   "rate_center": null, "latitude": null, "longitude": null, "region": "SIM",
                   "postal_code": null, "iso_country": country, "address_requirements": "none",
                   "beta": false, "capabilities": {"voice": true, "SMS": true, "MMS": true, "fax": false}})
        })
        .collect();
    Ok(axum::Json(json!({
        "available_phone_numbers": items,
        "uri": format!("/2010-04-01/Accounts/{account}/AvailablePhoneNumbers/{country}/Local.json"),
    }))
    .into_response())
}

const NUMBER_PARAMS: &[&str] = &[
    "PhoneNumber",
    "AreaCode",
    "FriendlyName",
    "VoiceUrl",
    "VoiceMethod",
    "VoiceFallbackUrl",
    "VoiceFallbackMethod",
    "StatusCallback",
    "StatusCallbackMethod",
    "VoiceCallerIdLookup",
];

fn method_ok(v: Option<&str>) -> Result<String, TwilioError> {
    match v.unwrap_or("POST") {
        m @ ("GET" | "POST") => Ok(m.to_owned()),
        other => Err(TwilioError::new(
            400,
            21207,
            format!("Method {other:?} is not GET or POST"),
        )),
    }
}

fn url_ok(v: Option<&str>) -> Result<Option<String>, TwilioError> {
    match v {
        None => Ok(None),
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => Ok(Some(u.to_owned())),
        Some(u) => Err(TwilioError::new(
            400,
            21205,
            format!("Url {u:?} is not a valid URL"),
        )),
    }
}

async fn list_numbers(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    account_ok(&sim, &account)?;
    let want = one(&query, "PhoneNumber");
    let items: Vec<Value> = sim
        .numbers()
        .iter()
        .filter(|n| want.is_none_or(|w| n.phone_number == w))
        .map(|n| number_json(&sim, n))
        .collect();
    Ok(axum::Json(json!({
        "incoming_phone_numbers": items, "page": 0, "page_size": 50,
        "uri": format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json"),
        "first_page_uri": format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json?Page=0"),
        "next_page_uri": null, "previous_page_uri": null,
    }))
    .into_response())
}

async fn buy_number(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    account_ok(&sim, &account)?;
    let p = form(&headers, &body, NUMBER_PARAMS)?;
    if let Some(f) = sim.take_fault(Op::Buy) {
        return Err(f.into());
    }
    let phone = match (one(&p, "PhoneNumber"), one(&p, "AreaCode")) {
        (Some(n), _) => {
            if !is_available(&sim, n) {
                return Err(TwilioError::new(
                    400,
                    21422,
                    format!("PhoneNumber {n} is not available"),
                ));
            }
            n.to_owned()
        }
        (None, Some(area)) => available(&sim, area, 1)
            .pop()
            .ok_or_else(|| TwilioError::new(400, 21452, "No numbers found in that area code"))?,
        (None, None) => {
            return Err(TwilioError::new(
                400,
                21451,
                "PhoneNumber or AreaCode is required",
            ));
        }
    };
    let number = OwnedNumber {
        sid: format!("PN{}", uuid::Uuid::new_v4().simple()),
        phone_number: phone.clone(),
        friendly_name: one(&p, "FriendlyName").unwrap_or(&phone).to_owned(),
        voice_url: url_ok(one(&p, "VoiceUrl"))?,
        voice_method: method_ok(one(&p, "VoiceMethod"))?,
        status_callback: url_ok(one(&p, "StatusCallback"))?,
        status_callback_method: method_ok(one(&p, "StatusCallbackMethod"))?,
        date_created: rfc2822_now(),
    };
    {
        // Check and take under one lock: two buyers never get the same number.
        let mut numbers = lock(&sim.0.numbers);
        if numbers.values().any(|n| n.phone_number == phone) {
            return Err(TwilioError::new(
                400,
                21422,
                format!("PhoneNumber {phone} is not available"),
            ));
        }
        numbers.insert(number.sid.clone(), number.clone());
    }
    sim.save_numbers();
    Ok((StatusCode::CREATED, axum::Json(number_json(&sim, &number))).into_response())
}

async fn update_number(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    account_ok(&sim, &account)?;
    let sid = json_file(&file)?;
    let p = form(&headers, &body, NUMBER_PARAMS)?;
    let updated = {
        let mut numbers = lock(&sim.0.numbers);
        let n = numbers
            .get_mut(sid)
            .ok_or_else(|| TwilioError::new(404, 20404, "The requested resource was not found"))?;
        if let Some(u) = url_ok(one(&p, "VoiceUrl"))? {
            n.voice_url = Some(u);
        }
        if let Some(u) = url_ok(one(&p, "StatusCallback"))? {
            n.status_callback = Some(u);
        }
        if let Some(f) = one(&p, "FriendlyName") {
            n.friendly_name = f.to_owned();
        }
        n.clone()
    };
    sim.save_numbers();
    Ok(axum::Json(number_json(&sim, &updated)).into_response())
}

async fn release_number(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
) -> ApiResult {
    account_ok(&sim, &account)?;
    let sid = json_file(&file)?;
    if let Some(f) = sim.take_fault(Op::Release) {
        return Err(f.into());
    }
    let removed = lock(&sim.0.numbers).remove(sid);
    match removed {
        Some(_) => {
            sim.save_numbers();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        None => Err(TwilioError::new(
            404,
            20404,
            "The requested resource was not found",
        )),
    }
}

const CALL_PARAMS: &[&str] = &[
    "To",
    "From",
    "Url",
    "Method",
    "Twiml",
    "ApplicationSid",
    "StatusCallback",
    "StatusCallbackMethod",
    "StatusCallbackEvent",
    "Timeout",
    "Record",
    "MachineDetection",
    "MachineDetectionTimeout",
    "AsyncAmd",
    "AsyncAmdStatusCallback",
    "AsyncAmdStatusCallbackMethod",
    "TimeLimit",
    "SendDigits",
    "CallerId",
    "FallbackUrl",
    "FallbackMethod",
];

fn call_json(sim: &Sim, c: &crate::CallInfo) -> Value {
    json!({
        "sid": c.sid, "account_sid": sim.0.account_sid, "parent_call_sid": null,
        "to": c.to, "from": c.from, "to_formatted": c.to, "from_formatted": c.from,
        "status": c.status, "direction": c.direction, "start_time": c.start_time,
        "end_time": c.end_time, "duration": c.duration, "price": null, "price_unit": "USD",
        "answered_by": null, "api_version": "2010-04-01", "date_created": c.date_created,
        "date_updated": c.date_created,
        "uri": format!("/2010-04-01/Accounts/{}/Calls/{}.json", sim.0.account_sid, c.sid),
    })
}

async fn create_call(
    State(sim): State<Sim>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    account_ok(&sim, &account)?;
    let p = form(&headers, &body, CALL_PARAMS)?;
    let (Some(to), Some(from)) = (one(&p, "To"), one(&p, "From")) else {
        return Err(TwilioError::new(400, 21201, "To and From are required"));
    };
    if !is_e164(to) {
        return Err(TwilioError::new(
            400,
            21211,
            format!("Invalid 'To' Phone Number: {to}"),
        ));
    }
    if sim.number(from).is_none() {
        return Err(TwilioError::new(
            400,
            21210,
            format!("'From' phone number {from} is not a number of this account"),
        ));
    }
    let answer = match (url_ok(one(&p, "Url"))?, one(&p, "Twiml")) {
        (Some(u), _) => Answer::Url(u),
        (None, Some(t)) if t.len() <= 4000 => Answer::Twiml(t.to_owned()),
        (None, Some(_)) => {
            return Err(TwilioError::new(
                400,
                21232,
                "Twiml is longer than 4000 characters",
            ));
        }
        (None, None) => {
            return Err(TwilioError::new(
                400,
                21205,
                "Url, Twiml or ApplicationSid is required",
            ));
        }
    };
    method_ok(one(&p, "Method"))?;
    method_ok(one(&p, "StatusCallbackMethod"))?;
    let mut events: Vec<String> = p
        .iter()
        .filter(|(k, _)| k == "StatusCallbackEvent")
        .map(|(_, v)| v.clone())
        .collect();
    for e in &events {
        if !matches!(
            e.as_str(),
            "initiated" | "ringing" | "answered" | "completed"
        ) {
            return Err(TwilioError::new(
                400,
                21626,
                format!("Invalid StatusCallbackEvent {e:?}"),
            ));
        }
    }
    if events.is_empty() {
        events.push("completed".into());
    }
    let amd = machine_detection(&p)?;
    if let Some(f) = sim.take_fault(Op::CreateCall) {
        return Err(f.into());
    }
    let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let (ctx, events_rx) = sim.context(
        &sid,
        from,
        to,
        "outbound-api",
        url_ok(one(&p, "StatusCallback"))?,
        events,
    );
    let script = lock(&sim.0.callee_scripts)
        .get(to)
        .cloned()
        .unwrap_or(Script {
            steps: vec![crate::carrier::Step::Silence(
                std::time::Duration::from_secs(30),
            )],
            hangup_when_done: true,
        });
    let callee = sim.callee_kind(to);
    let timeout = match one(&p, "Timeout") {
        None => std::time::Duration::from_secs(60),
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|t| (5..=600).contains(t))
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| TwilioError::new(400, 21216, format!("Invalid Timeout {t:?}")))?,
    };
    // Answer after this response is on its way, like the real network would.
    let amd_ctx = ctx.clone();
    let handle = match callee.unanswered(timeout) {
        Some((status, ring)) => sim.start_unanswered(ctx, events_rx, status, ring),
        None => sim.start(ctx, events_rx, answer, script, "queued", 0),
    };
    if let (Some(req), None) = (amd, callee.unanswered(timeout)) {
        let (callee, live_sim, sid) = (sim.callee_kind(to), sim.clone(), handle.sid.clone());
        tokio::spawn(crate::amd::post_verdict(amd_ctx, callee, req, move || {
            live_sim
                .call(&sid)
                .is_some_and(|c| c.status == "in-progress")
        }));
    }
    let info = sim
        .call(&handle.sid)
        .ok_or_else(|| TwilioError::new(500, 20500, "call vanished"))?;
    let mut body = call_json(&sim, &info);
    body["status"] = json!("queued");
    body["start_time"] = Value::Null;
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// The asynchronous machine detection a create-call request asks for, checked as Twilio does.
fn machine_detection(p: &[(String, String)]) -> Result<Option<crate::amd::Request>, TwilioError> {
    let bad = |m: String| TwilioError::new(400, 21263, m);
    let Some(mode) = one(p, "MachineDetection") else {
        return Ok(None);
    };
    let message_end = match mode {
        "Enable" => false,
        "DetectMessageEnd" => true,
        other => return Err(bad(format!("Invalid MachineDetection {other:?}"))),
    };
    match one(p, "AsyncAmdStatusCallbackMethod") {
        None | Some("POST") => {}
        Some(m) => {
            return Err(bad(format!(
                "AsyncAmdStatusCallbackMethod must be POST, not {m:?}"
            )));
        }
    }
    match one(p, "AsyncAmd") {
        Some("true") => {}
        // Synchronous detection (the verdict on the answer URL) is not simulated.
        Some("false") | None => return Err(bad("only AsyncAmd=true is simulated".into())),
        Some(other) => return Err(bad(format!("Invalid AsyncAmd {other:?}"))),
    }
    let Some(callback) = url_ok(one(p, "AsyncAmdStatusCallback"))? else {
        // Twilio accepts it with warning 21262 and posts nothing.
        return Ok(None);
    };
    Ok(Some(crate::amd::Request {
        message_end,
        callback,
    }))
}

async fn fetch_call(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
) -> ApiResult {
    account_ok(&sim, &account)?;
    let sid = json_file(&file)?;
    let info = sim
        .call(sid)
        .ok_or_else(|| TwilioError::new(404, 20404, "The requested resource was not found"))?;
    Ok(axum::Json(call_json(&sim, &info)).into_response())
}

async fn update_call(
    State(sim): State<Sim>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    account_ok(&sim, &account)?;
    let sid = json_file(&file)?.to_owned();
    let p = form(
        &headers,
        &body,
        &[
            "Status",
            "Url",
            "Method",
            "Twiml",
            "StatusCallback",
            "StatusCallbackMethod",
            "FallbackUrl",
            "FallbackMethod",
            "TimeLimit",
        ],
    )?;
    if let Some(f) = sim.take_fault(Op::UpdateCall) {
        return Err(f.into());
    }
    let info = sim
        .call(&sid)
        .ok_or_else(|| TwilioError::new(404, 20404, "The requested resource was not found"))?;
    let cmd = match (one(&p, "Status"), one(&p, "Twiml")) {
        (Some("completed" | "canceled"), _) => Control::Hangup,
        (Some(other), _) => {
            return Err(TwilioError::new(
                400,
                21218,
                format!("Invalid Status {other:?}"),
            ));
        }
        (None, Some(t)) => Control::Redirect(t.to_owned()),
        (None, None) => {
            return Err(TwilioError::new(
                400,
                21201,
                "Status, Url or Twiml is required",
            ));
        }
    };
    if !sim.control(&sid, cmd) {
        return Err(TwilioError::new(
            400,
            21220,
            "Call is not in-progress. Cannot redirect.",
        ));
    }
    Ok(axum::Json(call_json(&sim, &info)).into_response())
}
