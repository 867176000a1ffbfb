//! The tenant's own API keys over REST: `GET /keys` lists them (public ids and labels, never the
//! keys), `POST /keys` creates one (shown once, stored hashed), `DELETE /keys/{id}` revokes one
//! at once on every instance. A tenant sees and revokes only its own keys.

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Tenant};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use callbot_core::apikey::{self, KeyHash};
use callbot_core::store::key_id;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A tenant holds at most this many keys (rotation needs two; a leak should not mint thousands).
pub const MAX_KEYS_PER_TENANT: usize = 20;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// `key_` and 16 hex digits of the key's SHA-256: names the key, cannot recover it.
    #[schema(example = "key_3f1a9c0b7d2e4f68")]
    id: String,
    label: String,
    /// RFC 3339.
    created_at: String,
    /// True for the key that made this request.
    current: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    keys: Vec<KeyView>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// What the key is for (1-64 characters), e.g. `ci` or `laptop`.
    #[schema(
        example = "ci",
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    label: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewKey {
    id: String,
    label: String,
    /// The key itself: shown only in this answer; only its hash is stored.
    key: String,
}

fn presented(headers: &HeaderMap) -> Option<String> {
    crate::extract::presented_key(headers).map(|k| key_id(&KeyHash::of(k)))
}

/// List your API keys (ids and labels; the keys themselves are never shown again).
#[utoipa::path(get, path = "/keys", tag = "keys", security(("api_key" = [])),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody)))]
pub async fn list_keys(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
) -> ApiResult<Json<KeyList>> {
    let current = presented(&headers);
    let keys = state
        .store
        .list_api_keys(Some(&tenant))
        .await?
        .into_iter()
        .map(|k| KeyView {
            current: Some(&k.id) == current.as_ref(),
            id: k.id,
            label: k.label,
            created_at: k.created_at,
        })
        .collect();
    Ok(Json(KeyList { keys }))
}

/// Create another API key for your tenant (to rotate one: create, deploy, revoke the old).
#[utoipa::path(post, path = "/keys", tag = "keys", security(("api_key" = [])),
    request_body(content = NewKeyRequest, example = json!({"label": "ci"})),
    responses((status = 201, body = NewKey), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The tenant holds the most keys allowed")))]
pub async fn create_key(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: ApiJson<NewKeyRequest>,
) -> ApiResult<(StatusCode, Json<NewKey>)> {
    let raw = &body.value.label;
    let label = raw.trim().to_owned();
    if label.is_empty() || raw.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(ApiError::bad_field(
            "label",
            "invalid_label",
            "label must be 1-64 characters without control characters",
        ));
    }
    if state.store.list_api_keys(Some(&tenant)).await?.len() >= MAX_KEYS_PER_TENANT {
        // Waiting does not help (a key must be revoked): 409, not 429.
        return Err(ApiError::Conflict {
            code: "quota_exceeded",
            message: format!("a tenant holds at most {MAX_KEYS_PER_TENANT} keys; revoke one first"),
        });
    }
    let (key, hash) = apikey::generate();
    state.store.put_api_key(&hash, &tenant, &label).await?;
    tracing::info!(%tenant, key_id = %key_id(&hash), "API key created");
    Ok((
        StatusCode::CREATED,
        Json(NewKey {
            id: key_id(&hash),
            label,
            key: apikey::reveal(&key).to_owned(),
        }),
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    id: String,
    revoked: bool,
}

/// Revoke one of your API keys: requests with it fail from now on (the current key included).
#[utoipa::path(delete, path = "/keys/{id}", tag = "keys", security(("api_key" = [])),
    params(("id" = String, Path, description = "Key id (`key_…`)")),
    responses((status = 200, body = Revoked), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Revoked>> {
    if !state.store.revoke_api_key(Some(&tenant), &id).await? {
        return Err(ApiError::NotFound(format!("no key {id:?} in this account")));
    }
    tracing::info!(%tenant, key_id = %id, "API key revoked");
    Ok(Json(Revoked { id, revoked: true }))
}
