//! Each Lambda binary, for real: started as the Lambda service starts it (environment from the
//! template, `AWS_LAMBDA_RUNTIME_API`), fed API Gateway v2 HTTP events through a stand-in of the
//! Lambda Runtime API, against the DynamoDB/S3 stand-in and the Twilio simulator. Also measures the
//! cold start (process start → first response).
#![allow(clippy::unwrap_used)]

#[path = "lambda/workers.rs"]
mod workers;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "lambda-test-key-0123456789";
const PUBLIC: &str = "https://api.example.com";

/// The Lambda Runtime API (2018-06-01): hands out queued events, collects responses.
#[derive(Clone, Default)]
struct Runtime {
    queue: Arc<Mutex<VecDeque<(String, Value)>>>,
    done: Arc<Mutex<HashMap<String, Value>>>,
    init_errors: Arc<Mutex<Vec<String>>>,
}

async fn next(State(rt): State<Runtime>) -> impl IntoResponse {
    loop {
        if let Some((id, event)) = rt.queue.lock().unwrap().pop_front() {
            let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                .to_string();
            let mut h = HeaderMap::new();
            h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            h.insert("lambda-runtime-deadline-ms", deadline.parse().unwrap());
            h.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:test"
                    .parse()
                    .unwrap(),
            );
            h.insert(
                "lambda-runtime-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793".parse().unwrap(),
            );
            return (h, Json(event));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn respond(
    State(rt): State<Runtime>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let v: Value = serde_json::from_slice(&body)
        .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
    rt.done.lock().unwrap().insert(id, v);
    axum::http::StatusCode::ACCEPTED
}

async fn error(
    State(rt): State<Runtime>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    rt.done
        .lock()
        .unwrap()
        .insert(id, json!({"lambda_error": String::from_utf8_lossy(&body)}));
    axum::http::StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Runtime>, body: axum::body::Bytes) -> impl IntoResponse {
    rt.init_errors
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into());
    axum::http::StatusCode::ACCEPTED
}

struct Function {
    child: Child,
    rt: Runtime,
    started: Instant,
    counter: usize,
    name: &'static str,
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Function {
    /// Sends one API Gateway v2 HTTP event and waits for the function's answer.
    async fn invoke(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: Value,
        body: Option<String>,
    ) -> Value {
        let id = format!("{}-{}", self.name, self.counter + 1);
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
            "headers": headers,
            "requestContext": {"accountId": "123456789012", "apiId": "abc123", "domainName": "api.example.com",
                "domainPrefix": "api", "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7", "userAgent": "test"}, "requestId": id, "routeKey": "$default",
                "stage": "$default", "time": "24/Nov/2026:19:00:00 +0000", "timeEpoch": 1795546800000u64},
            "body": body, "isBase64Encoded": false
        });
        self.handle(event).await
    }

    /// Hands the function one event of any kind and waits for its answer.
    async fn handle(&mut self, event: Value) -> Value {
        self.counter += 1;
        let id = format!("{}-{}", self.name, self.counter);
        self.rt.queue.lock().unwrap().push_back((id.clone(), event));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.rt.done.lock().unwrap().remove(&id) {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status}; init errors: {:?}",
                    self.name,
                    self.rt.init_errors.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: no answer to {id}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct Env {
    vars: Vec<(String, String)>,
    token: String,
    endpoint: String,
    sim: callbot_twilio_sim::Sim,
}

impl Env {
    /// These variables and `more` (which win).
    fn with(&self, more: &[(&str, &str)]) -> Env {
        let mut vars: Vec<_> = self
            .vars
            .iter()
            .filter(|(k, _)| !more.iter().any(|(m, _)| m == k))
            .cloned()
            .collect();
        vars.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Env {
            vars,
            token: self.token.clone(),
            endpoint: self.endpoint.clone(),
            sim: self.sim.clone(),
        }
    }
}

/// How a function's executable is started: a binary of this build, or a packaged `bootstrap`
/// (possibly through an emulator such as `qemu-aarch64-static -L /usr/aarch64-linux-gnu`).
#[derive(Clone)]
struct Exe {
    program: String,
    args: Vec<String>,
}

impl Exe {
    /// The one executable of this build (each function picks its routes by environment).
    fn built(_name: &str) -> Exe {
        Exe {
            program: env!("CARGO_BIN_EXE_lambda").to_owned(),
            args: vec![],
        }
    }

    /// `dir` is `sam build`'s output: `BotsFunction/bootstrap`, `VoiceFunction/bootstrap`, ...
    fn packaged(dir: &str, runner: &str, name: &str) -> Exe {
        let logical = format!("{}{}Function", name[..1].to_uppercase(), &name[1..]);
        let bootstrap = format!("{dir}/{}/bootstrap", artifact_dir(dir, &logical));
        assert!(
            std::path::Path::new(&bootstrap).is_file(),
            "{bootstrap} is missing: scripts/package-lambdas.sh builds it (sam build)"
        );
        let mut words: Vec<String> = runner.split_whitespace().map(str::to_owned).collect();
        words.push(bootstrap);
        Exe {
            program: words.remove(0),
            args: words,
        }
    }

    /// The executable itself (for reports), not the emulator that may run it.
    fn path(&self) -> &str {
        self.args.last().unwrap_or(&self.program)
    }
}

/// A function's artifact directory in `sam build`'s output, from the built template's `CodeUri`
/// (functions built from the same code share one, e.g. `CallsFunction-Shared`).
fn artifact_dir(dir: &str, logical: &str) -> String {
    let template = std::fs::read_to_string(format!("{dir}/template.yaml")).unwrap();
    let mut current = "";
    for line in template.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            current = name;
        }
        if let Some(uri) = line.strip_prefix("      CodeUri: ")
            && current == logical
        {
            return uri.trim().to_owned();
        }
    }
    panic!("{logical} has no CodeUri in {dir}/template.yaml")
}

async fn start(name: &'static str, exe: &Exe, env: &Env) -> Function {
    let rt = Runtime::default();
    let app = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            axum::routing::get(next),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            axum::routing::post(respond),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            axum::routing::post(error),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            axum::routing::post(init_error),
        )
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut cmd = Command::new(&exe.program);
    cmd.args(&exe.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test")
        .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if ["bots", "voice", "calls"].contains(&name) {
        // As the template sets it for the API functions (the workers serve no routes).
        cmd.env("CALLBOT_LAMBDA_ROUTES", name);
    }
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let child = cmd.spawn().unwrap();
    Function {
        child,
        rt,
        started,
        counter: 0,
        name,
    }
}

async fn environment() -> Option<Env> {
    let Ok(endpoint) = std::env::var("CALLBOT_TEST_DYNAMODB_ENDPOINT") else {
        assert!(
            std::env::var("CALLBOT_SKIP_DYNAMODB").is_ok_and(|v| v == "1"),
            "CALLBOT_TEST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh, or CALLBOT_SKIP_DYNAMODB=1 to skip knowingly"
        );
        eprintln!("SKIPPING Lambda function tests: CALLBOT_SKIP_DYNAMODB=1");
        return None;
    };
    // The Twilio REST API, as the functions reach it.
    let token = "lambda-test-twilio-auth-token".to_owned();
    let account = callbot_core::wiring::local_sim_account_sid(&token);
    let sim = callbot_twilio_sim::Sim::new(&account, &token, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let twilio = format!("http://{}", listener.local_addr().unwrap());
    let app = callbot_twilio_sim::rest::router(sim.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let unique = callbot_core::domain::CallSid::generate().as_str()[2..14].to_lowercase();
    // The Twilio secret lives in Secrets Manager (the stand-in), as the template has it: the
    // functions read it at cold start, never from their environment.
    let secret_id = format!("callbot-twilio-{unique}");
    secrets_client(&endpoint)
        .await
        .create_secret()
        .name(&secret_id)
        .secret_string(json!({"auth_token": token}).to_string())
        .send()
        .await
        .unwrap();
    let vars = [
        ("CALLBOT_STORE", "dynamodb".to_owned()),
        ("CALLBOT_DYNAMODB_TABLE", format!("callbot-lambda-{unique}")),
        ("CALLBOT_DYNAMODB_CREATE_TABLE", "1".to_owned()),
        ("CALLBOT_RECORDINGS", "s3".to_owned()),
        ("CALLBOT_S3_BUCKET", format!("callbot-lambda-{unique}")),
        ("CALLBOT_S3_CREATE_BUCKET", "1".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("TWILIO_ACCOUNT_SID", account),
        ("TWILIO_SECRET_ID", secret_id),
        ("TWILIO_API_BASE", twilio),
        ("PUBLIC_BASE_URL", PUBLIC.to_owned()),
        ("STREAM_BASE_URL", "wss://media.example.com".to_owned()),
        ("CALLBOT_API_KEY", KEY.to_owned()),
        (
            "CALLBOT_DATA_DIR",
            std::env::temp_dir()
                .join(format!("callbot-lambda-{unique}"))
                .display()
                .to_string(),
        ),
    ];
    Some(Env {
        vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        token,
        endpoint,
        sim,
    })
}

fn aws(endpoint: &str) -> callbot_core::settings::AwsSettings {
    callbot_core::settings::AwsSettings {
        region: "us-east-1".into(),
        endpoint_url: Some(endpoint.to_owned()),
        access_key_id: Some("test".into()),
        secret_access_key: Some(secrecy::SecretString::from("test".to_owned())),
    }
}

async fn secrets_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&aws(endpoint).sdk_config().await)
}

/// A function whose Twilio secret cannot be read does not start (Lambda reports the failed
/// init and retries the cold start); nothing is served with a missing token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_without_its_twilio_secret_does_not_start() {
    let Some(mut env) = environment().await else {
        return;
    };
    for (k, v) in env.vars.iter_mut() {
        if k == "TWILIO_SECRET_ID" {
            *v = "callbot-twilio-no-such-secret".into();
        }
    }
    let mut f = start("voice", &Exe::built("voice"), &env).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = f.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the function kept running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success());
    assert!(f.rt.done.lock().unwrap().is_empty());
}

fn body(v: &Value) -> Value {
    serde_json::from_str(v["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_function_answers_api_gateway_events() {
    let Some(env) = environment().await else {
        return;
    };
    let exes = ["bots", "voice", "calls"].map(Exe::built);
    exercise(&env, &exes).await;
}

/// The deployment packages themselves (the `bootstrap` in each zip, arm64 under emulation where
/// this machine is not arm64), driven exactly like the binaries above.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_packaged_function_answers_api_gateway_events() {
    let Ok(dir) = std::env::var("CALLBOT_TEST_LAMBDA_PACKAGES") else {
        assert!(
            std::env::var("CALLBOT_SKIP_PACKAGES").is_ok_and(|v| v == "1"),
            "CALLBOT_TEST_LAMBDA_PACKAGES is not set: run scripts/test.sh, or CALLBOT_SKIP_PACKAGES=1 to skip knowingly"
        );
        eprintln!("SKIPPING packaged Lambda function tests: CALLBOT_SKIP_PACKAGES=1");
        return;
    };
    let Some(env) = environment().await else {
        return;
    };
    let runner = std::env::var("CALLBOT_TEST_LAMBDA_RUNNER").unwrap_or_default();
    let exes = ["bots", "voice", "calls"].map(|n| Exe::packaged(&dir, &runner, n));
    exercise(&env, &exes).await;
}

/// Creates a bot through `bots`, answers a signed Twilio webhook through `voice`, reads the call
/// and places an outbound call through `calls`: each function's routes, and only its routes.
async fn exercise(env: &Env, exes: &[Exe; 3]) {
    let auth = json!({"x-api-key": KEY, "content-type": "application/json"});

    // bots: create a bot (buys a number from Twilio), list, health.
    let mut bots = start("bots", &exes[0], env).await;
    let created = bots
        .invoke(
            "POST",
            "/bots",
            auth.clone(),
            Some(
                json!({"goal": "Take reservations", "webhook": "https://example.com/hook"})
                    .to_string(),
            ),
        )
        .await;
    let cold = bots.started.elapsed();
    assert_eq!(created["statusCode"], 201, "{created}");
    let bot = body(&created);
    let (id, number) = (
        bot["id"].as_str().unwrap().to_owned(),
        bot["number"].as_str().unwrap().to_owned(),
    );
    let listed = bots.invoke("GET", "/bots", auth.clone(), None).await;
    assert_eq!(listed["statusCode"], 200);
    assert_eq!(body(&listed)[0]["id"], id.as_str());
    // Test runs need a long-running process: refused here with a clear error; reading the
    // (empty) list works from the store.
    let scenarios = json!({"scenarios": [{"name": "hello", "caller": ["Hi."]}]});
    let test_run = bots
        .invoke(
            "POST",
            &format!("/bots/{id}/tests"),
            auth.clone(),
            Some(scenarios.to_string()),
        )
        .await;
    assert_eq!(test_run["statusCode"], 501, "{test_run}");
    assert_eq!(body(&test_run)["code"], "test_runs_unavailable");
    let runs = bots
        .invoke("GET", &format!("/bots/{id}/tests"), auth.clone(), None)
        .await;
    assert_eq!(runs["statusCode"], 200, "{runs}");
    assert_eq!(body(&runs)["runs"], json!([]));
    let health = bots.invoke("GET", "/healthz", json!({}), None).await;
    assert_eq!(health["statusCode"], 200);
    let unauth = bots.invoke("GET", "/bots", json!({}), None).await;
    assert_eq!(unauth["statusCode"], 401);
    // A route of another function is not served here.
    let elsewhere = bots.invoke("GET", "/calls", auth.clone(), None).await;
    assert_eq!(elsewhere["statusCode"], 404);
    eprintln!(
        "bots ({}): cold start to first response {} ms",
        exes[0].path(),
        cold.as_millis()
    );

    // voice: Twilio's signed answer webhook gets the stream TwiML.
    let mut voice = start("voice", &exes[1], env).await;
    let sid = callbot_core::domain::CallSid::generate().to_string();
    let params = vec![
        ("CallSid".to_owned(), sid.clone()),
        ("From".to_owned(), "+15557654321".to_owned()),
        ("To".to_owned(), number.clone()),
    ];
    let url = format!("{PUBLIC}/voice?bot_id={id}");
    let sig = callbot_core::twilio::signature::compute(env.token.as_bytes(), &url, &params);
    let form = serde_urlencoded::to_string(&params).unwrap();
    let answered = voice
        .invoke(
            "POST",
            &format!("/voice?bot_id={id}"),
            json!({"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig}),
            Some(form.clone()),
        )
        .await;
    let cold = voice.started.elapsed();
    assert_eq!(answered["statusCode"], 200, "{answered}");
    let twiml = answered["body"].as_str().unwrap();
    assert!(
        twiml.contains(&format!(
            "<Stream url=\"wss://media.example.com/stream/{id}\">"
        )),
        "{twiml}"
    );
    let forged = voice
        .invoke("POST", &format!("/voice?bot_id={id}"), json!({"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": "AAAA"}), Some(form))
        .await;
    assert_eq!(forged["statusCode"], 403);
    eprintln!(
        "voice ({}): cold start to first response {} ms",
        exes[1].path(),
        cold.as_millis()
    );

    // calls: the call record written by `voice` is visible; outbound calls go through Twilio.
    let mut calls = start("calls", &exes[2], env).await;
    let shown = calls
        .invoke("GET", &format!("/calls/{sid}"), auth.clone(), None)
        .await;
    let cold = calls.started.elapsed();
    assert_eq!(shown["statusCode"], 200, "{shown}");
    assert_eq!(body(&shown)["direction"], "inbound");
    let placed = calls
        .invoke(
            "POST",
            "/outbound-call",
            auth.clone(),
            Some(json!({"user_id": "u1", "number": "+15552223333"}).to_string()),
        )
        .await;
    assert_eq!(placed["statusCode"], 200, "{placed}");
    let call_sid = body(&placed)["callSid"].as_str().unwrap().to_owned();
    let status = calls
        .invoke(
            "GET",
            &format!("/call-status?callSid={call_sid}&user_id=u1"),
            auth.clone(),
            None,
        )
        .await;
    assert_eq!(body(&status)["success"], true, "{status}");
    eprintln!(
        "calls ({}): cold start to first response {} ms",
        exes[2].path(),
        cold.as_millis()
    );
    workers::campaign_through_the_queue(env, &exes[2], &id).await;
    workers::post_call_through_the_stream(env, exes).await;
}
