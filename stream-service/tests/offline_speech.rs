//! The offline engines for real: espeak-ng speaks, the 8 kHz μ-law phone path carries it, and
//! whisper.cpp with the converted tiny.en model recognises it. Needs `CALLBOT_TEST_MODEL` (set by
//! scripts/test.sh after `callbot models install`); `CALLBOT_SKIP_SPEECH=1` skips knowingly.

#![allow(clippy::unwrap_used)]
use callbot_stream::audio::g711;
use callbot_stream::speech::espeak::Espeak;
use callbot_stream::speech::whisper::{WhisperConfig, WhisperStt};
use callbot_stream::speech::{Cue, SpeechToText, TextToSpeech};

fn model() -> Option<std::path::PathBuf> {
    if std::env::var_os("CALLBOT_SKIP_SPEECH").is_some() {
        eprintln!("CALLBOT_SKIP_SPEECH set: offline speech test skipped");
        return None;
    }
    let path = std::env::var_os("CALLBOT_TEST_MODEL")
        .expect("CALLBOT_TEST_MODEL must point at ggml-tiny.en.bin (run ./scripts/test.sh, or set CALLBOT_SKIP_SPEECH=1)");
    Some(path.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn espeak_through_the_phone_line_is_recognised_by_whisper() {
    let Some(model) = model() else { return };
    let stt = WhisperStt::load(&model, WhisperConfig::default()).unwrap();
    let tts = Espeak::new("espeak-ng");
    tts.available().await.unwrap();
    let phrases = [
        "I would like to book a table for tonight.",
        "My name is John Smith.",
        "Can I change my reservation to Friday?",
    ];
    let mut total = 0.0;
    for p in phrases {
        let speech = tts.synthesize(p, "en-us").await.unwrap();
        assert!(
            speech.ulaw.len() > 8000,
            "{p}: {} bytes of audio",
            speech.ulaw.len()
        );
        let mut pcm = Vec::new();
        g711::decode(&speech.ulaw, &mut pcm);
        let heard = stt.transcribe(pcm, &Cue::none()).await.unwrap();
        let score = callbot_stream::speech::word_overlap(p, &heard.text);
        eprintln!(
            "{p:?} -> {:?} ({score:.2}, {} ms)",
            heard.text,
            heard.engine.as_millis()
        );
        total += score;
    }
    let mean = total / phrases.len() as f64;
    assert!(mean >= 0.6, "mean word overlap {mean:.2}");
    // Silence is not words.
    let silence = stt
        .transcribe(vec![0i16; 16000], &Cue::none())
        .await
        .unwrap();
    assert!(
        callbot_stream::speech::word_overlap("a the and", &silence.text) == 0.0
            || silence.text.len() < 12,
        "{:?}",
        silence.text
    );
}
