//! The one error type every handler returns, and its mapping to HTTP: JSON `{error, code}` with a
//! fitting status. Internal details are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use callbot_core::ParseError;
use callbot_core::store::StoreError;
use callbot_core::telephony::TelephonyError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after_secs: Option<u64>,
    },
    #[error("{0}")]
    Unavailable(String),
    /// What this deployment does not do at all (a feature of another way of running it).
    #[error("{message}")]
    NotImplemented { code: &'static str, message: String },
    #[error("internal error")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for humans.
    pub error: String,
    /// Stable machine-readable code, e.g. `invalid_webhook`, `quota_exceeded`.
    pub code: String,
    /// The request field the error is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A bad value in a named request field.
    pub fn bad_field(field: &str, code: &'static str, message: impl std::fmt::Display) -> Self {
        ApiError::BadRequest {
            code,
            message: format!("{field}: {message}"),
            field: Some(field.to_owned()),
        }
    }

    /// A domain parse error for a named request field.
    pub fn field(field: &str, e: ParseError) -> Self {
        ApiError::bad_field(field, e.code, e.message)
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::TooManyRequests { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::NotImplemented { code, .. } => (StatusCode::NOT_IMPLEMENTED, code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let field = match &self {
            ApiError::BadRequest { field, .. } => field.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: self.to_string(),
            code: code.to_owned(),
            field,
        };
        let mut resp = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests {
            retry_after_secs: Some(secs),
            ..
        } = self
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // The store's only quota left to the API is the daily calls per bot: it resets at
            // the next UTC midnight.
            StoreError::QuotaExceeded { limit } => ApiError::TooManyRequests {
                code: "quota_exceeded",
                message: format!("quota exceeded: at most {limit} a day"),
                retry_after_secs: Some(secs_to_utc_midnight()),
            },
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            StoreError::IdempotencyKeyUsed => ApiError::Conflict {
                code: "idempotency_conflict",
                message: "Idempotency-Key was already used".into(),
            },
            StoreError::Conflict(m) => ApiError::Conflict {
                code: "conflict",
                message: m,
            },
            StoreError::Corrupt(m) | StoreError::Backend(m) => ApiError::Internal(m),
        }
    }
}

impl From<TelephonyError> for ApiError {
    fn from(e: TelephonyError) -> Self {
        match e {
            // The provider is up; its inventory has no number matching the request (another
            // area code or country may): not a server error.
            TelephonyError::NoNumbers(m) => ApiError::Conflict {
                code: "no_numbers",
                message: format!("no phone numbers available: {m}"),
            },
            TelephonyError::Auth => {
                tracing::error!("telephony provider rejected our credentials");
                ApiError::Unavailable("telephony provider is not available".into())
            }
            TelephonyError::Rejected(m) => ApiError::bad_request("telephony_rejected", m),
            TelephonyError::Unavailable(m) => {
                tracing::error!(detail = %m, "telephony provider unavailable");
                ApiError::Unavailable("telephony provider is not available".into())
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

fn secs_to_utc_midnight() -> u64 {
    let now = callbot_core::time_fmt::now().unix_timestamp();
    u64::try_from(86_400 - now.rem_euclid(86_400)).unwrap_or(86_400)
}
