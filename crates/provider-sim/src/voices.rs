//! Stand-ins for the cloud voices, each checking a request the way the real service does and
//! answering in its real format with audio the platform did not make: a phrase of notes made
//! once by `fixtures/make_voice_fixtures.py` with Python's standard library, at each provider's
//! rate (and as μ-law by Python's `audioop`), whatever the text. What the caller should hear is
//! that script's 8 kHz PCM, so a bug shared by the product's resampler or G.711 code and the
//! stand-in cannot pass unseen:
//!
//! - ElevenLabs: `xi-api-key` (401 `{"detail":{"status":"invalid_api_key"}}`), `GET /v1/voices`,
//!   `POST /v1/text-to-speech/{voice_id}/stream` with `output_format` in the query (422 for an
//!   unknown one), JSON `text` and `model_id`, 404 `voice_not_found`; a chunked `ulaw_8000` body.
//! - OpenAI: `Authorization: Bearer`, `POST /v1/audio/speech` with `model`, `input` (≤ 4096),
//!   a known `voice`, `response_format` (`pcm` answered as 24 kHz s16le, chunked).
//! - Polly: `POST /v1/speech` signed with SigV4 (`Authorization: AWS4-HMAC-SHA256 Credential=…/
//!   polly/aws4_request, SignedHeaders=…, Signature=<64 hex>` and `X-Amz-Date`), a PascalCase JSON
//!   body (`Engine`, `OutputFormat`, `SampleRate`, `Text`, `VoiceId`), `EngineNotSupportedException`
//!   for a voice without the engine; an `audio/pcm` body with `x-amzn-RequestCharacters`.
//!
//! A [`Mode`] makes a stand-in fail the way providers do: an error status, a stall, a cut stream.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use callbot_audio::resample;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ELEVEN_KEY: &str = "xi-standin-key-0001";
pub const OPENAI_KEY: &str = "sk-audio-standin-0001";
/// The account voice the ElevenLabs stand-in lists as "Emma".
pub const EMMA_ID: &str = "Xq3mEmmaStandin00001";

/// How a stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Speak,
    /// This HTTP status with the provider's error body.
    Status(u16),
    /// Headers never come.
    Stall,
    /// A third of the audio, then the connection breaks.
    Cut,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone)]
pub struct StandIn {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    mode: Arc<Mutex<Mode>>,
    /// The audio of every answer, as the phone will play it (8 kHz PCM).
    played: Arc<Mutex<Vec<Vec<i16>>>>,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn").field("base", &self.base).finish()
    }
}

impl StandIn {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }
    /// The 8 kHz audio each answer carried (what the caller should hear).
    pub fn answers(&self) -> Vec<Vec<i16>> {
        self.played.lock().unwrap().clone()
    }
}

/// The voices' audio (see the module doc): 8 kHz μ-law, and 16-bit little-endian PCM at 8, 16
/// and 24 kHz.
const VOICE_ULAW_8000: &[u8] = include_bytes!("../fixtures/voice-8000.ulaw");
const VOICE_PCM_8000: &[u8] = include_bytes!("../fixtures/voice-8000.pcm");
const VOICE_PCM_16000: &[u8] = include_bytes!("../fixtures/voice-16000.pcm");
const VOICE_PCM_24000: &[u8] = include_bytes!("../fixtures/voice-24000.pcm");

/// What a caller should hear of any answer: the fixture's own 8 kHz PCM.
fn heard() -> Vec<i16> {
    VOICE_PCM_8000
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn to_rate(pcm: &[i16], from: u32, to: u32) -> Vec<i16> {
    resample::f32_to_i16(&resample::resample(&resample::i16_to_f32(pcm), from, to))
}

/// A chunked body of `bytes` in 1,024-byte pieces a few ms apart; with `cut`, a third of it and
/// then a broken connection.
fn chunked(bytes: Vec<u8>, cut: bool, content_type: &str, extra: &[(&str, String)]) -> Response {
    let stop = if cut { bytes.len() / 3 } else { bytes.len() };
    let pieces: Vec<Bytes> = bytes[..stop]
        .chunks(1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let stream = async_stream(pieces, cut);
    let mut r = Response::builder()
        .status(200)
        .header("content-type", content_type);
    for (k, v) in extra {
        r = r.header(*k, v);
    }
    r.body(Body::from_stream(stream)).unwrap()
}

fn async_stream(
    pieces: Vec<Bytes>,
    cut: bool,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let tail = cut.then(|| Err(std::io::Error::other("connection reset")));
    futures_util::stream::iter(pieces.into_iter().map(Ok).chain(tail)).then(|item| async move {
        tokio::time::sleep(Duration::from_millis(3)).await;
        item
    })
}

use futures_util::StreamExt as _;

fn record(
    s: &StandIn,
    method: &str,
    path: &str,
    q: &HashMap<String, String>,
    h: &HeaderMap,
    body: Value,
) {
    s.seen.lock().unwrap().push(Seen {
        method: method.into(),
        path: path.into(),
        query: q.clone(),
        headers: h.clone(),
        body,
    });
}

fn err(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

async fn serve(router: axum::Router, standin: StandIn) -> StandIn {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    StandIn { base, ..standin }
}

fn new_standin() -> StandIn {
    StandIn {
        base: String::new(),
        seen: Arc::default(),
        mode: Arc::new(Mutex::new(Mode::Speak)),
        played: Arc::default(),
    }
}

/// Applies a failure mode before the answer (`None`: answer normally).
async fn failure(s: &StandIn, body: impl Fn(u16) -> Value) -> Option<Response> {
    let mode = *s.mode.lock().unwrap();
    match mode {
        Mode::Status(code) => Some(err(code, body(code))),
        Mode::Stall => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some(err(504, body(504)))
        }
        Mode::Speak | Mode::Cut => None,
    }
}

// ---------------------------------------------------------------- ElevenLabs

const ULAW_FORMATS: &[&str] = &[
    "mp3_44100_128",
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "ulaw_8000",
    "alaw_8000",
];

fn eleven_auth(h: &HeaderMap) -> Result<(), Response> {
    if h.get("xi-api-key").and_then(|v| v.to_str().ok()) != Some(ELEVEN_KEY) {
        return Err(err(
            401,
            json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}),
        ));
    }
    Ok(())
}

pub async fn elevenlabs() -> StandIn {
    let s = new_standin();
    let router = axum::Router::new()
        .route(
            "/v1/voices",
            axum::routing::get(|State(s): State<StandIn>, h: HeaderMap| async move {
                record(&s, "GET", "/v1/voices", &HashMap::new(), &h, Value::Null);
                if let Err(r) = eleven_auth(&h) {
                    return r;
                }
                axum::Json(json!({"voices": [
                    {"voice_id": EMMA_ID, "name": "Emma", "category": "cloned", "labels": {"accent": "british"}},
                    {"voice_id": "JBFqnCBsd6RMkjVDRZzb", "name": "George", "category": "premade", "labels": {}},
                ]}))
                .into_response()
            }),
        )
        .route(
            "/v1/text-to-speech/{voice_id}/stream",
            axum::routing::post(
                |State(s): State<StandIn>,
                 Path(voice_id): Path<String>,
                 Query(q): Query<HashMap<String, String>>,
                 h: HeaderMap,
                 body: Bytes| async move {
                    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let path = format!("/v1/text-to-speech/{voice_id}/stream");
                    record(&s, "POST", &path, &q, &h, parsed.clone());
                    if let Err(r) = eleven_auth(&h) {
                        return r;
                    }
                    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
                    if !ct.starts_with("application/json") {
                        return err(415, json!({"detail": {"status": "invalid_content_type", "message": ct}}));
                    }
                    let format = q.get("output_format").map(String::as_str).unwrap_or("mp3_44100_128");
                    if !ULAW_FORMATS.contains(&format) {
                        return err(422, json!({"detail": [{"loc": ["query", "output_format"], "msg": "invalid output format", "type": "value_error"}]}));
                    }
                    let (Some(text), Some(_model)) = (parsed["text"].as_str(), parsed["model_id"].as_str()) else {
                        return err(422, json!({"detail": [{"loc": ["body", "text"], "msg": "field required", "type": "value_error.missing"}]}));
                    };
                    if voice_id != EMMA_ID && callbot_core::domain::voice_catalog::ELEVENLABS_PREMADE.iter().all(|v| v.1 != voice_id) {
                        return err(404, json!({"detail": {"status": "voice_not_found", "message": "A voice with this id was not found."}}));
                    }
                    if let Some(r) = failure(&s, |c| json!({"detail": {"status": if c == 401 {"quota_exceeded"} else {"internal_error"}, "message": "stand-in failure"}})).await {
                        return r;
                    }
                    if text.is_empty() {
                        return err(422, json!({"detail": [{"loc": ["body", "text"], "msg": "text is empty", "type": "value_error"}]}));
                    }
                    let mode = *s.mode.lock().unwrap();
                    if format != "ulaw_8000" {
                        return err(400, json!({"detail": {"status": "stand_in", "message": "this stand-in only speaks ulaw_8000"}}));
                    }
                    s.played.lock().unwrap().push(heard());
                    chunked(VOICE_ULAW_8000.to_vec(), mode == Mode::Cut, "audio/basic", &[])
                },
            ),
        )
        .with_state(s.clone());
    serve(router, s).await
}

// ---------------------------------------------------------------- OpenAI

const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];

fn openai_error(status: u16, message: &str, code: &str) -> Response {
    err(
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}

pub async fn openai_speech() -> StandIn {
    let s = new_standin();
    let router = axum::Router::new()
        .route(
            "/v1/audio/speech",
            axum::routing::post(|State(s): State<StandIn>, h: HeaderMap, body: Bytes| async move {
                let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                record(&s, "POST", "/v1/audio/speech", &HashMap::new(), &h, parsed.clone());
                let auth = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                if auth != format!("Bearer {OPENAI_KEY}") {
                    return openai_error(401, "Incorrect API key provided.", "invalid_api_key");
                }
                if !h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").starts_with("application/json") {
                    return openai_error(400, "Content-Type must be application/json", "invalid_content_type");
                }
                let input = parsed["input"].as_str().unwrap_or("");
                if parsed["model"].as_str().is_none() || input.is_empty() || input.chars().count() > 4096 {
                    return openai_error(400, "model and input (1-4096 characters) are required", "invalid_value");
                }
                if !parsed["voice"].as_str().is_some_and(|v| OPENAI_VOICES.contains(&v)) {
                    return openai_error(400, "Invalid value for 'voice'.", "invalid_value");
                }
                let format = parsed["response_format"].as_str().unwrap_or("mp3");
                if !["mp3", "opus", "aac", "flac", "wav", "pcm"].contains(&format) {
                    return openai_error(400, "Invalid value for 'response_format'.", "invalid_value");
                }
                if format != "pcm" {
                    return openai_error(400, "this stand-in only makes pcm", "invalid_value");
                }
                if let Some(r) = failure(&s, |c| json!({"error": {"message": "stand-in failure", "type": "server_error", "param": null, "code": if c == 401 {"invalid_api_key"} else {"server_error"}}})).await {
                    return r;
                }
                s.played.lock().unwrap().push(heard());
                let mode = *s.mode.lock().unwrap();
                chunked(VOICE_PCM_24000.to_vec(), mode == Mode::Cut, "audio/pcm", &[])
            }),
        )
        .route("/v1/audio/transcriptions", axum::routing::post(transcriptions))
        .with_state(s.clone());
    serve(router, s).await
}

/// Voiced milliseconds of 8 kHz PCM (20 ms frames above a fixed energy).
pub fn voiced_ms(pcm: &[i16]) -> u64 {
    pcm.chunks(160)
        .filter(|f| {
            (f.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / f.len() as f64).sqrt() > 1000.0
        })
        .count() as u64
        * 20
}

/// What the transcription stand-in "hears": a sentence keyed on the voiced length of the audio.
pub fn transcript_for(voiced_ms: u64) -> String {
    format!("I would like a table for {} people.", voiced_ms / 100)
}

async fn transcriptions(
    State(s): State<StandIn>,
    h: HeaderMap,
    mut form: axum::extract::Multipart,
) -> Response {
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut fields = serde_json::Map::new();
    let mut wav = None;
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or("").to_owned();
        if name == "file" {
            let file_name = field.file_name().map(str::to_owned);
            let bytes = field.bytes().await.unwrap_or_default();
            fields.insert(
                "file".into(),
                json!({"filename": file_name, "bytes": bytes.len()}),
            );
            wav = Some(bytes);
        } else {
            fields.insert(name, json!(field.text().await.unwrap_or_default()));
        }
    }
    record(
        &s,
        "POST",
        "/v1/audio/transcriptions",
        &HashMap::new(),
        &h,
        Value::Object(fields.clone()),
    );
    if auth != format!("Bearer {OPENAI_KEY}") {
        return openai_error(401, "Incorrect API key provided.", "invalid_api_key");
    }
    let Some(wav) = wav.filter(|_| fields["file"]["filename"].is_string()) else {
        return openai_error(400, "file (with a filename) is required", "invalid_value");
    };
    if fields
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return openai_error(400, "model is required", "invalid_value");
    }
    let Ok((pcm, rate)) = callbot_audio::wav::read_mono(&wav) else {
        return openai_error(400, "Invalid file format.", "invalid_value");
    };
    if let Some(r) = failure(&s, |_| json!({"error": {"message": "stand-in failure", "type": "server_error", "param": null, "code": null}})).await {
        return r;
    }
    let pcm8 = if rate == 8000 {
        pcm
    } else {
        to_rate(&pcm, rate, 8000)
    };
    axum::Json(json!({"text": transcript_for(voiced_ms(&pcm8))})).into_response()
}

// ---------------------------------------------------------------- Polly

/// (voice, has neural)
const POLLY: &[(&str, bool)] = &[
    ("Joanna", true),
    ("Matthew", true),
    ("Nicole", false),
    ("Russell", false),
];

fn polly_error(status: u16, kind: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", kind)
        .body(Body::from(
            json!({"__type": kind, "message": message}).to_string(),
        ))
        .unwrap()
}

/// The parts of a SigV4 `Authorization` header the service checks before the signature itself.
fn sigv4_ok(h: &HeaderMap) -> bool {
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return false;
    };
    let parts: HashMap<&str, &str> = rest.split(", ").filter_map(|p| p.split_once('=')).collect();
    let cred_ok = parts.get("Credential").is_some_and(|c| {
        let f: Vec<&str> = c.split('/').collect();
        f.len() == 5
            && f[0] == "AKIDSTANDIN"
            && f[1].len() == 8
            && f[3] == "polly"
            && f[4] == "aws4_request"
    });
    let signed = parts.get("SignedHeaders").is_some_and(|s| {
        s.split(';').any(|x| x == "host") && s.split(';').any(|x| x == "x-amz-date")
    });
    let sig = parts
        .get("Signature")
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    cred_ok && signed && sig && h.contains_key("x-amz-date")
}

pub async fn polly() -> StandIn {
    let s = new_standin();
    let router = axum::Router::new()
        .route(
            "/v1/speech",
            axum::routing::post(|State(s): State<StandIn>, h: HeaderMap, body: Bytes| async move {
                let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                record(&s, "POST", "/v1/speech", &HashMap::new(), &h, parsed.clone());
                if !sigv4_ok(&h) {
                    return polly_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.");
                }
                if !h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").starts_with("application/json") {
                    return polly_error(400, "SerializationException", "Expected application/json");
                }
                let Some(voice) = parsed["VoiceId"].as_str().and_then(|v| POLLY.iter().find(|p| p.0 == v)) else {
                    return polly_error(400, "ValidationException", "VoiceId is not a valid voice");
                };
                let engine = parsed["Engine"].as_str().unwrap_or("standard");
                if engine == "neural" && !voice.1 {
                    return polly_error(400, "EngineNotSupportedException", "This voice does not support the selected engine");
                }
                if parsed["OutputFormat"] != "pcm" || !["8000", "16000"].contains(&parsed["SampleRate"].as_str().unwrap_or("16000")) {
                    return polly_error(400, "InvalidSampleRateException", "pcm takes SampleRate 8000 or 16000");
                }
                let Some(text) = parsed["Text"].as_str().filter(|t| !t.is_empty()) else {
                    return polly_error(400, "ValidationException", "Text is required");
                };
                if let Some(r) = failure(&s, |_| json!({"__type": "ServiceFailureException", "message": "stand-in failure"})).await {
                    return r;
                }
                let bytes = match parsed["SampleRate"].as_str() {
                    Some("8000") => VOICE_PCM_8000,
                    _ => VOICE_PCM_16000,
                };
                s.played.lock().unwrap().push(heard());
                let bytes = bytes.to_vec();
                let mode = *s.mode.lock().unwrap();
                chunked(bytes, mode == Mode::Cut, "audio/pcm", &[("x-amzn-RequestCharacters", text.chars().count().to_string())])
            }),
        )
        .with_state(s.clone());
    serve(router, s).await
}

/// The best normalised correlation of a 250 ms window from the loud middle of `expected` with
/// any position of `track`: about 1.0 when the track carries that audio.
pub fn carries(track: &[i16], expected: &[i16]) -> f64 {
    let win = 2000.min(expected.len());
    // The loudest window of `expected`.
    let mut best_start = 0;
    let mut best_energy = 0f64;
    let mut i = 0;
    while i + win <= expected.len() {
        let e: f64 = expected[i..i + win]
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum();
        if e > best_energy {
            best_energy = e;
            best_start = i;
        }
        i += 400;
    }
    let needle: Vec<f64> = expected[best_start..best_start + win]
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let nn: f64 = needle.iter().map(|v| v * v).sum::<f64>().sqrt();
    if nn == 0.0 || track.len() < win {
        return 0.0;
    }
    let t: Vec<f64> = track.iter().map(|&v| f64::from(v)).collect();
    let mut best = 0f64;
    let mut energy: f64 = t[..win].iter().map(|v| v * v).sum();
    for off in 0..=t.len() - win {
        if off > 0 {
            energy += t[off + win - 1].powi(2) - t[off - 1].powi(2);
        }
        if energy <= 0.0 {
            continue;
        }
        let dot: f64 = needle
            .iter()
            .zip(&t[off..off + win])
            .map(|(a, b)| a * b)
            .sum();
        best = best.max(dot / (nn * energy.max(0.0).sqrt()));
    }
    best
}
