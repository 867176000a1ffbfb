//! Request extractors: the authenticated tenant (`X-API-Key`) and strict JSON bodies whose errors
//! name the offending field.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::Bytes;
use callbot_core::domain::TenantId;
use serde::de::DeserializeOwned;

/// The API key a request presents (`X-API-Key`, surrounding blanks dropped), not yet checked.
pub(crate) fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A list's `limit` query value: `default` when absent, else 1 to `max` (400 `invalid_limit`).
pub(crate) fn page_limit(sent: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = sent.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_field(
            "limit",
            "invalid_limit",
            format!("must be 1-{max}"),
        ));
    }
    Ok(limit)
}

/// The tenant behind a valid `X-API-Key`. Extracting it is the authentication check.
#[derive(Debug, Clone)]
pub struct Tenant(pub TenantId);

impl<S> FromRequestParts<S> for Tenant
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let raw = presented_key(&parts.headers).ok_or(ApiError::Unauthorized)?;
        match state.store.tenant_for_raw_key(raw).await? {
            Some(t) => Ok(Tenant(t)),
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// A JSON body: content type checked, size limited, and deserialised with the path of the bad field
/// in the error (`goal: invalid type: integer, expected a string`).
#[derive(Debug)]
pub struct ApiJson<T> {
    pub value: T,
    /// The raw body, for idempotency hashing.
    pub raw: Bytes,
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = checked_body(req, &AppState::from_ref(state)).await?;
        let value = parse_json(&raw)?;
        Ok(ApiJson { value, raw })
    }
}

/// A request body within the size limit whose Content-Type (when given) is JSON: 413 and 415
/// otherwise.
async fn checked_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.settings.limits.max_body_bytes;
    // curl's `-d` labels bodies as form data; a JSON object sent that way is accepted, so the
    // README's one-line curl works. Any other non-JSON type is refused.
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let raw = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?;
    if let Some(ct) = content_type {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let json = essence == "application/json" || essence.ends_with("+json");
        let curl_form = essence == "application/x-www-form-urlencoded"
            && raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !json && !curl_form {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type must be application/json, not {ct:?}"
            )));
        }
    }
    Ok(raw)
}

/// An optional JSON body: nothing (or only whitespace) is `None`; anything else is checked and
/// parsed as [`ApiJson`] does.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = checked_body(req, &AppState::from_ref(state)).await?;
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        parse_json(&raw).map(|v| OptionalJson(Some(v)))
    }
}

/// Deserialises a JSON body, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "request body is empty; expected a JSON object",
        ));
    }
    // Every body of this API is an object: an array (which serde would read field by field into
    // a struct), a string or `null` is refused before it is read.
    if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_json",
            "request body must be a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(
                "invalid_json",
                format!("body is not valid JSON: {inner}"),
            );
        }
        let text = inner.to_string();
        // serde names missing and unknown fields inside the message: "missing field `goal`".
        let named = text
            .split('`')
            .nth(1)
            .filter(|_| text.starts_with("missing field") || text.starts_with("unknown field"));
        match (path.as_str(), named) {
            ("." | "", Some(name)) => ApiError::bad_field(name, "invalid_json", text.clone()),
            ("." | "", None) => ApiError::bad_request("invalid_json", format!("body: {text}")),
            (p, _) => ApiError::bad_field(p, "invalid_json", text.clone()),
        }
    })
}

/// A query string, refused as JSON `400 invalid_query` naming the problem when it does not parse
/// (axum's own `Query` answers `text/plain`).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<T>(raw)
            .map(ApiQuery)
            .map_err(|e| ApiError::bad_request("invalid_query", format!("query string: {e}")))
    }
}
