//! The API description matches the server: schemathesis (a property-based API tester) generates
//! requests from `/openapi.json` — valid ones, and ones that break each constraint — and runs
//! every check it has (status codes and headers documented, responses matching their schemas,
//! valid data accepted, invalid data refused, no server errors, auth enforced, stateful links),
//! against the real router — Twilio's webhooks included, each generated request signed like
//! Twilio signs it (`tests/schemathesis/twilio_hooks.py`). Exceptions are listed, with reasons, in
//! `tests/schemathesis/schemathesis.toml`. The output is kept in
//! `target/test-artifacts/schemathesis.log`.

#![allow(clippy::unwrap_used)]
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let Some(python) = common::python() else {
        return;
    };
    let tool = std::path::Path::new(&python).with_file_name("schemathesis");
    assert!(
        tool.exists(),
        "{} is missing: scripts/test.sh installs schemathesis into the venv",
        tool.display()
    );
    let app = common::spawn_app().await;
    let seed = std::env::var("CALLBOT_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let examples = std::env::var("CALLBOT_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "100".into());
    let root = env!("CARGO_MANIFEST_DIR");
    let answers = tempfile::NamedTempFile::new().unwrap();
    let out = tokio::process::Command::new(&tool)
        .current_dir(root)
        .args([
            "--config-file",
            "tests/schemathesis/schemathesis.toml",
            "run",
        ])
        .arg(format!("{}/openapi.json", app.base))
        .args(["--checks", "all", "--no-color", "--workers", "2"])
        .args(["--generation-database", "none"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .arg("--header")
        .arg(format!("X-API-Key: {}", app.api_key))
        // Twilio's webhooks: each generated request signed as Twilio signs it.
        .env("SCHEMATHESIS_HOOKS", "twilio_hooks")
        .env("PYTHONPATH", format!("{root}/tests/schemathesis"))
        .env("CALLBOT_TEST_TWILIO_AUTH_TOKEN", app.twilio_token())
        .env("CALLBOT_TEST_PUBLIC_BASE", app.state.settings.public_base())
        .env("CALLBOT_TEST_TWILIO_LOG", answers.path())
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::path::Path::new(root).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("schemathesis.log"), &text).unwrap();
    let summary: String = text
        .lines()
        .filter(|l| l.contains("generated") || l.contains("passed") || l.contains("failures"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("schemathesis (seed {seed}, {examples} examples per operation):\n{summary}");
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    let generated: u64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" generated")?.0.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        generated > 1000,
        "schemathesis generated {generated} cases:\n{text}"
    );
    // Signed requests reached the handlers: TwiML answers and recorded callbacks, not only 403s.
    let answers = std::fs::read_to_string(answers.path()).unwrap();
    for (route, ok) in [("POST /voice ", "200"), ("POST /voice/status ", "204")] {
        let n = answers
            .lines()
            .filter(|l| l.starts_with(route) && l.ends_with(ok))
            .count();
        assert!(n >= 20, "{route}answered {ok} {n} times:\n{answers}");
    }
}
