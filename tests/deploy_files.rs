//! Offline checks of what cannot be run here (no Docker daemon, no AWS account): the container
//! image and the two templates agree with each other and with the code — every environment
//! variable they set is one the settings read, ports and paths line up, timeouts nest.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every `"UPPER_CASE"` string in the settings modules: the variables the platform reads.
fn settings_vars() -> BTreeSet<String> {
    ["mod.rs", "providers.rs", "rtc.rs"]
        .iter()
        .flat_map(|f| {
            let src = read(&format!("crates/callbot-core/src/settings/{f}"));
            src.split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|s| {
            s.len() > 3
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        })
        .collect()
}

/// Variables set by a template: `NAME: value` under `Variables:` (SAM) and `{Name: NAME, …}` (ECS).
fn template_vars(text: &str) -> BTreeSet<String> {
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
                Some((k, _))
                    if line.starts_with("        ")
                        && k.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
                {
                    out.insert(k.to_owned());
                    continue;
                }
                _ => in_vars = false,
            }
        }
        if let Some(rest) = t.strip_prefix("- {Name: ") {
            let name = rest.split(',').next().unwrap().trim();
            // Environment entries only (cluster settings share the `Name:` shape).
            if name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

/// Variables read by AWS's own libraries, not by our settings.
const AWS_VARS: [&str; 1] = ["AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"];

#[test]
fn templates_only_set_variables_the_settings_read() {
    let known = settings_vars();
    assert!(
        known.contains("CALLBOT_STORE") && known.contains("TWILIO_AUTH_TOKEN"),
        "{known:?}"
    );
    for file in ["sam-template.yaml", "infra/stream-service.yaml"] {
        let vars = template_vars(&read(file));
        assert!(vars.len() >= 8, "{file}: parsed {vars:?}");
        for v in vars {
            assert!(
                known.contains(&v) || AWS_VARS.contains(&v.as_str()),
                "{file} sets {v}, which nothing reads"
            );
        }
    }
    let docker = read("infra/Dockerfile.stream");
    for v in [
        "CALLBOT_ADDR",
        "CALLBOT_DATA_DIR",
        "CALLBOT_WHISPER_MODEL",
        "CALLBOT_LOG_FORMAT",
    ] {
        assert!(
            docker.contains(&format!("{v}=")) && known.contains(v),
            "{v}"
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
    // The binary the build stage builds is the one the entry point runs, and it exists.
    assert!(docker.contains("-p callbot-stream --bin callbot-stream"));
    assert!(docker.contains("ENTRYPOINT [\"/usr/local/bin/callbot-stream\"]"));
    assert!(
        std::path::Path::new(&format!(
            "{}/stream-service/src/main.rs",
            env!("CARGO_MANIFEST_DIR")
        ))
        .exists()
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
