//! `callbot bench quality`: how well a call hears its caller. A fixed set of caller utterances
//! (`bench/quality/utterances.yaml`, plus any WAV files given) is spoken by several espeak-ng
//! voices and rates, carried over the phone path (8 kHz μ-law with line noise) and heard as a
//! call hears it: the endpointer, partial and probe decodes on the configured recogniser with
//! the conversation's cue. Prints the word error rate per category and voice (numbers
//! normalised), end-of-turn decisions per rule (premature cut-offs, the wait after a finished
//! sentence) and recognition time per utterance.

pub mod answers;
pub mod set;
pub mod turns;
pub mod wer;

use anyhow::Context as _;
use callbot_stream::audio::espeak::Espeak;
use callbot_stream::audio::{g711, to_phone};
use callbot_stream::speech::turn_model::TurnModel;
use callbot_stream::speech::whisper::{Decoding, WhisperConfig, WhisperStt};
use callbot_stream::speech::{Cue, SpeechToText};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use turns::{Rule, Track};

#[derive(Debug, Clone)]
pub struct QualityOptions {
    pub model: PathBuf,
    /// Another utterance set instead of the built-in one.
    pub set: Option<PathBuf>,
    /// A directory of `NAME.wav` recordings, each with its expected words in `NAME.txt`.
    pub wavs: Option<PathBuf>,
    pub decoding: Decoding,
    pub threads: usize,
    /// Only these voices of the set (all when empty).
    pub voices: Vec<String>,
    /// The bot's usual end-of-turn silence.
    pub usual: Duration,
    /// The end-of-turn model (ONNX Runtime's library, the model), for its two rules.
    pub turn_model: Option<(PathBuf, PathBuf)>,
    /// One line per utterance and voice.
    pub verbose: bool,
}

/// One utterance as heard.
#[derive(Debug)]
struct Heard {
    id: String,
    category: String,
    voice: String,
    expected: String,
    text: String,
    errors: wer::Errors,
    /// The decode of the whole utterance.
    took: Duration,
    speech: Duration,
    pauses: bool,
    ended: Vec<(Rule, Option<turns::Ended>)>,
    /// The turn model's time per verdict, and its verdicts at the end and inside the utterance.
    judged: Vec<Duration>,
    at_end: Vec<bool>,
    inside: Vec<bool>,
}

const RULES: [Rule; 4] = [Rule::Silence, Rule::Heuristic, Rule::ModelOnly, Rule::Model];

/// A line's audio to be heard: what was said, with what expectations.
struct Item {
    id: String,
    category: String,
    voice: String,
    expected: String,
    cue: Cue,
    pauses: bool,
    pcm: Vec<i16>,
}

/// The figures, and the lines that print them.
#[derive(Debug, Clone)]
pub struct Report {
    pub lines: Vec<String>,
    /// Word error rate over everything heard (0-1), and per category.
    pub wer: f64,
    pub by_category: BTreeMap<String, f64>,
    pub recognition_p50: Duration,
    pub rules: Vec<RuleFigures>,
}

/// How one end-of-turn rule did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleFigures {
    pub rule: Rule,
    /// Utterances with a mid-sentence pause whose turn ended in it, of how many.
    pub cut_pauses: (usize, usize),
    /// Other utterances cut off, of how many.
    pub cut_others: (usize, usize),
    pub wait_p50: Duration,
    pub wait_p95: Duration,
}

pub async fn quality(opts: QualityOptions) -> anyhow::Result<Report> {
    let set = match &opts.set {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => set::BUILT_IN.to_owned(),
    };
    let set = set::parse(&set).context("the utterance set")?;
    let items = items(&set, &opts).await?;
    anyhow::ensure!(
        !items.is_empty(),
        "nothing to hear (no voice of the set matches --voice)"
    );
    let model = opts.model.clone();
    let cfg = WhisperConfig {
        workers: 1,
        threads_per_worker: opts.threads.max(1),
        queue: 2,
        decoding: opts.decoding,
    };
    let stt = tokio::task::spawn_blocking(move || WhisperStt::load(&model, cfg))
        .await
        .context("loading the model")?
        .with_context(|| format!("loading {}", opts.model.display()))?;
    let stt = Arc::new(stt);
    let judge = match opts.turn_model.clone() {
        Some((runtime, onnx)) => Some(
            tokio::task::spawn_blocking(move || TurnModel::load(&runtime, &onnx))
                .await
                .context("loading the turn model")?
                .context("loading the turn model")?,
        ),
        None => None,
    };
    let usual = opts.usual;
    let handle = tokio::runtime::Handle::current();
    let heard = tokio::task::spawn_blocking(move || {
        items
            .into_iter()
            .map(|item| hear(&handle, &stt, judge.as_ref(), item, usual))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await
    .context("the benchmark task")??;
    Ok(report(&opts, &heard))
}

/// Every utterance in every chosen voice, and the WAV files, on the phone path.
async fn items(set: &set::Set, opts: &QualityOptions) -> anyhow::Result<Vec<Item>> {
    let mut espeak = Espeak::new("espeak-ng");
    espeak
        .available()
        .await
        .context("espeak-ng speaks the utterances")?;
    let mut out = Vec::new();
    let voices = set.voices.iter().filter(|v| {
        opts.voices.is_empty() || opts.voices.iter().any(|o| *o == v.voice || *o == v.label())
    });
    for (vi, v) in voices.enumerate() {
        espeak.rate = v.rate;
        for (ui, u) in set.utterances.iter().enumerate() {
            let mut pcm = silence(400);
            for (i, part) in u.parts().into_iter().enumerate() {
                if i > 0 {
                    pcm.extend(silence(u.pause_ms.unwrap_or(0) as usize));
                }
                let (speech, rate) = espeak
                    .pcm(part, &v.voice)
                    .await
                    .with_context(|| format!("espeak-ng {} saying {part:?}", v.voice))?;
                let mut line = Vec::new();
                g711::decode(&to_phone(&speech, rate), &mut line);
                pcm.extend(line);
            }
            pcm.extend(silence(2500));
            out.push(Item {
                id: u.id.clone(),
                category: u.category.clone(),
                voice: v.label(),
                expected: u.expected(),
                cue: Cue::for_turn(&set.bot.goal, &set.bot.context, &u.asked),
                pauses: u.pauses(),
                pcm: phone_line(pcm, (vi * 1000 + ui) as u32),
            });
        }
    }
    if let Some(dir) = &opts.wavs {
        out.extend(wav_items(dir, set)?);
    }
    Ok(out)
}

/// Recordings from a directory: `NAME.wav` (any rate, mono) with its words in `NAME.txt`.
fn wav_items(dir: &std::path::Path, set: &set::Set) -> anyhow::Result<Vec<Item>> {
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    names.sort();
    for (i, wav) in names.into_iter().enumerate() {
        let txt = wav.with_extension("txt");
        let expected = std::fs::read_to_string(&txt)
            .with_context(|| format!("{} needs its words in {}", wav.display(), txt.display()))?;
        let bytes = std::fs::read(&wav).with_context(|| format!("reading {}", wav.display()))?;
        let (pcm, rate) = callbot_stream::audio::wav::read_mono(&bytes)
            .with_context(|| format!("{} is not a mono PCM WAV file", wav.display()))?;
        let mut line = silence(400);
        g711::decode(&to_phone(&pcm, rate), &mut line);
        line.extend(silence(2500));
        let id = wav
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Item {
            id,
            category: "wav".into(),
            voice: "recorded".into(),
            expected: expected.trim().to_owned(),
            cue: Cue::for_turn(&set.bot.goal, &set.bot.context, ""),
            pauses: false,
            pcm: phone_line(line, 90_000 + i as u32),
        });
    }
    Ok(out)
}

fn silence(ms: usize) -> Vec<i16> {
    vec![0; ms * 8]
}

/// Line noise, then μ-law both ways, as the call receives it.
fn phone_line(mut pcm: Vec<i16>, seed: u32) -> Vec<i16> {
    crate::bench_amd::add_line_noise(&mut pcm, seed);
    let mut ulaw = Vec::with_capacity(pcm.len());
    g711::encode(&pcm, &mut ulaw);
    let mut out = Vec::with_capacity(ulaw.len());
    g711::decode(&ulaw, &mut out);
    out
}

/// Hears one item as a call would (blocking: decodes run on the recogniser's worker).
fn hear(
    handle: &tokio::runtime::Handle,
    stt: &WhisperStt,
    model: Option<&TurnModel>,
    item: Item,
    usual: Duration,
) -> anyhow::Result<Heard> {
    let mut judged = Vec::new();
    let mut judge_failed = None;
    let judge = |audio: &[i16]| {
        let m = model?;
        match handle.block_on(m.judge(audio.to_vec())) {
            Ok(v) => {
                judged.push(v.took);
                Some((v.finished(), v.took))
            }
            Err(e) => {
                judge_failed = Some(e);
                None
            }
        }
    };
    let mut failed = None;
    let mut decode =
        |audio: &[i16]| match handle.block_on(stt.transcribe(audio.to_vec(), &item.cue)) {
            Ok(t) => (t.text, t.engine),
            Err(e) => {
                failed = Some(e);
                (String::new(), Duration::ZERO)
            }
        };
    let track = Track::replay(&item.pcm, &mut decode, judge);
    if let Some(e) = judge_failed {
        anyhow::bail!("the turn model on {} ({}): {e}", item.id, item.voice);
    }
    let (text, took) = match track.final_decode() {
        Some(d) => (d.text.clone(), d.took),
        None if track.heard_speech() => decode(track.audio()),
        None => (String::new(), Duration::ZERO),
    };
    if let Some(e) = failed {
        anyhow::bail!("recognising {} ({}): {e}", item.id, item.voice);
    }
    let (at_end, inside) = track.verdicts_split();
    let ended = RULES
        .iter()
        .filter(|&&r| model.is_some() || !matches!(r, Rule::ModelOnly | Rule::Model))
        .map(|&r| (r, track.decide(r, usual, took)))
        .collect();
    Ok(Heard {
        errors: wer::errors(&item.expected, &text),
        speech: track.speech(),
        id: item.id,
        category: item.category,
        voice: item.voice,
        expected: item.expected,
        text,
        took,
        pauses: item.pauses,
        ended,
        judged,
        at_end,
        inside,
    })
}

fn pct(e: &wer::Errors) -> String {
    format!(
        "{:5.1} %  ({} of {} words)",
        e.rate() * 100.0,
        e.edits(),
        e.words
    )
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[(((v.len() - 1) as f64) * p).round() as usize]
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn report(opts: &QualityOptions, heard: &[Heard]) -> Report {
    let mut lines = vec![format!(
        "callbot bench quality: whisper.cpp {}, beam {}, prompt {}, context +{} ms, {} thread(s); {} utterances heard ({} voices of the set{})",
        opts.model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        opts.decoding.beam,
        if opts.decoding.prompt { "on" } else { "off" },
        opts.decoding.context_pad_ms,
        opts.threads,
        heard.len(),
        heard
            .iter()
            .map(|h| h.voice.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        if opts.wavs.is_some() {
            ", with recordings"
        } else {
            ""
        },
    )];
    let mut total = wer::Errors::default();
    let mut by_category: BTreeMap<&str, wer::Errors> = BTreeMap::new();
    let mut by_voice: BTreeMap<&str, wer::Errors> = BTreeMap::new();
    for h in heard {
        total += h.errors;
        *by_category.entry(&h.category).or_default() += h.errors;
        *by_voice.entry(&h.voice).or_default() += h.errors;
    }
    lines.push(format!("word error rate      {}", pct(&total)));
    for (c, e) in &by_category {
        lines.push(format!("  {c:<18} {}", pct(e)));
    }
    for (v, e) in &by_voice {
        lines.push(format!("  voice {v:<12} {}", pct(e)));
    }
    let took: Vec<Duration> = heard.iter().map(|h| h.took).collect();
    let recognition_p50 = percentile(took.clone(), 0.5);
    let speech: f64 =
        heard.iter().map(|h| h.speech.as_secs_f64()).sum::<f64>() / heard.len().max(1) as f64;
    let per_sec = heard.iter().map(|h| h.took.as_secs_f64()).sum::<f64>()
        / heard
            .iter()
            .map(|h| h.speech.as_secs_f64())
            .sum::<f64>()
            .max(1e-9);
    lines.push(format!(
        "recognition          p50 {} ms  p95 {} ms  max {} ms per utterance (mean {speech:.1} s of audio; {per_sec:.3} s per second of audio)",
        ms(percentile(took.clone(), 0.5)),
        ms(percentile(took.clone(), 0.95)),
        ms(percentile(took, 1.0)),
    ));
    let with_pause = heard.iter().filter(|h| h.pauses).count();
    let mut rules = Vec::new();
    let judged: Vec<Duration> = heard.iter().flat_map(|h| h.judged.clone()).collect();
    if !judged.is_empty() {
        lines.push(format!(
            "turn model           p50 {} ms  p95 {} ms per verdict ({} verdicts; features and inference, one thread)",
            ms(percentile(judged.clone(), 0.5)),
            ms(percentile(judged.clone(), 0.95)),
            judged.len()
        ));
        let count = |v: Vec<bool>, want: bool| (v.iter().filter(|&&f| f == want).count(), v.len());
        let (end_ok, ends) = count(heard.iter().flat_map(|h| h.at_end.clone()).collect(), true);
        let (in_ok, ins) = count(heard.iter().flat_map(|h| h.inside.clone()).collect(), false);
        lines.push(format!(
            "turn model verdicts  finished after the last word {end_ok}/{ends}; not finished at a pause inside {in_ok}/{ins}"
        ));
    }
    for rule in RULES {
        if !heard
            .iter()
            .any(|h| h.ended.iter().any(|(r, _)| *r == rule))
        {
            continue;
        }
        let ended = |h: &Heard| {
            h.ended
                .iter()
                .find(|(r, _)| *r == rule)
                .and_then(|(_, e)| *e)
        };
        let cut_pause = heard
            .iter()
            .filter(|h| h.pauses && ended(h).is_some_and(|e| e.cut_off))
            .count();
        let cut_other = heard
            .iter()
            .filter(|h| !h.pauses && ended(h).is_some_and(|e| e.cut_off))
            .count();
        let waits: Vec<Duration> = heard
            .iter()
            .filter(|h| !h.pauses)
            .filter_map(|h| ended(h).filter(|e| !e.cut_off).map(|e| e.wait))
            .collect();
        lines.push(format!(
            "end of turn {:<10} cut off {cut_pause}/{with_pause} mid-sentence pauses, {cut_other}/{} others; wait after a finished sentence p50 {} ms  p95 {} ms (bot silence {} ms)",
            rule.label(),
            heard.len() - with_pause,
            ms(percentile(waits.clone(), 0.5)),
            ms(percentile(waits.clone(), 0.95)),
            ms(opts.usual),
        ));
        rules.push(RuleFigures {
            rule,
            cut_pauses: (cut_pause, with_pause),
            cut_others: (cut_other, heard.len() - with_pause),
            wait_p50: percentile(waits.clone(), 0.5),
            wait_p95: percentile(waits, 0.95),
        });
    }
    let mut worst: Vec<&Heard> = heard.iter().filter(|h| h.errors.edits() > 0).collect();
    worst.sort_by(|a, b| b.errors.rate().total_cmp(&a.errors.rate()));
    let shown = if opts.verbose {
        heard.iter().collect::<Vec<_>>()
    } else {
        worst.into_iter().take(8).collect()
    };
    lines.push(if opts.verbose {
        "every utterance:".into()
    } else {
        "worst transcripts:".into()
    });
    for h in shown {
        lines.push(format!(
            "  {:<16} {:<12} {:5.1} %  {:?} -> {:?} ({} ms)",
            h.id,
            h.voice,
            h.errors.rate() * 100.0,
            h.expected,
            h.text,
            ms(h.took)
        ));
    }
    Report {
        lines,
        wer: total.rate(),
        by_category: by_category
            .into_iter()
            .map(|(c, e)| (c.to_owned(), e.rate()))
            .collect(),
        recognition_p50,
        rules,
    }
}
