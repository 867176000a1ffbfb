//! `Idempotency-Key` for the POST endpoints that create things (bots, outbound calls): the key is
//! checked, a replay returns the first answer (marked `Idempotent-Replayed: true`), and the same
//! key with another body is a 409.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use callbot_core::domain::TenantId;
use callbot_core::store::IdempotencyRecord;
use sha2::{Digest, Sha256};

/// A request's idempotency state: answered before (`Replay`), or new (`Fresh`, with the key to
/// store alongside the result and the body hash).
#[derive(Debug)]
pub enum Idempotency {
    Replay(Response),
    Fresh {
        key: Option<String>,
        request_hash: String,
    },
}

pub(crate) fn key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().map_err(|_| {
        ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key must be ASCII")
    })?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// Looks the request up under `scope` (e.g. `POST /bots`).
pub(crate) async fn check(
    state: &AppState,
    tenant: &TenantId,
    scope: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Idempotency> {
    let key = key(headers)?;
    let request_hash = hex::encode(Sha256::digest(body));
    if let Some(k) = &key
        && let Some(record) = state.store.get_idempotency(tenant, scope, k).await?
    {
        return replay(&record, &request_hash).map(Idempotency::Replay);
    }
    Ok(Idempotency::Fresh { key, request_hash })
}

/// The stored first answer, if this is the same request.
pub(crate) fn replay(record: &IdempotencyRecord, request_hash: &str) -> ApiResult<Response> {
    if record.request_hash != request_hash {
        return Err(ApiError::Conflict {
            code: "idempotency_conflict",
            message: "Idempotency-Key was already used with a different request body".into(),
        });
    }
    let status = StatusCode::from_u16(record.status).map_err(ApiError::internal)?;
    let body: serde_json::Value = serde_json::from_str(&record.body).map_err(ApiError::internal)?;
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        "idempotent-replayed",
        axum::http::HeaderValue::from_static("true"),
    );
    Ok(resp)
}
