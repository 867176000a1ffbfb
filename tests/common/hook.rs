//! A business webhook for tests: a real HTTP server that checks each request the way a customer
//! should (signature over timestamp and body, JSON content type, idempotency key) and answers
//! from a script, recording what it received.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the hook does for one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Json(Value),
    Status(u16),
    Raw(&'static str),
    /// Answer `Value` after this delay.
    Slow(Duration, Value),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    pub idempotency_key: String,
    pub signature_ok: bool,
}

type Script = Arc<dyn Fn(&Value) -> Answer + Send + Sync>;

#[derive(Clone)]
pub struct Hook {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    secret: Arc<Mutex<String>>,
}

impl Hook {
    pub fn set_secret(&self, s: &str) {
        *self.secret.lock().unwrap() = s.to_owned();
    }
    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

pub async fn start(script: impl Fn(&Value) -> Answer + Send + Sync + 'static) -> Hook {
    let script: Script = Arc::new(script);
    let received = Arc::new(Mutex::new(Vec::new()));
    let secret = Arc::new(Mutex::new(String::new()));
    let (r, sec) = (received.clone(), secret.clone());
    let handler = move |headers: HeaderMap, body: Bytes| {
        let (script, r, sec) = (script.clone(), r.clone(), sec.clone());
        async move {
            let json = headers.get("content-type").and_then(|v| v.to_str().ok())
                == Some("application/json");
            let Ok(value) = serde_json::from_slice::<Value>(&body) else {
                return (StatusCode::BAD_REQUEST, "not JSON").into_response();
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let sig = headers
                .get("x-callbot-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let secret = sec.lock().unwrap().clone();
            let signature_ok = json
                && callbot_core::webhook_sign::verify(secret.as_bytes(), sig, &body, now, 300)
                    .is_ok();
            let idempotency_key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let answer = script(&value);
            r.lock().unwrap().push(Received {
                body: value,
                idempotency_key,
                signature_ok,
            });
            match answer {
                Answer::Json(v) => axum::Json(v).into_response(),
                Answer::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
                Answer::Raw(t) => ([("content-type", "application/json")], t).into_response(),
                Answer::Slow(d, v) => {
                    tokio::time::sleep(d).await;
                    axum::Json(v).into_response()
                }
            }
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Hook {
        url,
        received,
        secret,
    }
}
