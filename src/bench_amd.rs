//! `callbot bench amd`: the engine's answering-machine detector on synthetic calls through the
//! phone path (8 kHz μ-law, decoded as the engine decodes it, with line noise): recorded
//! greetings spoken by espeak-ng in several voices and rates and ended by beeps of several
//! pitches, and people answering the way they do ("Hello?", "Yes, this is Ana.") and then
//! waiting, plus the test suite's own answering callers. Prints the detection rate, the time to
//! each verdict and every false "machine" given to a person.

use callbot_stream::audio::amd::{AmdConfig, MachineDetector, Verdict};
use callbot_stream::audio::espeak::Espeak;
use callbot_stream::audio::vad::FRAME_SAMPLES;
use callbot_stream::audio::{g711, to_phone};

const GREETINGS: [&str; 5] = [
    "Hi, you've reached Ana Miller. I can't take your call right now. Please leave a message after the tone.",
    "The person you are calling is not available. At the tone, please record your message. When you are finished, hang up.",
    "Hello, this is Bella Vista Dental. Our office is closed. Please leave your name and number and we will call you back.",
    "Hey, it's Sam. Leave a message.",
    "You have reached five five five, zero one two three. Please leave a message.",
];
const ANSWERS: [&str; 7] = [
    "Hello?",
    "Hi, this is Ana.",
    "Yes?",
    "Hello, who's calling?",
    "Bella Vista, how can I help?",
    "Speaking.",
    "Hello, Sam here.",
];
const VOICES: [&str; 2] = ["en-us", "en-gb"];
const RATES: [u32; 2] = [150, 185];
/// Beeps: pitch (Hz) and length (ms).
const BEEPS: [(f32, u32); 4] = [(1000.0, 500), (850.0, 400), (1400.0, 300), (440.0, 600)];

fn ms(n: u32) -> usize {
    n as usize * 8
}

fn tone(hz: f32, len_ms: u32) -> Vec<i16> {
    (0..ms(len_ms))
        .map(|i| ((2.0 * std::f32::consts::PI * hz * i as f32 / 8000.0).sin() * 8000.0) as i16)
        .collect()
}

/// White noise at about -45 dBFS (a quiet line), deterministic.
pub(crate) fn add_line_noise(pcm: &mut [i16], seed: u32) {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    for s in pcm {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = ((x % 361) as i32) - 180;
        *s = (i32::from(*s) + n).clamp(-32768, 32767) as i16;
    }
}

/// Every verdict with the audio time (ms) it came at, the line's audio passed through μ-law.
fn detect(mut pcm: Vec<i16>, seed: u32) -> Vec<(Verdict, u64)> {
    add_line_noise(&mut pcm, seed);
    let mut ulaw = Vec::with_capacity(pcm.len());
    g711::encode(&pcm, &mut ulaw);
    let mut d = MachineDetector::new(AmdConfig::default());
    let mut frame = [0i16; FRAME_SAMPLES];
    let mut out = Vec::new();
    for chunk in ulaw.chunks_exact(FRAME_SAMPLES) {
        for (o, &b) in frame.iter_mut().zip(chunk) {
            *o = g711::decode_sample(b);
        }
        if let Some(v) = d.push(&frame) {
            out.push((v, d.elapsed().as_millis() as u64));
        }
    }
    out
}

async fn speech(tts: &Espeak, text: &str, voice: &str) -> anyhow::Result<Vec<i16>> {
    let (pcm, rate) = tts.pcm(text, voice).await?;
    let ulaw = to_phone(&pcm, rate);
    let mut out = Vec::with_capacity(ulaw.len());
    g711::decode(&ulaw, &mut out);
    Ok(out)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Machines: (first verdict is a machine, end found, the end's kind, time to the first verdict
/// from the first sound, time from the beep's end to the end verdict).
#[derive(Default)]
struct Tally {
    machines: usize,
    detected: usize,
    ended_beep: usize,
    ended_other: usize,
    first_ms: Vec<u64>,
    after_beep_ms: Vec<u64>,
    misses: Vec<String>,
    people: usize,
    human: usize,
    unknown: usize,
    false_machine: Vec<String>,
    human_ms: Vec<u64>,
}

pub async fn amd() -> anyhow::Result<Vec<String>> {
    let mut tts = Espeak::new("espeak-ng");
    tts.available().await?;
    let lead = 500;
    let mut t = Tally::default();
    let mut seed = 1;
    for rate in RATES {
        tts.rate = rate;
        for voice in VOICES {
            for (i, text) in GREETINGS.iter().enumerate() {
                let (hz, beep_ms) = BEEPS[(i + seed as usize) % BEEPS.len()];
                let said = speech(&tts, text, voice).await?;
                let beep_end = lead + (said.len() / 8) as u32 + 300 + beep_ms;
                let mut pcm = vec![0i16; ms(lead)];
                pcm.extend(said);
                pcm.extend(vec![0i16; ms(300)]);
                pcm.extend(tone(hz, beep_ms));
                pcm.extend(vec![0i16; ms(3000)]);
                seed += 1;
                let verdicts = detect(pcm, seed);
                t.machines += 1;
                let label = format!("{voice} {rate} wpm {hz} Hz: {text:.40}");
                match verdicts.first() {
                    Some((v, at)) if v.is_machine() => {
                        t.detected += 1;
                        t.first_ms.push(at.saturating_sub(u64::from(lead)));
                    }
                    other => t.misses.push(format!("{label} → {other:?}")),
                }
                match verdicts.get(1) {
                    Some((Verdict::MachineEndBeep, at)) => {
                        t.ended_beep += 1;
                        t.after_beep_ms.push(at.saturating_sub(u64::from(beep_end)));
                    }
                    Some((v, _)) if v.is_machine() => t.ended_other += 1,
                    _ => {}
                }
            }
            for text in ANSWERS {
                let said = speech(&tts, text, voice).await?;
                let mut pcm = vec![0i16; ms(lead)];
                pcm.extend(said);
                pcm.extend(vec![0i16; ms(3000)]);
                seed += 1;
                person(
                    &mut t,
                    pcm,
                    seed,
                    &format!("{voice} {rate} wpm: {text}"),
                    lead,
                );
            }
        }
    }
    // The test suite's answering callers (a voiced tone of 700 and 800 ms, then waiting).
    for len in [700u64, 800] {
        let mut ulaw = vec![g711::SILENCE; ms(lead)];
        ulaw.extend(callbot_stream::speech::instant::voiced_tone(len));
        ulaw.extend(vec![g711::SILENCE; ms(3000)]);
        let mut pcm = Vec::new();
        g711::decode(&ulaw, &mut pcm);
        seed += 1;
        person(&mut t, pcm, seed, &format!("test caller, {len} ms"), lead);
    }
    Ok(report(t))
}

fn person(t: &mut Tally, pcm: Vec<i16>, seed: u32, label: &str, lead: u32) {
    t.people += 1;
    match detect(pcm, seed).first() {
        Some((Verdict::Human, at)) => {
            t.human += 1;
            t.human_ms.push(at.saturating_sub(u64::from(lead)));
        }
        Some((v, _)) if v.is_machine() => t.false_machine.push(format!("{label} → {v:?}")),
        _ => t.unknown += 1,
    }
}

fn report(mut t: Tally) -> Vec<String> {
    t.first_ms.sort_unstable();
    t.after_beep_ms.sort_unstable();
    t.human_ms.sort_unstable();
    let mut lines = vec![
        format!(
            "callbot bench amd: the engine's detector on {} recorded greetings (espeak-ng, {} voices × {} rates × {} texts, beeps of 440-1,400 Hz) and {} people answering; 8 kHz μ-law with line noise",
            t.machines,
            VOICES.len(),
            RATES.len(),
            GREETINGS.len(),
            t.people
        ),
        format!(
            "machines detected    {}/{} ({:.0} %), in p50 {} ms / p95 {} ms from the first sound",
            t.detected,
            t.machines,
            100.0 * t.detected as f64 / t.machines.max(1) as f64,
            pct(&t.first_ms, 0.5),
            pct(&t.first_ms, 0.95)
        ),
        format!(
            "greeting end         {} by the beep, {} otherwise; beep heard p50 {} ms / p95 {} ms after it ended",
            t.ended_beep,
            t.ended_other,
            pct(&t.after_beep_ms, 0.5),
            pct(&t.after_beep_ms, 0.95)
        ),
        format!(
            "people               {}/{} human (in p50 {} ms / p95 {} ms from the first sound), {} unknown, {} taken for a machine",
            t.human,
            t.people,
            pct(&t.human_ms, 0.5),
            pct(&t.human_ms, 0.95),
            t.unknown,
            t.false_machine.len()
        ),
    ];
    lines.extend(t.misses.iter().map(|m| format!("  missed machine: {m}")));
    lines.extend(
        t.false_machine
            .iter()
            .map(|m| format!("  FALSE machine: {m}")),
    );
    lines
}
