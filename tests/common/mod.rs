//! Test harness: `spawn_app()` starts the real router on port 0 with a fresh store, and helpers
//! for the local DynamoDB stand-in that `scripts/test.sh` starts.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

pub mod serve;

use callbot_core::apikey;
use callbot_core::domain::TenantId;
use callbot_core::settings::{AwsSettings, Settings, StoreSettings};
use callbot_functions::AppState;
use secrecy::SecretString;
use serde_json::{Value, json};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// A key for tenant `acme`.
    pub api_key: String,
    pub state: AppState,
    /// The Twilio simulator (local telephony) the app talks to.
    pub sim: Option<callbot_twilio_sim::Sim>,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Local settings (SQLite in a temp dir, private webhooks allowed) and a key for tenant `acme`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_adjusted(change, |p| p).await
}

/// `spawn_app_with`, with the built platform adjusted before it serves (e.g. another recogniser).
pub async fn spawn_app_adjusted(
    change: impl FnOnce(&mut Settings),
    adjust: impl FnOnce(callbot::server::Platform) -> callbot::server::Platform,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::for_local(dir.path().to_path_buf());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    settings.addr = listener.local_addr().expect("addr");
    // Tests of the platform use the instant speech stand-ins; those of real speech opt in.
    settings.calls.speech = callbot_core::settings::SpeechSettings::Instant;
    change(&mut settings);
    let platform = adjust(callbot::server::build(settings).await.expect("platform"));
    let state = platform.state.clone();
    let sim = platform.sim.clone();
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(callbot::server::run(listener, platform, async {
        let _ = rx.await;
    }));
    let mut app = TestApp {
        base,
        client: reqwest::Client::new(),
        api_key: String::new(),
        state,
        sim,
        dir,
        shutdown: Some(tx),
    };
    app.api_key = app.new_key("acme").await;
    app
}

impl TestApp {
    /// Creates an API key for `tenant` directly in the store.
    pub async fn new_key(&self, tenant: &str) -> String {
        let (key, hash) = apikey::generate();
        let tenant = TenantId::parse(tenant).expect("tenant");
        self.state
            .store
            .put_api_key(&hash, &tenant, "test")
            .await
            .expect("put key");
        apikey::reveal(&key).to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn create_bot(&self, key: &str, body: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url("/bots"))
            .header("x-api-key", key)
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    /// GETs a public (unauthenticated) route and returns its JSON body.
    pub async fn public_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json body")
    }

    /// GETs a public route and returns its body as text.
    pub async fn public_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("text body")
    }

    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(self.url(path))
            .header("x-api-key", key)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }
}

impl TestApp {
    /// The auth token Twilio (here: the simulator) signs webhooks with.
    pub fn twilio_token(&self) -> String {
        use secrecy::ExposeSecret;
        self.state.twilio.auth_token.expose_secret().to_owned()
    }

    /// POSTs a form to `path` signed like Twilio signs it for `signed_url` (default: the app URL).
    pub async fn twilio_post(
        &self,
        path: &str,
        params: &[(&str, &str)],
        signed_url: Option<&str>,
    ) -> reqwest::Response {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let url = signed_url.map_or_else(|| self.url(path), str::to_owned);
        let sig =
            callbot_core::twilio::signature::compute(self.twilio_token().as_bytes(), &url, &owned);
        self.client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sig)
            .body(serde_urlencoded::to_string(&owned).unwrap())
            .send()
            .await
            .expect("send")
    }

    /// POSTs JSON with this app's key for tenant `acme`, returning status and body.
    pub async fn post_json(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .header("x-api-key", key)
            .json(body)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// PATCHes JSON with `key`, returning status and body.
    pub async fn patch_json(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .patch(self.url(path))
            .header("x-api-key", key)
            .json(body)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub fn sim(&self) -> callbot_twilio_sim::Sim {
        self.sim
            .clone()
            .expect("local telephony: the simulator is running")
    }
}

/// Waits (up to 10 s) until `check` returns `Some`.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 10 s");
}

pub fn bot_body() -> Value {
    json!({
        "goal": "Take restaurant reservations",
        "webhook": "https://example.com/hook",
        "context": "Open 5PM–10PM",
        "voice": "local:en-gb"
    })
}

/// Settings for the DynamoDB stand-in started by `scripts/test.sh` (a fresh table per call).
/// Without `CALLBOT_TEST_DYNAMODB_ENDPOINT` this fails loudly unless `CALLBOT_SKIP_DYNAMODB=1` is set,
/// in which case it says so and returns `None`: the DynamoDB suite is never skipped silently.
pub fn dynamodb_settings(dir: &std::path::Path) -> Option<Settings> {
    let Ok(endpoint) = std::env::var("CALLBOT_TEST_DYNAMODB_ENDPOINT") else {
        if std::env::var("CALLBOT_SKIP_DYNAMODB").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPING DynamoDB tests: CALLBOT_SKIP_DYNAMODB=1");
            return None;
        }
        panic!(
            "CALLBOT_TEST_DYNAMODB_ENDPOINT is not set: run the suite with scripts/test.sh (it starts the local \
             DynamoDB stand-in), or set CALLBOT_SKIP_DYNAMODB=1 to skip these tests knowingly"
        );
    };
    let mut settings = Settings::for_local(dir.to_path_buf());
    settings.store = StoreSettings::Dynamodb {
        table: format!("callbot-test-{}", uuid_like()),
        create_table: true,
    };
    settings.aws = AwsSettings {
        region: "us-east-1".into(),
        endpoint_url: Some(endpoint),
        access_key_id: Some("test".into()),
        secret_access_key: Some(SecretString::from("test".to_owned())),
    };
    Some(settings)
}

fn uuid_like() -> String {
    let (_, hash) = apikey::generate();
    hash.as_str()[..16].to_owned()
}

pub mod callws;
pub mod hook;
pub mod openai;
#[allow(unused_imports)]
pub use callbot_provider_sim::{deepgram, voices};

/// Creates a bot with `bot_body()` for the app's tenant: (id, number).
pub async fn new_bot(app: &TestApp) -> (String, String) {
    let (status, b) = app.create_bot(&app.api_key, bot_body()).await;
    assert_eq!(status, 201, "{b}");
    (
        b["id"].as_str().unwrap().to_owned(),
        b["number"].as_str().unwrap().to_owned(),
    )
}

/// A fresh call sid.
pub fn sid() -> String {
    callbot_core::domain::CallSid::generate().to_string()
}

/// `GET /calls/{sid}` with the app's key, which must succeed.
pub async fn call_view(app: &TestApp, sid: &str) -> Value {
    let (status, body) = app.get(&app.api_key, &format!("/calls/{sid}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn outbound(app: &TestApp, key: &str, body: Value) -> (u16, Value) {
    app.post_json(key, "/outbound-call", &body).await
}

pub async fn call_status(app: &TestApp, key: &str, sid: &str, user: &str) -> (u16, Value) {
    app.get(key, &format!("/call-status?callSid={sid}&user_id={user}"))
        .await
}

/// A caller who stays 200 ms and hangs up.
/// A clock a test sets (for the campaign dialers).
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<time::OffsetDateTime>);

impl ManualClock {
    pub fn at(rfc3339: &str) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self(std::sync::Mutex::new(
            callbot_core::time_fmt::parse_rfc3339(rfc3339).expect("an RFC 3339 time"),
        )))
    }

    pub fn set(&self, rfc3339: &str) {
        self.set_to(callbot_core::time_fmt::parse_rfc3339(rfc3339).expect("an RFC 3339 time"));
    }

    pub fn set_to(&self, t: time::OffsetDateTime) {
        *self.0.lock().expect("clock") = t;
    }
}

impl callbot_functions::campaigns::dialer::Clock for ManualClock {
    fn now(&self) -> time::OffsetDateTime {
        *self.0.lock().expect("clock")
    }
}

pub fn short_call() -> callbot_twilio_sim::carrier::Script {
    use callbot_twilio_sim::carrier::{Script, Step};
    Script {
        steps: vec![Step::Silence(std::time::Duration::from_millis(200))],
        hangup_when_done: true,
    }
}

/// A voicemail beep: `ms` of a 1 kHz tone, 8 kHz μ-law.
pub fn beep(ms: usize) -> Vec<u8> {
    (0..ms * 8)
        .map(|i| {
            let v = (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin() * 9000.0;
            callbot_stream::audio::g711::encode_sample(v as i16)
        })
        .collect()
}

/// The caller of the call-engine tests.
pub const CALLER: &str = "+15550001111";

/// The caller waits until the bot has spoken (and then been quiet for half a second).
pub fn wait_bot() -> callbot_twilio_sim::carrier::Step {
    callbot_twilio_sim::carrier::Step::WaitForBot {
        quiet: std::time::Duration::from_millis(500),
        max: std::time::Duration::from_secs(20),
    }
}

/// The caller waits for the bot's answer, through a filler ("One moment.", at most 2.8 s before
/// the next line): quiet for 3 s after the bot spoke.
pub fn wait_answer() -> callbot_twilio_sim::carrier::Step {
    callbot_twilio_sim::carrier::Step::WaitForBot {
        quiet: std::time::Duration::from_secs(3),
        max: std::time::Duration::from_secs(40),
    }
}

/// The test caller (`CALLER`) dials `number` and follows `steps`, hanging up when they are done.
pub fn dial(
    app: &TestApp,
    number: &str,
    steps: Vec<callbot_twilio_sim::carrier::Step>,
) -> callbot_twilio_sim::CallHandle {
    let script = callbot_twilio_sim::carrier::Script {
        steps,
        hangup_when_done: true,
    };
    app.sim().dial(CALLER, number, script).expect("dial")
}

/// What the bot said for its answer, without the fillers ("One moment.") that a slow reply
/// begins with on a loaded machine.
pub fn without_fillers(spoken: &str) -> &str {
    let mut rest = spoken.trim_start();
    while let Some(line) = callbot_stream::engine::FILLER_LINES
        .iter()
        .find_map(|f| rest.strip_prefix(f))
    {
        rest = line.trim_start();
    }
    rest
}

/// The call record once the engine has finished with it (recording written).
pub async fn finished_call(app: &TestApp, sid: &str) -> Value {
    eventually(|| async {
        let (status, v) = app.get(&app.api_key, &format!("/calls/{sid}")).await;
        (status == 200 && v["recording_url"].is_string()).then_some(v)
    })
    .await
}

/// A raw media stream opened the way Twilio opens one for `verbs` (a `/voice` answer): the
/// signed handshake, then `connected` and `start` with the TwiML's parameters, stream `MZ1`.
pub async fn open_media_stream(
    app: &TestApp,
    verbs: &[callbot_twilio_sim::twiml::Verb],
    call_sid: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let callbot_twilio_sim::twiml::Verb::ConnectStream { url, parameters } = &verbs[0] else {
        panic!("{verbs:?}")
    };
    let mut req = url.as_str().into_client_request().unwrap();
    let sig = callbot_core::twilio::signature::compute(app.twilio_token().as_bytes(), url, &[]);
    req.headers_mut()
        .insert("x-twilio-signature", sig.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let custom: serde_json::Map<String, Value> = parameters
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let connected = json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
    ws.send(Message::text(connected.to_string())).await.unwrap();
    let start = json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {"streamSid": "MZ1", "accountSid": "AC1",
        "callSid": call_sid, "tracks": ["inbound"], "customParameters": custom, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}});
    ws.send(Message::text(start.to_string())).await.unwrap();
    ws
}

/// Calls `number`, says `steps`; the call's finished record and the events an observer saw.
pub async fn dial_watched(
    app: &TestApp,
    number: &str,
    steps: Vec<callbot_twilio_sim::carrier::Step>,
) -> (Value, Vec<Value>) {
    let mut c = dial(app, number, steps);
    let watch = observe(app, &c.sid).await;
    callbot_twilio_sim::events_until_end(&mut c, std::time::Duration::from_secs(60)).await;
    let events = tokio::time::timeout(std::time::Duration::from_secs(10), watch)
        .await
        .unwrap()
        .unwrap();
    (finished_call(app, &c.sid).await, events)
}

/// Watches a call's events on `/frontend-stream` from its start until it ends.
pub async fn observe(app: &TestApp, sid: &str) -> tokio::task::JoinHandle<Vec<Value>> {
    observe_at(&app.base, &app.api_key, sid).await
}

/// [`observe`] on the platform at `base` with the API key `key`.
pub async fn observe_at(base: &str, key: &str, sid: &str) -> tokio::task::JoinHandle<Vec<Value>> {
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!(
        "{}/frontend-stream?callSid={sid}",
        base.replace("http://", "ws://")
    );
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    let ws = eventually(|| {
        let req = req.clone();
        async move {
            tokio_tungstenite::connect_async(req)
                .await
                .ok()
                .map(|(o, _)| o)
        }
    })
    .await;
    tokio::spawn(async move {
        let mut ws = ws;
        let mut seen = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = m
                && let Ok(v) = serde_json::from_str::<Value>(&t)
            {
                seen.push(v);
            }
        }
        seen
    })
}

/// The offline engines with the suite's Whisper model (`CALLBOT_TEST_MODEL`), for tests of real
/// speech; `None` (said on stderr) when `CALLBOT_SKIP_SPEECH` skips them knowingly.
pub fn real_speech() -> Option<callbot_core::settings::SpeechSettings> {
    let Some(model) = std::env::var_os("CALLBOT_TEST_MODEL").map(std::path::PathBuf::from) else {
        assert!(
            std::env::var_os("CALLBOT_SKIP_SPEECH").is_some(),
            "CALLBOT_TEST_MODEL must point at ggml-tiny.en.bin (./scripts/test.sh sets it); CALLBOT_SKIP_SPEECH=1 skips knowingly"
        );
        eprintln!("CALLBOT_SKIP_SPEECH set: real-speech test skipped");
        return None;
    };
    Some(callbot_core::settings::SpeechSettings::Local {
        model,
        espeak: "espeak-ng".into(),
        whisper_workers: 1,
        decoding: Default::default(),
    })
}

/// The embedded model's GGUF (`CALLBOT_TEST_LLM_MODEL`) and the `callbot-llm` worker built
/// beside the test binaries; `None` (said on stderr) when `CALLBOT_SKIP_LLM=1` skips knowingly.
pub fn embedded_model() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let Some(model) = std::env::var_os("CALLBOT_TEST_LLM_MODEL") else {
        if std::env::var("CALLBOT_SKIP_LLM").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPING the embedded-model test: CALLBOT_SKIP_LLM=1");
            return None;
        }
        panic!(
            "CALLBOT_TEST_LLM_MODEL is not set: run scripts/test.sh, or set CALLBOT_SKIP_LLM=1 to skip knowingly"
        );
    };
    // target/debug/deps/<test>-… → target/debug/callbot-llm
    let exe = std::env::current_exe().unwrap();
    let worker = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("callbot-llm");
    assert!(
        worker.exists(),
        "build the worker first: cargo build --workspace ({})",
        worker.display()
    );
    Some((model.into(), worker))
}

/// The test suite's Python (`CALLBOT_TEST_PYTHON`, the venv `scripts/test.sh` fills: aiortc,
/// twilio); `None` (said on stderr) when `CALLBOT_SKIP_PYTHON=1` skips its tests knowingly.
pub fn python() -> Option<String> {
    match std::env::var("CALLBOT_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var("CALLBOT_SKIP_PYTHON").is_ok_and(|v| v == "1") => {
            eprintln!("CALLBOT_SKIP_PYTHON=1: test with a Python peer skipped");
            None
        }
        Err(_) => panic!(
            "CALLBOT_TEST_PYTHON is not set: run the suite with scripts/test.sh, or set \
             CALLBOT_SKIP_PYTHON=1 to skip this test knowingly"
        ),
    }
}

/// Signs the console in `b` in with the app's key and waits for the bots page.
pub async fn console_sign_in(b: &callbot::browser::Browser, app: &TestApp) {
    b.client.goto(&app.url("/console")).await.unwrap();
    b.css("#key")
        .await
        .unwrap()
        .send_keys(&app.api_key)
        .await
        .unwrap();
    submit(b).await;
    b.until("document.querySelector('h1')?.textContent === 'Bots'", 10)
        .await
        .unwrap();
}

/// Clicks the page's submit button.
pub async fn submit(b: &callbot::browser::Browser) {
    b.click("form button[type=submit]").await.unwrap();
}
