//! Twilio's answering-machine verdicts (`AsyncAmdStatusCallback`), posted to the stream service
//! because it holds the call's media: the signature is checked against the public URL, the
//! verdict is stored on the call record and handed to the live call, on this instance or, through
//! its internal address, on the instance that holds it (which checks the signature again: a
//! forwarded request proves itself the same way).

use crate::StreamState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use callbot_core::domain::{AnsweredBy, CallSid};
use callbot_core::settings::AMD_PATH;
use callbot_core::store::leases;
use callbot_core::twilio::signature;
use secrecy::ExposeSecret;
use std::time::Duration;

/// Marks a request one instance passed to another (never passed on again).
const FORWARDED: &str = "x-callbot-forwarded";

/// Why a callback was refused: its status and a word on it.
type Refusal = (StatusCode, String);

fn refuse(status: StatusCode, why: &str) -> Refusal {
    (status, why.to_owned())
}

/// The verdict of a signed `AsyncAmdStatusCallback` request: `(CallSid, AnsweredBy)`.
fn verified(
    state: &StreamState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(CallSid, AnsweredBy), Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !signature::is_form(content_type) {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Twilio callbacks are application/x-www-form-urlencoded",
        ));
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, &format!("form body: {e}")))?;
    // Twilio signed the public URL (the same on every instance), with the query as sent.
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("{}{query}", state.settings.amd_callback_url());
    let token = state.twilio.auth_token.expose_secret().as_bytes();
    let signed = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| signature::verify_form(token, &url, &params, sig));
    if !signed {
        tracing::warn!(%url, "refused a machine-detection callback with a bad X-Twilio-Signature");
        return Err(refuse(StatusCode::FORBIDDEN, "invalid X-Twilio-Signature"));
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let sid = get("CallSid").and_then(|s| CallSid::parse(s).ok());
    let answered = get("AnsweredBy").and_then(|a| AnsweredBy::parse(a).ok());
    match (sid, answered) {
        (Some(sid), Some(a)) => Ok((sid, a)),
        _ => Err(refuse(
            StatusCode::BAD_REQUEST,
            "CallSid and a known AnsweredBy are required",
        )),
    }
}

/// `POST /twilio/amd`.
pub async fn callback(
    State(state): State<StreamState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (sid, answered) = match verified(&state, &uri, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    tracing::info!(call_sid = %sid, answered_by = answered.as_str(), "machine detection");
    if let Err(e) = state.store.set_answered_by(&sid, answered).await {
        tracing::error!(call_sid = %sid, error = %e, "could not store the machine verdict");
        // Twilio retries a failed callback; the live call still hears it below.
    }
    if let Some(call) = state.engine.as_ref().and_then(|e| e.live.by_sid(&sid))
        && call.answered(answered).await
    {
        return StatusCode::NO_CONTENT.into_response();
    }
    if !headers.contains_key(FORWARDED) {
        forward(&state, &sid, &uri, &headers, body).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Passes the request to the instance that holds the call, if another one does.
async fn forward(state: &StreamState, sid: &CallSid, uri: &Uri, headers: &HeaderMap, body: Bytes) {
    let here = state.settings.instance_base();
    let holders = match state
        .store
        .lease_holders(&leases::route_scope(sid), leases::now_ms())
        .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(call_sid = %sid, error = %e, "could not look up the call's instance");
            return;
        }
    };
    let Some(holder) = holders.into_iter().find(|h| *h != here) else {
        return;
    };
    let Some(engine) = &state.engine else { return };
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let mut req = engine
        .http
        .post(format!("{holder}{AMD_PATH}{query}"))
        .header(FORWARDED, "1")
        .timeout(Duration::from_secs(5))
        .body(body);
    for name in [header::CONTENT_TYPE.as_str(), "x-twilio-signature"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v);
        }
    }
    if let Err(e) = req.send().await.and_then(|r| r.error_for_status()) {
        tracing::warn!(call_sid = %sid, %holder, error = %e, "could not pass the machine verdict on");
    }
}
