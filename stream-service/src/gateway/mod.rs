//! The LLM gateway (RustPBX's `/llm/v1`): inference requests (`POST chat/completions`,
//! `completions`, `embeddings`, `moderations`; `GET models`, `models/{id}`) are forwarded to the
//! configured model server — the platform's provider key swapped in for the caller's callbot key,
//! which is never passed on — and the answer streams back as it arrives (Server-Sent Events are
//! not buffered). Nothing else is forwarded: the provider account is shared by every tenant, so
//! its files, batches, fine-tuning jobs and organisation endpoints are refused (403) before they
//! reach it. An optional allow-list (`CALLBOT_LLM_MODELS`) limits the models. Authenticated by
//! `X-API-Key` or `Authorization: Bearer <callbot key>`, so the OpenAI SDKs work with
//! `base_url=http://host/llm/v1`. Each tenant has a per-minute request limit held in the store (it
//! holds across instances); every forwarded request, and the token usage in its answer, is added
//! to the tenant's daily tally (`GET /llm/usage`), also when the client goes away mid-answer.
//! Errors use OpenAI's shape, `{"error": {"message", "type", "code"}}`, which the SDKs read.

use crate::StreamState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use callbot_core::domain::TenantId;
use callbot_core::store::{LlmUsage, RateDecision, Store};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::sync::Arc;

mod allow;
use allow::{Inference, inference, model_allowed, only_allowed};

/// Largest non-streamed answer inspected for its usage (it is passed on whole regardless).
const MAX_INSPECT: usize = 4 * 1024 * 1024;

pub fn routes() -> Router<StreamState> {
    Router::new()
        .route("/llm/v1/{*path}", any(forward))
        .route("/llm/usage", get(usage))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, axum::Json(body)).into_response()
}

/// The tenant whose callbot key the request carries (`X-API-Key`, or `Authorization: Bearer`).
async fn tenant(store: &Arc<dyn Store>, headers: &HeaderMap) -> Result<TenantId, Response> {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let raw = header_str("x-api-key")
        .or_else(|| header_str("authorization").and_then(|a| a.strip_prefix("Bearer ")))
        .unwrap_or("");
    let refuse = || {
        error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "missing or invalid callbot API key (X-API-Key or Authorization: Bearer)",
        )
    };
    match store.tenant_for_raw_key(raw).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(refuse()),
        Err(e) => {
            tracing::error!(error = %e, "API key lookup failed");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "try again",
            ))
        }
    }
}

async fn forward(
    State(state): State<StreamState>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tenant = match tenant(&state.store, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let what = match inference(&method, &path) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let allowed = &state.settings.llm_gateway_models;
    if let Err(r) = model_allowed(allowed, &what, &body) {
        return r;
    }
    let Some((engine, upstream)) = state
        .engine
        .as_ref()
        .and_then(|e| e.llm_upstream.clone().map(|u| (e.clone(), u)))
    else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "llm_unavailable",
            "this deployment has no language model (CALLBOT_LLM=off)",
        );
    };
    let now = callbot_core::time_fmt::now();
    if let Err(r) = rate_limit(&state, &tenant, now).await {
        return r;
    }
    let body = if path == "chat/completions" {
        with_usage_in_stream(body)
    } else {
        body
    };
    let mut url = format!("{}/{path}", upstream.base);
    if let Some(q) = query {
        url.push('?');
        url.push_str(&q);
    }
    let mut req = engine
        .http
        .request(method, &url)
        .timeout(callbot_core::http_client::LLM_TOTAL)
        .body(body);
    for h in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = headers.get(&h) {
            req = req.header(h, v);
        }
    }
    if let Some(k) = &upstream.key {
        req = req.bearer_auth(k.expose_secret());
    }
    // Counted from here on, whatever happens next (the meter counts when it is dropped, also
    // when the client goes away before the answer's headers or in the middle of its body).
    let meter = Meter {
        store: state.store.clone(),
        tenant,
        day: callbot_core::time_fmt::day_key(now),
        sse: false,
        buf: Vec::new(),
        usage: None,
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "LLM gateway: upstream unreachable");
            return error(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "the model server could not be reached",
            );
        }
    };
    if what == Inference::Models && !allowed.is_empty() {
        return model_list(resp, allowed, meter).await;
    }
    answer(resp, meter)
}

/// The tenant's per-minute slot, or the 429 (or 503) that refuses the request.
async fn rate_limit(
    state: &StreamState,
    tenant: &TenantId,
    now: time::OffsetDateTime,
) -> Result<(), Response> {
    let limit = state.settings.llm_gateway_per_minute;
    match state
        .store
        .acquire_rate_slot(&format!("llm#{tenant}"), limit, 60, now)
        .await
    {
        Ok(RateDecision::Allowed) => Ok(()),
        Ok(RateDecision::Limited { retry_after_secs }) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                &format!("at most {limit} requests per minute; try again in {retry_after_secs} s"),
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Err(r)
        }
        Err(e) => {
            tracing::error!(error = %e, "rate limit check failed");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "try again",
            ))
        }
    }
}

/// The model server's answer, streamed back as it arrives and metered as it passes.
fn answer(resp: reqwest::Response, mut meter: Meter) -> Response {
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    meter.sse = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let sse = meter.sse;
    let stream = resp.bytes_stream().map(move |chunk| {
        if let Ok(c) = &chunk {
            meter.inspect(c);
        }
        chunk
    });
    let mut out = Response::new(Body::from_stream(stream));
    *out.status_mut() = status;
    if let Some(ct) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if sse {
        out.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    out
}

/// `GET models` under an allow-list: the list read whole and cut to the allowed models.
async fn model_list(resp: reqwest::Response, allowed: &[String], meter: Meter) -> Response {
    let status = resp.status();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "LLM gateway: model list unreadable");
            return error(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "the model server's answer was cut off",
            );
        }
    };
    drop(meter);
    match only_allowed(allowed, &body).filter(|_| status.is_success()) {
        Some(list) => (status, [(header::CONTENT_TYPE, "application/json")], list).into_response(),
        None => (status, body).into_response(),
    }
}

/// A streamed chat completion asks for the usage chunk, so the tenant's tokens can be counted.
fn with_usage_in_stream(body: Bytes) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        return body; // the model server reports the bad JSON in its own words
    };
    if v["stream"] != true {
        return body;
    }
    v["stream_options"]["include_usage"] = json!(true);
    serde_json::to_vec(&v).map(Bytes::from).unwrap_or(body)
}

/// Reads the usage out of an answer as it passes; adds it to the tally when the answer is done
/// (or the client went away).
struct Meter {
    store: Arc<dyn Store>,
    tenant: TenantId,
    day: String,
    sse: bool,
    buf: Vec<u8>,
    usage: Option<(u64, u64)>,
}

impl Meter {
    fn inspect(&mut self, chunk: &[u8]) {
        if !self.sse {
            if self.buf.len() + chunk.len() <= MAX_INSPECT {
                self.buf.extend_from_slice(chunk);
            }
            return;
        }
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let line = &self.buf[start..start + nl];
            start += nl + 1;
            if let Some(data) = line.strip_prefix(b"data:")
                && let Ok(v) = serde_json::from_slice::<Value>(data.trim_ascii())
                && let Some(u) = usage_of(&v)
            {
                self.usage = Some(u);
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_INSPECT {
            self.buf.clear();
        }
    }
}

fn usage_of(v: &Value) -> Option<(u64, u64)> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some((
        u["prompt_tokens"].as_u64().unwrap_or(0),
        u["completion_tokens"].as_u64().unwrap_or(0),
    ))
}

impl Drop for Meter {
    fn drop(&mut self) {
        if !self.sse {
            self.usage = serde_json::from_slice::<Value>(&self.buf)
                .ok()
                .and_then(|v| usage_of(&v));
        }
        let (prompt, completion) = self.usage.unwrap_or((0, 0));
        let add = LlmUsage {
            day: std::mem::take(&mut self.day),
            requests: 1,
            prompt_tokens: prompt,
            completion_tokens: completion,
        };
        let (store, tenant) = (self.store.clone(), self.tenant.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.add_llm_usage(&tenant, &add).await {
                    tracing::error!(%tenant, error = %e, "counting LLM usage failed");
                }
            });
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct UsageQuery {
    days: Option<u32>,
}

/// `GET /llm/usage?days=30`: the tenant's LLM use per day, newest first (gateway and calls).
async fn usage(
    State(state): State<StreamState>,
    Query(q): Query<UsageQuery>,
    headers: HeaderMap,
) -> Response {
    let tenant = match tenant(&state.store, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let days = q.days.unwrap_or(30).clamp(1, 400);
    match state.store.llm_usage(&tenant, days).await {
        Ok(u) => axum::Json(json!({"usage": u})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reading LLM usage failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again")
        }
    }
}

/// Counts the LLM use of a call's turn in the tenant's tally.
pub fn count_turn(store: &Arc<dyn Store>, tenant: &TenantId, t: &callbot_core::store::LlmTimings) {
    let add = LlmUsage {
        day: callbot_core::time_fmt::day_key(callbot_core::time_fmt::now()),
        requests: 1 + u64::from(t.tool_calls),
        prompt_tokens: u64::from(t.tokens_in.unwrap_or(0)),
        completion_tokens: u64::from(t.tokens_out.unwrap_or(0)),
    };
    let (store, tenant) = (store.clone(), tenant.clone());
    tokio::spawn(async move {
        if let Err(e) = store.add_llm_usage(&tenant, &add).await {
            tracing::error!(%tenant, error = %e, "counting LLM usage failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_parsing() {
        let b = with_usage_in_stream(Bytes::from_static(br#"{"stream":true,"model":"m"}"#));
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        let plain = Bytes::from_static(br#"{"model":"m"}"#);
        assert_eq!(with_usage_in_stream(plain.clone()), plain);
        assert_eq!(
            usage_of(&json!({"usage": {"prompt_tokens": 3, "completion_tokens": 4}})),
            Some((3, 4))
        );
        assert_eq!(usage_of(&json!({"usage": null})), None);
    }
}
