//! The `callbot` binary as tests run it: `callbot()` with the test's speech and model settings,
//! and `callbot serve` started on port 0 (killed when the handle drops).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

pub fn callbot() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callbot"));
    for var in [
        "CALLBOT_STORE",
        "TWILIO_ACCOUNT_SID",
        "CALLBOT_API_KEY",
        "CALLBOT_ADDR",
    ] {
        cmd.env_remove(var);
    }
    // Real speech when the test model is there (scripts/test.sh), the instant stand-ins otherwise.
    match std::env::var_os("CALLBOT_TEST_MODEL") {
        Some(m) => cmd.env("CALLBOT_WHISPER_MODEL", m),
        None => cmd.env("CALLBOT_SPEECH", "instant"),
    };
    // The embedded LLM (its worker is built next to this binary) when the test model is there.
    match std::env::var_os("CALLBOT_TEST_LLM_MODEL") {
        Some(m) => cmd
            .env("CALLBOT_LLM_MODEL_FILE", m)
            .env_remove("CALLBOT_LLM"),
        None => cmd.env("CALLBOT_LLM", "off"),
    };
    cmd
}

pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_serve(dir: &std::path::Path, dev_key: Option<&str>) -> (Killed, String, Vec<String>) {
    start_serve_with(dir, dev_key, &[])
}

pub fn start_serve_with(
    dir: &std::path::Path,
    dev_key: Option<&str>,
    env: &[(&str, &str)],
) -> (Killed, String, Vec<String>) {
    let mut cmd = callbot();
    cmd.envs(env.iter().copied());
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .env("CALLBOT_DATA_DIR", dir)
        .env("CALLBOT_ALLOW_PRIVATE_WEBHOOKS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(k) = dev_key {
        cmd.env("CALLBOT_API_KEY", k);
    }
    let mut child = cmd.spawn().expect("start callbot serve");
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    for _ in 0..11 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        lines.push(line.trim_end().to_owned());
    }
    let addr = lines[0].rsplit("http://").next().unwrap().to_owned();
    (child, format!("http://{addr}"), lines)
}
