use super::*;

const RATE: f32 = 8000.0;

/// Speech-like sound: twelve harmonics of a pitch gliding around `base` Hz under a
/// syllable-rate envelope.
fn voice(ms: u32, seed: u32, base: f32) -> Vec<i16> {
    let n = (ms * 8) as usize;
    let mut phase = 0.0f32;
    (0..n)
        .map(|i| {
            let t = i as f32 / RATE;
            let f0 = base * (1.0 + 0.25 * (t * 3.0 + seed as f32).sin());
            phase += 2.0 * std::f32::consts::PI * f0 / RATE;
            let voice: f32 = (1..=12).map(|h| (phase * h as f32).sin() / h as f32).sum();
            let syllable = 0.55 + 0.45 * (2.0 * std::f32::consts::PI * 4.0 * t).sin().abs();
            (voice * syllable * 5000.0) as i16
        })
        .collect()
}

fn speech(ms: u32, seed: u32) -> Vec<i16> {
    voice(ms, seed, 120.0)
}

fn tone(hz: f32, ms: u32) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| ((2.0 * std::f32::consts::PI * hz * i as f32 / RATE).sin() * 9000.0) as i16)
        .collect()
}

fn silence(ms: u32) -> Vec<i16> {
    vec![0; (ms * 8) as usize]
}

/// Every verdict with the audio time at which it came.
fn run(parts: &[Vec<i16>]) -> Vec<(Verdict, u128)> {
    let audio: Vec<i16> = parts.concat();
    let mut d = MachineDetector::new(AmdConfig::default());
    let mut out = Vec::new();
    for chunk in audio.chunks_exact(FRAME_SAMPLES) {
        let frame: &[i16; FRAME_SAMPLES] = chunk.try_into().unwrap();
        if let Some(v) = d.push(frame) {
            out.push((v, d.elapsed().as_millis()));
        }
    }
    out
}

fn verdicts(parts: &[Vec<i16>]) -> Vec<Verdict> {
    run(parts).into_iter().map(|(v, _)| v).collect()
}

#[test]
fn a_person_says_hello_and_waits() {
    let v = run(&[silence(400), speech(600, 1), silence(3000)]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0, Verdict::Human);
    // 400 ms before, 600 ms of hello, 800 ms of waiting.
    assert!(v[0].1 <= 1900, "{v:?}");
}

#[test]
fn a_person_with_a_short_pause_inside_their_hello_is_still_a_person() {
    let v = verdicts(&[speech(400, 1), silence(300), speech(500, 2), silence(2000)]);
    assert_eq!(v, vec![Verdict::Human]);
}

#[test]
fn a_recorded_greeting_with_a_beep_is_a_machine_and_its_end_is_the_beep() {
    let v = run(&[
        silence(300),
        speech(1500, 1),
        silence(400),
        speech(2500, 2),
        silence(300),
        tone(1000.0, 500),
        silence(3000),
    ]);
    let kinds: Vec<Verdict> = v.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, vec![Verdict::MachineStart, Verdict::MachineEndBeep]);
    // Decided 2.2 s into the greeting (after 300 ms of silence); its end right after the beep.
    assert!((2500..=2560).contains(&v[0].1), "{v:?}");
    assert!((5500..=5560).contains(&v[1].1), "{v:?}");
}

#[test]
fn beeps_at_other_pitches_end_the_greeting_too() {
    for hz in [440.0, 850.0, 1400.0, 1950.0] {
        let v = verdicts(&[speech(3000, 3), silence(200), tone(hz, 300), silence(1000)]);
        assert_eq!(
            v,
            vec![Verdict::MachineStart, Verdict::MachineEndBeep],
            "{hz} Hz"
        );
    }
}

#[test]
fn a_greeting_that_ends_without_a_beep_ends_in_silence() {
    let v = verdicts(&[speech(4000, 4), silence(4000)]);
    assert_eq!(v, vec![Verdict::MachineStart, Verdict::MachineEndSilence]);
}

#[test]
fn a_bare_beep_is_a_machine_ready_for_a_message() {
    let v = verdicts(&[silence(500), tone(1000.0, 400), silence(500)]);
    assert_eq!(v, vec![Verdict::MachineStart, Verdict::MachineEndBeep]);
}

#[test]
fn a_fax_answer_tone_is_a_fax() {
    assert_eq!(verdicts(&[tone(2100.0, 1500)]), vec![Verdict::Fax]);
    assert_eq!(
        verdicts(&[tone(1100.0, 600), silence(500)]),
        vec![Verdict::Fax]
    );
}

#[test]
fn silence_on_the_line_is_unknown_after_the_limit() {
    let v = run(&[silence(6000)]);
    assert_eq!(v, vec![(Verdict::Unknown, 5000)]);
}

#[test]
fn speech_is_not_a_beep() {
    // Long speech, low or high, never looks like a pure tone.
    for base in [100.0, 180.0, 260.0] {
        let v = verdicts(&[voice(8000, 5, base), silence(3000)]);
        assert_eq!(
            v,
            vec![Verdict::MachineStart, Verdict::MachineEndSilence],
            "{base} Hz"
        );
    }
}

#[test]
fn nothing_after_the_last_verdict() {
    let mut d = MachineDetector::new(AmdConfig::default());
    let audio = [speech(500, 1), silence(1000), speech(3000, 2)].concat();
    let n = audio
        .chunks_exact(FRAME_SAMPLES)
        .filter_map(|c| d.push(c.try_into().unwrap()))
        .count();
    assert_eq!(n, 1);
    assert!(d.is_done());
}
