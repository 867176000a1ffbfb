//! The stream service's container image, run without a Docker engine: the runtime stage of
//! `infra/Dockerfile.stream` built as a directory by `infra/local/image-rootfs.sh` (its base from
//! Debian's registry, its own RUN lines executed inside), this build's binary and the models put where
//! the stage's COPY lines put them, then the stage's ENTRYPOINT started under `chroot` as its USER
//! with its ENV plus what the ECS task definition adds. Checks it comes up healthy as the non-root
//! user (espeak-ng found, models loaded, store and bucket reached), and drains and exits cleanly on
//! the stage's STOPSIGNAL.
//!
//! Needs root (chroot), `CALLBOT_TEST_IMAGE_ROOTFS`, `CALLBOT_TEST_BASE_MODEL`,
//! `CALLBOT_TEST_TURN_MODEL`, `CALLBOT_TEST_ONNXRUNTIME` and `CALLBOT_TEST_DYNAMODB_ENDPOINT` (all
//! set by scripts/test.sh); `CALLBOT_SKIP_IMAGE=1` skips it
//! knowingly.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the runtime stage (after the last `FROM`) declares.
#[derive(Debug, Default)]
struct Stage {
    env: BTreeMap<String, String>,
    user: String,
    expose: u16,
    stop_signal: String,
    entrypoint: Vec<String>,
    /// `COPY --from=build SRC DEST`.
    copies: Vec<(String, String)>,
}

fn runtime_stage() -> Stage {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/Dockerfile.stream"),
    )
    .unwrap();
    let joined = text.replace("\\\n", " ");
    let last = joined.rfind("\nFROM ").unwrap();
    let mut stage = Stage::default();
    for line in joined[last..].lines().map(str::trim) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair.split_once('=').unwrap();
                    stage.env.insert(k.to_owned(), v.to_owned());
                }
            }
            "USER" => stage.user = rest.trim().to_owned(),
            "EXPOSE" => stage.expose = rest.trim().parse().unwrap(),
            "STOPSIGNAL" => stage.stop_signal = rest.trim().to_owned(),
            "ENTRYPOINT" => stage.entrypoint = serde_json::from_str(rest).unwrap(),
            "COPY" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                assert_eq!(parts[0], "--from=build", "{line}");
                stage
                    .copies
                    .push((parts[1].to_owned(), parts[2].to_owned()));
            }
            _ => {}
        }
    }
    stage
}

/// This build's file for a path the stage copies from the build stage.
fn built_file(src: &str) -> PathBuf {
    if src.ends_with("/target/release/callbot-stream") {
        PathBuf::from(env!("CARGO_BIN_EXE_callbot-stream"))
    } else if src.ends_with("/models/ggml-base.bin") {
        PathBuf::from(std::env::var("CALLBOT_TEST_BASE_MODEL").expect("CALLBOT_TEST_BASE_MODEL"))
    } else if src.ends_with("/models/smart-turn-v3.2-cpu.onnx") {
        PathBuf::from(std::env::var("CALLBOT_TEST_TURN_MODEL").expect("CALLBOT_TEST_TURN_MODEL"))
    } else if src.ends_with("/models/libonnxruntime.so.1.31.1") {
        PathBuf::from(std::env::var("CALLBOT_TEST_ONNXRUNTIME").expect("CALLBOT_TEST_ONNXRUNTIME"))
    } else {
        panic!("the runtime stage copies {src}: teach this test where that file comes from")
    }
}

fn get(port: u16, path: &str) -> Option<u16> {
    request(port, path, "Connection: close\r\n")
}

/// The status of one HTTP/1.1 GET with these header lines.
fn request(port: u16, path: &str, headers: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").ok()?;
    // The status line is enough (a refused upgrade may keep the connection open).
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(s), &mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The user's `uid:gid` as the image's /etc/passwd gives it (Docker resolves `USER` the same way).
fn userspec(rootfs: &Path, user: &str) -> (String, String) {
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == user || f[2] == user)
        .unwrap_or_else(|| panic!("USER {user} is not in the image's /etc/passwd"));
    (entry[2].to_owned(), entry[3].to_owned())
}

/// Kills the service if the test ends early.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_image_runtime_stage_starts_healthy_as_its_user_and_drains_on_stop() {
    let Ok(rootfs) = std::env::var("CALLBOT_TEST_IMAGE_ROOTFS") else {
        assert!(
            std::env::var("CALLBOT_SKIP_IMAGE").is_ok_and(|v| v == "1"),
            "CALLBOT_TEST_IMAGE_ROOTFS is not set: run scripts/test.sh, or CALLBOT_SKIP_IMAGE=1 to skip knowingly"
        );
        eprintln!("SKIPPING the image runtime test: CALLBOT_SKIP_IMAGE=1");
        return;
    };
    let endpoint = std::env::var("CALLBOT_TEST_DYNAMODB_ENDPOINT")
        .expect("CALLBOT_TEST_DYNAMODB_ENDPOINT (the local DynamoDB/S3 stand-in)");
    let rootfs = PathBuf::from(rootfs);
    let stage = runtime_stage();
    assert_eq!(stage.stop_signal, "SIGTERM");

    for (src, dest) in &stage.copies {
        let to = rootfs.join(dest.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&to);
        std::fs::copy(built_file(src), &to).unwrap();
    }
    let (uid, gid) = userspec(&rootfs, &stage.user);
    assert_ne!(uid, "0", "the image must not run as root");

    // The image's ENV, what the ECS task definition adds (store, bucket, Twilio, URLs), and a free
    // port in place of the exposed one (this machine may use it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = stage.env.clone();
    assert_eq!(
        env.get("CALLBOT_ADDR").map(String::as_str),
        Some(format!("0.0.0.0:{}", stage.expose).as_str())
    );
    env.insert("CALLBOT_ADDR".into(), format!("0.0.0.0:{port}"));
    let unique = format!("callbot-image-{}", std::process::id());
    for (k, v) in [
        ("CALLBOT_STORE", "dynamodb"),
        ("CALLBOT_DYNAMODB_TABLE", unique.as_str()),
        ("CALLBOT_DYNAMODB_CREATE_TABLE", "1"),
        ("CALLBOT_RECORDINGS", "s3"),
        ("CALLBOT_S3_BUCKET", unique.as_str()),
        ("CALLBOT_S3_CREATE_BUCKET", "1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
        ("TWILIO_AUTH_TOKEN", "image-test-twilio-auth-token"),
        ("PUBLIC_BASE_URL", "https://api.example.com"),
        ("STREAM_BASE_URL", "wss://media.example.com"),
        ("CALLBOT_DRAIN_SECS", "2"),
    ] {
        env.insert(k.into(), v.into());
    }

    let mut running = Running(
        Command::new("chroot")
            .arg(format!("--userspec={uid}:{gid}"))
            .arg(&rootfs)
            .args(&stage.entrypoint)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .envs(&env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chroot (needs root)"),
    );
    let child = &mut running.0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while get(port, "/healthz") != Some(200) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the image's entry point exited with {status}:\n{err}");
        }
        assert!(Instant::now() < deadline, "not healthy within 90 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // It runs as the image's user, not root.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some(uid.as_str()),
        "{uid_line}"
    );
    // Media-stream handshakes: one signed as Twilio signs it (over the public wss:// URL, with the
    // auth token the task gets) upgrades; an unsigned one is refused before upgrading.
    let bot = callbot_core::domain::BotId::generate();
    let upgrade = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: Upgrade\r\n";
    let path = format!("/stream/{bot}");
    assert_eq!(request(port, &path, upgrade), Some(403));
    let signature = callbot_core::twilio::signature::compute(
        env["TWILIO_AUTH_TOKEN"].as_bytes(),
        &format!("{}{path}", env["STREAM_BASE_URL"]),
        &[],
    );
    let signed = format!("{upgrade}X-Twilio-Signature: {signature}\r\n");
    assert_eq!(request(port, &path, &signed), Some(101));

    let stopped = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(exit.success(), "exit {exit}:\n{logs}");
    // Logs are JSON lines (CloudWatch), and the service said it was listening.
    let first: serde_json::Value = serde_json::from_str(logs.lines().next().unwrap_or("")).unwrap();
    assert!(first.is_object(), "{logs}");
    assert!(logs.contains("stream service listening"), "{logs}");
    // ONNX Runtime's library loads against the image's C library, as its user, and opens the
    // end-of-turn model.
    assert!(logs.contains("end-of-turn model loaded"), "{logs}");
    assert!(
        get(port, "/healthz").is_none(),
        "still answering after exit"
    );
}
