//! Offline checks of what cannot be run here (no Docker daemon, no AWS account): the container
//! image and the two templates agree with each other and with the code — every environment
//! variable they set is one the settings look up (found by building the settings from the file's
//! own values and recording what they read), ports and paths line up, timeouts nest.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A value the settings accept for each variable a deployment file sets, where the file takes
/// it from a parameter, a secret or the platform (`!Ref`, `ValueFrom`): the file's own literal
/// values are used as they are.
fn example_value(name: &str) -> Option<&'static str> {
    Some(match name {
        "CALLBOT_DYNAMODB_TABLE" => "callbot",
        "CALLBOT_S3_BUCKET" => "callbot-recordings",
        "TWILIO_ACCOUNT_SID" => "AC0123456789abcdef0123456789abcdef",
        "TWILIO_AUTH_TOKEN" => "0123456789abcdef0123456789abcdef",
        "TWILIO_SECRET_ID" => "arn:aws:secretsmanager:eu-west-1:123456789012:secret:twilio",
        "PUBLIC_BASE_URL" => "https://api.example.com",
        "STREAM_BASE_URL" => "wss://stream.example.com",
        "CALLBOT_LLM" => "openai",
        "OPENAI_BASE_URL" => "https://api.openai.com/v1",
        "OPENAI_SECRET_ID" => "callbot/openai",
        "OPENAI_API_KEY" => "sk-example",
        "CALLBOT_LLM_MODEL" => "gpt-4o-mini",
        "CALLBOT_VOICE_PROVIDERS" => "polly",
        "CALLBOT_ICE_SERVERS" => r#"[{"urls":["stun:stun.example.com:3478"]}]"#,
        "CALLBOT_MAX_CALL_SECS" => "600",
        "CALLBOT_STT" => "deepgram",
        "DEEPGRAM_API_KEY" => "dg-example",
        "ELEVENLABS_API_KEY" => "el-example",
        "CALLBOT_RTC_PORTS" => "40000-40099",
        "CALLBOT_POLLY" => "on",
        "AWS_REGION" => "eu-west-1",
        "CALLBOT_CAMPAIGN_QUEUE_URL" => {
            "https://sqs.eu-west-1.amazonaws.com/123456789012/campaigns"
        }
        _ => return None,
    })
}

/// What the settings read when built from a deployment file's variables (their literal values,
/// or [`example_value`]): every name they looked up. The file's values must be valid.
fn variables_read(file: &str, vars: &BTreeSet<(String, Option<String>)>) -> BTreeSet<String> {
    let map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| {
            let literal = v.as_deref().filter(|v| !v.starts_with('!'));
            let value = literal
                .or_else(|| example_value(k))
                .unwrap_or_else(|| panic!("{file}: give {k} an example value in this test"));
            (k.clone(), value.trim_matches('"').to_owned())
        })
        .collect();
    let (read, valid) = callbot_core::settings::Settings::variables_read(&map);
    if let Err(e) = valid {
        panic!("{file}: the settings refuse its variables: {e}");
    }
    read
}

/// Variables set by a template, with their literal values: `NAME: value` under `Variables:` (SAM)
/// and `{Name: NAME, Value: value}` (ECS; a secret's `ValueFrom` has no literal value).
fn template_vars(text: &str) -> BTreeSet<(String, Option<String>)> {
    let mut out = BTreeSet::new();
    let mut in_vars = false;
    for line in text.lines() {
        let t = line.trim();
        if t == "Variables:" {
            in_vars = true;
            continue;
        }
        if in_vars {
            match t.split_once(':') {
                Some((k, v))
                    if line.starts_with("        ")
                        && k.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
                {
                    out.insert((k.to_owned(), Some(v.trim().to_owned())));
                    continue;
                }
                _ => in_vars = false,
            }
        }
        // A conditional secret (`- !If [cond, {Name: NAME, ValueFrom: …}, …]`, written as a block).
        if let Some(name) = t.strip_prefix("- Name: ")
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            out.insert((name.to_owned(), None));
        }
        if let Some(rest) = t.strip_prefix("- {Name: ") {
            let (name, rest) = rest.split_once(',').unwrap();
            let name = name.trim();
            let value = rest
                .trim()
                .strip_prefix("Value:")
                .map(|v| v.trim().trim_end_matches('}').trim().to_owned());
            // Environment entries only (cluster settings share the `Name:` shape).
            if name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                out.insert((name.to_owned(), value));
            }
        }
    }
    out
}

/// Variables read by AWS's own libraries, not by our settings.
const AWS_VARS: [&str; 1] = ["AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"];

#[test]
fn templates_only_set_variables_the_settings_read() {
    for file in ["sam-template.yaml", "infra/stream-service.yaml"] {
        let vars = template_vars(&read(file));
        assert!(vars.len() >= 8, "{file}: parsed {vars:?}");
        let ours: BTreeSet<_> = vars
            .into_iter()
            .filter(|(k, _)| !AWS_VARS.contains(&k.as_str()))
            .collect();
        let known = variables_read(file, &ours);
        for (v, _) in ours {
            assert!(known.contains(&v), "{file} sets {v}, which nothing reads");
        }
    }
    // The image's defaults: values the settings accept, each one read.
    let docker = read("infra/Dockerfile.stream");
    let env = docker.split("\nENV CALLBOT_ADDR=").nth(1).unwrap();
    let mut vars = BTreeSet::new();
    for part in format!("CALLBOT_ADDR={env}").split_whitespace() {
        match part.split_once('=') {
            Some((k, v)) if k.starts_with("CALLBOT_") => {
                vars.insert((k.to_owned(), Some(v.to_owned())));
            }
            Some(_) | None if part == "\\" => continue,
            _ => break,
        }
    }
    assert!(vars.len() >= 4, "{vars:?}");
    let known = variables_read("infra/Dockerfile.stream", &vars);
    for (v, _) in vars {
        assert!(
            known.contains(&v),
            "the image sets {v}, which nothing reads"
        );
    }
}

#[test]
fn image_and_ecs_template_line_up() {
    let docker = read("infra/Dockerfile.stream");
    let ecs = read("infra/stream-service.yaml");
    assert!(
        docker.matches("\nFROM ").count() + usize::from(docker.starts_with("FROM ")) >= 2,
        "multi-stage"
    );
    let user = docker.lines().rfind(|l| l.starts_with("USER ")).unwrap();
    assert_ne!(
        user.trim_start_matches("USER ").trim(),
        "0",
        "runs as non-root"
    );
    assert!(!user.contains("root"));
    // The binary the build stage builds is the one the entry point runs, and the package has it.
    assert!(docker.contains("-p callbot-stream --bin callbot-stream"));
    assert!(docker.contains("ENTRYPOINT [\"/usr/local/bin/callbot-stream\"]"));
    let meta = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap();
    let stream = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "callbot-stream")
        .expect("the callbot-stream package");
    assert!(
        stream["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "callbot-stream"
                && t["kind"].as_array().unwrap().iter().any(|k| k == "bin")),
        "the package builds the binary the image runs: {}",
        stream["targets"]
    );
    // The model is where the environment says.
    let model_env = docker
        .split("CALLBOT_WHISPER_MODEL=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        docker
            .lines()
            .any(|l| l.starts_with("COPY --from=build") && l.trim_end().ends_with(model_env)),
        "{model_env}"
    );
    // One port everywhere.
    assert!(docker.contains("CALLBOT_ADDR=0.0.0.0:8080") && docker.contains("EXPOSE 8080"));
    assert!(ecs.contains("ContainerPort: 8080") && ecs.contains("Port: 8080"));
    assert!(ecs.contains("HealthCheckPath: /healthz"));
    // Timeouts nest: a call fits in the load balancer's idle timeout; the engine's drain ends
    // before ECS kills the container.
    let num = |key: &str| -> u64 {
        ecs.split(key)
            .nth(1)
            .unwrap()
            .trim_start_matches([':', ' ', '"'])
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let idle: u64 = ecs
        .split("idle_timeout.timeout_seconds, Value: \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let max_call = ecs
        .split("MaxCallSeconds:")
        .nth(1)
        .unwrap()
        .split("Default:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(
        idle > max_call,
        "idle timeout {idle} must exceed the longest call {max_call}"
    );
    let drain: u64 = ecs
        .split("CALLBOT_DRAIN_SECS, Value: \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let stop = num("StopTimeout");
    assert!(
        drain + 10 < stop,
        "drain {drain} s must end before the stop timeout {stop} s"
    );
}
