//! `callbot bench quality` for real, on a short set: espeak-ng speaks, the phone path carries it,
//! whisper base (the default recogniser) hears it with the conversation's cue, the end-of-turn
//! model judges it, and the report's figures are what the audio makes them. Needs `CALLBOT_TEST_BASE_MODEL` (scripts/test.sh sets
//! it); `CALLBOT_SKIP_SPEECH=1` skips knowingly. And `callbot bench answers` on the embedded
//! model (`CALLBOT_TEST_LLM_MODEL`).

#![allow(clippy::unwrap_used)]
mod common;

use callbot::quality::{QualityOptions, quality, turns::Rule};
use std::time::Duration;

fn base_model() -> Option<std::path::PathBuf> {
    if std::env::var_os("CALLBOT_SKIP_SPEECH").is_some() {
        eprintln!("CALLBOT_SKIP_SPEECH set: quality benchmark test skipped");
        return None;
    }
    let path = std::env::var_os("CALLBOT_TEST_BASE_MODEL").expect(
        "CALLBOT_TEST_BASE_MODEL must point at ggml-base.bin (./scripts/test.sh sets it); CALLBOT_SKIP_SPEECH=1 skips knowingly",
    );
    Some(path.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quality_benchmark_hears_a_short_set_and_a_recording() {
    let Some(model) = base_model() else { return };
    // A recording given as a WAV file with its words beside it.
    let wavs = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("espeak-ng")
        .args([
            "-v",
            "en-gb",
            "--stdout",
            "Do you have a table for two tonight?",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(wavs.path().join("table.wav"), &out.stdout).unwrap();
    std::fs::write(
        wavs.path().join("table.txt"),
        "Do you have a table for 2 tonight?",
    )
    .unwrap();

    let report = quality(QualityOptions {
        model,
        set: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/quality/short-set.yaml").into()),
        wavs: Some(wavs.path().to_path_buf()),
        decoding: Default::default(),
        threads: 2,
        voices: vec![],
        usual: Duration::from_millis(700),
        verbose: true,
        turn_model: Some((
            std::env::var_os("CALLBOT_TEST_ONNXRUNTIME")
                .expect("CALLBOT_TEST_ONNXRUNTIME (./scripts/test.sh sets it)")
                .into(),
            std::env::var_os("CALLBOT_TEST_TURN_MODEL")
                .expect("CALLBOT_TEST_TURN_MODEL (./scripts/test.sh sets it)")
                .into(),
        )),
    })
    .await
    .unwrap();
    for line in &report.lines {
        eprintln!("{line}");
    }
    // Six utterances heard: five said by espeak-ng, one recording.
    assert_eq!(
        report.lines.iter().filter(|l| l.contains(" -> ")).count(),
        6
    );
    assert!(
        report.by_category.contains_key("wav"),
        "{:?}",
        report.by_category
    );
    // Clear booking phrases on the phone line: most words right (measured: about 10 %).
    assert!(report.wer < 0.35, "word error rate {:.2}", report.wer);
    assert!(report.recognition_p50 > Duration::ZERO);
    // The 900 ms pause inside the phone number outlasts a fixed 700 ms silence: that rule cuts
    // the caller off there, and no utterance without a pause is cut.
    let silence = report
        .rules
        .iter()
        .find(|r| r.rule == Rule::Silence)
        .unwrap();
    assert_eq!(silence.cut_pauses, (1, 1), "{silence:?}");
    assert_eq!(silence.cut_others, (0, 5), "{silence:?}");
    // A turn never ends before the silence it waits for.
    assert!(
        silence.wait_p50 >= Duration::from_millis(700),
        "{silence:?}"
    );
    let heuristic = report
        .rules
        .iter()
        .find(|r| r.rule == Rule::Heuristic)
        .unwrap();
    assert_eq!(heuristic.cut_others.0, 0, "{heuristic:?}");
    // The end-of-turn model judged every utterance at least once, and its rules were scored.
    let verdicts = report
        .lines
        .iter()
        .find(|l| l.starts_with("turn model verdicts"))
        .unwrap();
    assert!(verdicts.contains("/6;"), "{verdicts}");
    for rule in [Rule::ModelOnly, Rule::Model] {
        let r = report.rules.iter().find(|r| r.rule == rule).unwrap();
        assert_eq!(r.cut_pauses.1 + r.cut_others.1, 6, "{r:?}");
    }
}

/// `callbot bench answers` on the embedded model: every case of a set is asked through the
/// engine's prompt and tools and scored, with the model's speed (the scores are the model's; what
/// is checked here is that each case was answered, judged and counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_answer_evaluation_asks_and_scores_every_case() {
    let Some((model, worker)) = common::embedded_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set.yaml");
    std::fs::write(
        &set,
        r#"bots:
  bella: {goal: Take table reservations for Bella Vista, context: "Open 5 PM to 10 PM, closed on Mondays."}
cases:
  - {id: hours, bot: bella, category: context, caller: "What time do you open?", expect: {mentions: [["5", "five"]]}}
  - {id: bye, bot: bella, category: end, caller: "No thanks, bye.", expect: {tool: {name: end_call}}}
"#,
    )
    .unwrap();
    let lines = callbot::quality::answers::run(&callbot::quality::answers::AnswersOptions {
        models: vec![model],
        worker: Some(worker),
        threads: 2,
        set: Some(set),
        verbose: true,
    })
    .await
    .unwrap();
    let text = lines.join("\n");
    assert!(lines[0].contains("2 cases, 1 bots"), "{text}");
    for id in ["hours", "bye"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!(" {id} ")) && l.contains(" -> ")),
            "{id} answered and judged: {text}"
        );
    }
    let summary = lines.iter().find(|l| l.contains("cases passed")).unwrap();
    assert!(summary.contains("/2  checks "), "{summary}");
    let ttft: f64 = summary
        .split("time to first token p50 ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(ttft > 0.0, "{summary}");
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("end (expected)")),
        "{text}"
    );
}
