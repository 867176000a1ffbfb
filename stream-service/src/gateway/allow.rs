//! What the gateway forwards: inference endpoints only (the provider account is shared by every
//! tenant, so its files, batches, fine-tuning jobs and organisation endpoints are refused before
//! they reach it), and with an allow-list (`CALLBOT_LLM_MODELS`) only the models on it.

use super::error;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

/// The inference endpoints the gateway forwards, by method.
const INFERENCE_POST: [&str; 4] = [
    "chat/completions",
    "completions",
    "embeddings",
    "moderations",
];

/// What a forwarded request is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Inference {
    /// A `POST` to one of [`INFERENCE_POST`]: its body names the model.
    Post,
    /// `GET models`.
    Models,
    /// `GET models/{id}`.
    Model(String),
}

/// The inference request `method path` is, or the 403 for anything else (files, batches,
/// fine-tuning, assistants, organisation...).
#[allow(clippy::result_large_err)] // the refusal is the response itself, built once per request
pub(super) fn inference(method: &Method, path: &str) -> Result<Inference, Response> {
    let model_id = path
        .strip_prefix("models/")
        .filter(|id| !id.is_empty() && id.len() <= 200 && !id.contains(".."));
    let found = match (method, path) {
        (&Method::POST, p) if INFERENCE_POST.contains(&p) => Some(Inference::Post),
        (&Method::GET, "models") => Some(Inference::Models),
        (&Method::GET, _) => model_id.map(|id| Inference::Model(id.to_owned())),
        _ => None,
    };
    found.ok_or_else(|| {
        error(
            StatusCode::FORBIDDEN,
            "endpoint_not_allowed",
            &format!(
                "the gateway forwards inference only: POST {}; GET models",
                INFERENCE_POST.join(", ")
            ),
        )
    })
}

/// With an allow-list, the model a request names must be on it (400 naming the allowed models).
#[allow(clippy::result_large_err)] // the refusal is the response itself, built once per request
pub(super) fn model_allowed(
    allowed: &[String],
    what: &Inference,
    body: &[u8],
) -> Result<(), Response> {
    if allowed.is_empty() {
        return Ok(());
    }
    let named = match what {
        Inference::Models => return Ok(()),
        Inference::Model(id) => Some(id.clone()),
        Inference::Post => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("model")?.as_str().map(str::to_owned)),
    };
    match named {
        Some(m) if allowed.contains(&m) => Ok(()),
        named => Err(error(
            StatusCode::BAD_REQUEST,
            "model_not_allowed",
            &format!(
                "model {} is not allowed on this deployment; allowed: {}",
                named.map_or_else(|| "(none given)".to_owned(), |m| format!("{m:?}")),
                allowed.join(", ")
            ),
        )),
    }
}

/// `GET models` with an allow-list: the model server's list cut to the allowed models.
pub(super) fn only_allowed(allowed: &[String], list: &[u8]) -> Option<Vec<u8>> {
    let mut v = serde_json::from_slice::<Value>(list).ok()?;
    v.get_mut("data")?.as_array_mut()?.retain(|m| {
        m["id"]
            .as_str()
            .is_some_and(|id| allowed.iter().any(|a| a == id))
    });
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_inference_is_forwarded() {
        for (m, p) in [
            (Method::POST, "chat/completions"),
            (Method::POST, "embeddings"),
            (Method::GET, "models"),
            (Method::GET, "models/gpt-4o-mini"),
        ] {
            assert!(inference(&m, p).is_ok(), "{m} {p}");
        }
        for (m, p) in [
            (Method::GET, "files"),
            (Method::DELETE, "files/file-1"),
            (Method::POST, "fine_tuning/jobs"),
            (Method::GET, "batches"),
            (Method::GET, "organization/costs"),
            (Method::GET, "chat/completions"),
            (Method::POST, "models"),
            (Method::GET, "models/"),
            (Method::GET, "models/../files"),
            (Method::POST, "../admin"),
        ] {
            let r = inference(&m, p).expect_err(p);
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{m} {p}");
        }
    }

    #[test]
    fn the_allow_list_names_the_allowed_models() {
        let allowed = vec!["a".to_owned(), "b".to_owned()];
        let body = |m: &str| format!(r#"{{"model":"{m}"}}"#).into_bytes();
        assert!(model_allowed(&allowed, &Inference::Post, &body("b")).is_ok());
        assert!(model_allowed(&[], &Inference::Post, &body("z")).is_ok());
        assert!(model_allowed(&allowed, &Inference::Models, b"").is_ok());
        for (what, b) in [
            (Inference::Post, body("z")),
            (Inference::Post, b"not json".to_vec()),
            (Inference::Model("z".into()), vec![]),
        ] {
            let r = model_allowed(&allowed, &what, &b).expect_err("refused");
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        }
        let list = br#"{"object":"list","data":[{"id":"a"},{"id":"z"}]}"#;
        let cut: Value = serde_json::from_slice(&only_allowed(&allowed, list).unwrap()).unwrap();
        assert_eq!(cut["data"], json!([{"id": "a"}]));
    }
}
