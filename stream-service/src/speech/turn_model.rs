//! The end-of-turn model: Smart Turn v3.2 (BSD-2-Clause, an int8 ONNX network) says from the
//! sound of an utterance whether the caller has finished. ONNX Runtime's shared library is
//! loaded at run time (the `ort` crate's `load-dynamic`), and the model runs on one worker thread
//! with a bounded queue, like the recogniser: never on the async runtime.
//!
//! Its input is Whisper-style log-mel features of the utterance's last 8 s at 16 kHz (shorter
//! ones padded with zeros in front): the waveform normalised to zero mean and unit variance, a
//! 400-point periodic-Hann STFT every 160 samples (reflect-padded, centred), 80 Slaney mel bands,
//! log10 floored at 1e-10, clamped to 8 below the maximum and scaled as (x + 4) / 4; 80 × 800.

use super::SpeechError;
use crate::audio::resample;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const RATE: usize = 16_000;
const SECONDS: usize = 8;
const N_FFT: usize = 400;
const HOP: usize = 160;
const N_MELS: usize = 80;
const FRAMES: usize = SECONDS * RATE / HOP;
const BINS: usize = N_FFT / 2 + 1;

/// The model's verdict on one utterance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Probability that the caller has finished (> 0.5: finished).
    pub complete: f32,
    /// Time spent on features and inference (queueing excluded).
    pub took: Duration,
}

impl Verdict {
    pub fn finished(&self) -> bool {
        self.complete > 0.5
    }
}

/// Log-mel features of 8 kHz caller audio, row-major 80 × 800 (the model's `input_features`
/// without its batch dimension).
pub fn features(pcm8k: &[i16]) -> Vec<f32> {
    let mut out = Vec::new();
    MelFrontEnd::new().compute(pcm8k, &mut out);
    out
}

/// What the features need, made once per worker: the window, the mel bands (each as its first
/// non-zero bin and weights: most of a band's bins are zero), the FFT plan and its buffers.
pub struct MelFrontEnd {
    window: Vec<f64>,
    bands: Vec<(usize, Vec<f64>)>,
    fft: std::sync::Arc<dyn realfft::RealToComplex<f64>>,
    input: Vec<f64>,
    spectrum: Vec<realfft::num_complex::Complex<f64>>,
    scratch: Vec<realfft::num_complex::Complex<f64>>,
    power: Vec<f64>,
    x: Vec<f64>,
}

impl std::fmt::Debug for MelFrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelFrontEnd").finish_non_exhaustive()
    }
}

impl Default for MelFrontEnd {
    fn default() -> Self {
        Self::new()
    }
}

impl MelFrontEnd {
    pub fn new() -> Self {
        let window = (0..N_FFT)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos())
            .collect();
        let filters = crate::models::ggml::mel_filters(N_MELS, RATE as f64, N_FFT);
        let bands = filters
            .chunks(BINS)
            .map(|row| {
                let first = row.iter().position(|w| *w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|w| *w != 0.0).unwrap_or(0);
                let weights = row[first..=last.max(first)]
                    .iter()
                    .map(|w| f64::from(*w))
                    .collect();
                (first, weights)
            })
            .collect();
        let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        Self {
            window,
            bands,
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            power: vec![0.0; BINS],
            x: vec![0.0; SECONDS * RATE],
        }
    }

    /// The features of `pcm8k` into `out` (resized to 80 × 800).
    pub fn compute(&mut self, pcm8k: &[i16], out: &mut Vec<f32>) {
        let audio = resample::resample(&resample::i16_to_f32(pcm8k), 8000, RATE as u32);
        self.compute_16k(&audio, out);
    }

    /// The features of 16 kHz audio (-1..1) into `out`.
    pub fn compute_16k(&mut self, audio: &[f32], out: &mut Vec<f32>) {
        let n = SECONDS * RATE;
        let take = audio.len().min(n);
        let x = &mut self.x;
        x.fill(0.0);
        for (dst, &s) in x[n - take..].iter_mut().zip(&audio[audio.len() - take..]) {
            *dst = f64::from(s);
        }
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let scale = 1.0 / (var + 1e-7).sqrt();
        for v in x.iter_mut() {
            *v = (*v - mean) * scale;
        }
        out.clear();
        out.resize(N_MELS * FRAMES, 0.0);
        // Frames wholly inside the padding in front see the same constant: computed once.
        let padded = n - take;
        let same = (padded.saturating_sub(N_FFT / 2) / HOP).min(FRAMES);
        let mut max = f64::MIN;
        for f in 0..FRAMES {
            if f > 0 && f < same {
                for m in 0..N_MELS {
                    out[m * FRAMES + f] = out[m * FRAMES];
                }
                continue;
            }
            let l = self.frame(f);
            for (m, v) in l.into_iter().enumerate() {
                max = max.max(v);
                out[m * FRAMES + f] = v as f32;
            }
        }
        let floor = (max - 8.0) as f32;
        for v in out.iter_mut() {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
    }

    /// log10 mel energies of frame `f` (centred, reflect-padded at the edges).
    fn frame(&mut self, f: usize) -> [f64; N_MELS] {
        let n = self.x.len() as isize;
        let start = (f * HOP) as isize - (N_FFT / 2) as isize;
        for (i, v) in self.input.iter_mut().enumerate() {
            let mut k = start + i as isize;
            if k < 0 {
                k = -k;
            } else if k >= n {
                k = 2 * (n - 1) - k;
            }
            *v = self.x[k as usize] * self.window[i];
        }
        let mut logs = [(1e-10f64).log10(); N_MELS];
        if self
            .fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .is_err()
        {
            return logs;
        }
        for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
            *p = c.norm_sqr();
        }
        for (l, (first, weights)) in logs.iter_mut().zip(&self.bands) {
            let e: f64 = weights
                .iter()
                .zip(&self.power[*first..])
                .map(|(w, p)| w * p)
                .sum();
            *l = e.max(1e-10).log10();
        }
        logs
    }
}

struct Job {
    pcm: Vec<i16>,
    reply: oneshot::Sender<Result<Verdict, SpeechError>>,
}

/// The model on its worker.
#[derive(Debug, Clone)]
pub struct TurnModel {
    jobs: SyncSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("samples", &self.pcm.len())
            .finish()
    }
}

/// Utterances waiting beyond the one being judged; more are refused (`Busy`).
const QUEUE: usize = 8;

impl TurnModel {
    /// Loads ONNX Runtime from `runtime` and the model from `model` (blocking; call at startup)
    /// and starts the worker.
    pub fn load(runtime: &Path, model: &Path) -> Result<Self, SpeechError> {
        for (what, p) in [("ONNX Runtime", runtime), ("the turn model", model)] {
            if !p.exists() {
                return Err(SpeechError::Unavailable(format!(
                    "{what} ({}) is missing; run `callbot models install`",
                    p.display()
                )));
            }
        }
        let unavailable =
            |e: &dyn std::fmt::Display| SpeechError::Unavailable(format!("turn model: {e}"));
        let env = environment(runtime)?;
        let mut session = ort::session::Session::builder(env)
            .map_err(|e| unavailable(&e))?
            .with_intra_threads(1)
            .map_err(|e| unavailable(&e))?
            .with_inter_threads(1)
            .map_err(|e| unavailable(&e))?
            .commit_from_file(model)
            .map_err(|e| unavailable(&e))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("turn-model".into())
            .spawn(move || {
                let (mut front, mut features) = (MelFrontEnd::new(), Vec::new());
                // Ends when every sender is gone (the model dropped).
                for job in rx {
                    if !job.reply.is_closed() {
                        let verdict = judge(&mut session, &mut front, &mut features, &job.pcm);
                        let _ = job.reply.send(verdict);
                    }
                }
            })
            .map_err(|e| unavailable(&e))?;
        Ok(Self { jobs: tx })
    }

    /// Whether the caller has finished, judged from the utterance's 8 kHz audio. Cancel-safe
    /// (a dropped call abandons the verdict); idempotent.
    pub async fn judge(&self, pcm: Vec<i16>) -> Result<Verdict, SpeechError> {
        let (reply, rx) = oneshot::channel();
        let job = Job { pcm, reply };
        super::queue_job(&self.jobs, None, job, rx, "the turn model's worker").await
    }
}

/// ONNX Runtime's process-wide environment: the library is loaded once, from the first path
/// asked for, and the environment lives as long as the process.
static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

fn environment(runtime: &Path) -> Result<&'static ort::environment::Environment, SpeechError> {
    let env = ENVIRONMENT.get_or_init(|| {
        ort::init_from(runtime)
            .map_err(|e| e.to_string())?
            .with_name("callbot")
            .build()
            .map_err(|e| e.to_string())
    });
    match env {
        Ok(env) => Ok(env),
        Err(e) => Err(SpeechError::Unavailable(format!("ONNX Runtime: {e}"))),
    }
}

fn judge(
    session: &mut ort::session::Session,
    front: &mut MelFrontEnd,
    features: &mut Vec<f32>,
    pcm: &[i16],
) -> Result<Verdict, SpeechError> {
    let started = Instant::now();
    front.compute(pcm, features);
    let engine = |e: ort::Error| SpeechError::Engine(format!("turn model: {e}"));
    let input = ort::value::TensorRef::from_array_view(([1usize, N_MELS, FRAMES], &features[..]))
        .map_err(engine)?;
    let outputs = session
        .run(ort::inputs!["input_features" => input])
        .map_err(engine)?;
    let (_, probability) = outputs[0].try_extract_tensor::<f32>().map_err(engine)?;
    let complete = probability
        .first()
        .copied()
        .ok_or_else(|| SpeechError::Engine("turn model: empty output".into()))?;
    Ok(Verdict {
        complete,
        took: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_have_the_models_shape_and_range() {
        let tone: Vec<i16> = (0..8000 * 2)
            .map(|i| ((i as f32 * 0.3).sin() * 6000.0) as i16)
            .collect();
        let f = features(&tone);
        assert_eq!(f.len(), 80 * 800);
        let max = f.iter().copied().fold(f32::MIN, f32::max);
        let min = f.iter().copied().fold(f32::MAX, f32::min);
        // Scaled so the loudest bin is (max + 4) / 4 and nothing is more than 2 below it.
        assert!(max - min <= 2.0 + 1e-4, "{min}..{max}");
        // The 2 s of audio are at the end: the first 6 s (600 frames) are the padding's floor.
        // The tone is at 382 Hz: mel bands 8-11.
        let at = |frame: usize| (8..12).map(|m| f[m * 800 + frame]).fold(f32::MIN, f32::max);
        assert!((at(10) - min).abs() < 1e-3, "padding is silent: {}", at(10));
        assert!(at(700) > min + 1.0, "the tone is loud: {}", at(700));
    }

    #[test]
    fn a_long_utterance_keeps_its_last_8_seconds() {
        let mut pcm = vec![0i16; 8000 * 10];
        for (i, s) in pcm[..8000].iter_mut().enumerate() {
            *s = ((i as f32 * 0.3).sin() * 6000.0) as i16;
        }
        // The tone is in the first second only: cut away, everything is floor.
        let f = features(&pcm);
        let max = f.iter().copied().fold(f32::MIN, f32::max);
        let min = f.iter().copied().fold(f32::MAX, f32::min);
        assert!(max - min < 1.5, "only silence left: {min}..{max}");
    }

    /// Pipecat's own feature code (`_whisper_features.py`, which replicates the transformers
    /// Whisper feature extractor) on the same 16 kHz audio, when a Python with numpy and
    /// pipecat's wheel are given (`CALLBOT_TEST_PYTHON`, `CALLBOT_TEST_PIPECAT_WHEEL`).
    #[test]
    fn features_match_pipecats_reference() {
        let (Some(python), Some(wheel)) = (
            std::env::var_os("CALLBOT_TEST_PYTHON"),
            std::env::var_os("CALLBOT_TEST_PIPECAT_WHEEL"),
        ) else {
            assert!(
                std::env::var_os("CALLBOT_SKIP_PYTHON").is_some(),
                "CALLBOT_TEST_PYTHON and CALLBOT_TEST_PIPECAT_WHEEL must be set (./scripts/test.sh sets them); CALLBOT_SKIP_PYTHON=1 skips knowingly"
            );
            return;
        };
        // 2.5 s: a chirp with a pause, padded in front to 8 s as the model's caller does.
        let audio: Vec<f32> = (0..40_000)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                let on = if (1.0..1.4).contains(&t) { 0.0 } else { 0.3 };
                on * (2.0 * std::f32::consts::PI * (200.0 + 600.0 * t) * t).sin()
            })
            .collect();
        let mut ours = Vec::new();
        MelFrontEnd::new().compute_16k(&audio, &mut ours);
        let dir = tempfile::tempdir().unwrap();
        let raw: Vec<u8> = audio.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(dir.path().join("audio.f32"), raw).unwrap();
        let script = r#"
import sys, zipfile, types, numpy as np
src = zipfile.ZipFile(sys.argv[1]).read("pipecat/audio/turn/smart_turn/_whisper_features.py")
mod = types.ModuleType("wf"); exec(compile(src, "wf", "exec"), mod.__dict__)
a = np.fromfile(sys.argv[2], dtype=np.float32)
a = np.pad(a, (128000 - a.size, 0))
mod.compute_whisper_log_mel_features(a, do_normalize=True).astype(np.float32).tofile(sys.argv[3])
"#;
        let status = std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(wheel)
            .arg(dir.path().join("audio.f32"))
            .arg(dir.path().join("ref.f32"))
            .status()
            .unwrap();
        assert!(status.success());
        let reference: Vec<f32> = std::fs::read(dir.path().join("ref.f32"))
            .unwrap()
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(reference.len(), ours.len());
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "largest difference {worst}");
    }
}
