//! The model thread: owns the llama.cpp model and context, runs one generation at a time from a
//! bounded queue, and keeps a few KV-cache slots so that a call's next turn only evaluates the
//! tokens that are new since its last one (system prompt and earlier turns stay cached).

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How the worker runs the model.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model: PathBuf,
    pub threads: i32,
    /// KV-cache slots (concurrent conversations whose prefix stays cached).
    pub slots: u32,
    /// Context length per slot, in tokens.
    pub slot_ctx: u32,
    /// Jobs waiting beyond this are refused (`503`), never queued without bound.
    pub queue: usize,
}

/// One chat message after the API layer flattened it (tool calls rendered as text).
#[derive(Debug, Clone)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

#[derive(Debug)]
pub struct Job {
    pub messages: Vec<Turn>,
    pub max_tokens: u32,
    pub temperature: f32,
    pub stop: Vec<String>,
    pub out: mpsc::Sender<Piece>,
    pub queued: Instant,
}

/// What the model thread sends back for a job, in order: text pieces, then `Done` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Done(Stats),
    Failed(JobError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub finish: Finish,
    pub prompt_tokens: u32,
    /// Prompt tokens found in the KV cache (not evaluated again).
    pub cached_tokens: u32,
    pub completion_tokens: u32,
    pub queue: Duration,
    pub prompt_eval: Duration,
    pub generation: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the prompt has {tokens} tokens; this model's context allows {limit}")]
    ContextLength { tokens: usize, limit: usize },
    #[error("model error: {0}")]
    Model(String),
}

/// Handle to the model thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    pub model_name: String,
}

/// Why a job was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Engine {
    /// Loads the model (blocking: call before serving) and starts the model thread.
    pub fn start(config: EngineConfig) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>(config.queue.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let model_name = config
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".into());
        std::thread::Builder::new()
            .name("llm-model".into())
            .spawn(move || model_thread(config, rx, ready_tx))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                jobs: tx,
                model_name,
            }),
            Ok(Err(e)) => Err(anyhow::anyhow!(e)),
            Err(_) => Err(anyhow::anyhow!("the model thread stopped while loading")),
        }
    }

    /// Queues a job; `Busy` when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Busy> {
        self.jobs.try_send(job).map_err(|_| Busy)
    }
}

struct Slot {
    tokens: Vec<LlamaToken>,
    used: Instant,
}

fn model_thread(
    config: EngineConfig,
    mut rx: mpsc::Receiver<Job>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let setup = || -> Result<(LlamaBackend, LlamaModel), String> {
        let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
        backend.void_logs();
        let model =
            LlamaModel::load_from_file(&backend, &config.model, &LlamaModelParams::default())
                .map_err(|e| format!("loading {}: {e}", config.model.display()))?;
        Ok((backend, model))
    };
    let (backend, model) = match setup() {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let slots_n = config.slots.max(1);
    let n_ctx = config.slot_ctx * slots_n;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(512)
        .with_n_seq_max(slots_n)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads);
    let mut ctx = match model.new_context(&backend, params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!("creating the context: {e}")));
            return;
        }
    };
    let template = match model.chat_template(None) {
        Ok(t) => t,
        Err(e) => {
            let _ = ready.send(Err(format!("the model has no chat template: {e}")));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let now = Instant::now();
    let mut slots: Vec<Slot> = (0..slots_n)
        .map(|_| Slot {
            tokens: Vec::new(),
            used: now,
        })
        .collect();
    let mut batch = LlamaBatch::new(512, 1);
    let limit = config.slot_ctx as usize;
    while let Some(job) = rx.blocking_recv() {
        if job.out.is_closed() {
            continue; // the client went away while queued
        }
        let queue = job.queued.elapsed();
        let result = (|| -> Result<Stats, JobError> {
            let msgs: Vec<LlamaChatMessage> = job
                .messages
                .iter()
                .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
                .collect::<Result<_, _>>()
                .map_err(|e| JobError::Model(format!("message: {e}")))?;
            let prompt = model
                .apply_chat_template(&template, &msgs, true)
                .map_err(|e| JobError::Model(format!("chat template: {e}")))?;
            let tokens = model.vocab().tokenize(prompt.as_bytes(), true, true);
            let room = limit.saturating_sub(job.max_tokens as usize);
            if tokens.len() > room {
                return Err(JobError::ContextLength {
                    tokens: tokens.len(),
                    limit: room,
                });
            }
            // The slot sharing the longest prefix with this prompt, else the least recently used.
            let (seq, common) = slots
                .iter()
                .enumerate()
                .map(|(i, s)| (i, common_prefix(&s.tokens, &tokens)))
                .max_by_key(|&(i, c)| (c, std::cmp::Reverse(slots[i].used)))
                .unwrap_or((0, 0));
            let (seq, mut common) = if common == 0 {
                let lru = slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.used)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                (lru, 0)
            } else {
                (seq, common)
            };
            // At least the last prompt token is evaluated: its logits start the reply.
            common = common.min(tokens.len().saturating_sub(1));
            let slot = &mut slots[seq];
            slot.used = Instant::now();
            let seq_id = seq as i32;
            ctx.clear_kv_cache_seq(Some(seq as u32), Some(common as u32), None)
                .map_err(|e| JobError::Model(e.to_string()))?;
            slot.tokens.truncate(common);
            let started = Instant::now();
            let mut pos = common;
            for chunk in tokens[common..].chunks(512) {
                batch.clear();
                for (i, &t) in chunk.iter().enumerate() {
                    let last = pos + i + 1 == tokens.len();
                    batch
                        .add(t, (pos + i) as i32, &[seq_id], last)
                        .map_err(|e| JobError::Model(e.to_string()))?;
                }
                ctx.decode(&mut batch)
                    .map_err(|e| JobError::Model(format!("evaluating the prompt: {e}")))?;
                slot.tokens.extend_from_slice(chunk);
                pos += chunk.len();
            }
            let prompt_eval = started.elapsed();
            let mut sampler = if job.temperature <= 0.0 {
                LlamaSampler::greedy()
            } else {
                LlamaSampler::chain_simple([
                    LlamaSampler::temp(job.temperature),
                    LlamaSampler::dist(0x5eed),
                ])
            };
            let gen_started = Instant::now();
            let mut bytes: Vec<u8> = Vec::new();
            let mut text = String::new();
            let mut completion = 0u32;
            let mut finish = Finish::Length;
            let vocab = model.vocab();
            while completion < job.max_tokens && pos < limit {
                let token = sampler.sample(&ctx, batch.n_tokens() - 1);
                if vocab.is_eog(token) {
                    finish = Finish::Stop;
                    break;
                }
                completion += 1;
                bytes.extend(vocab.token_to_piece(token, false, None));
                let valid = match std::str::from_utf8(&bytes) {
                    Ok(s) => s.len(),
                    Err(e) => e.valid_up_to(),
                };
                if valid > 0 {
                    let piece: String = String::from_utf8_lossy(&bytes[..valid]).into_owned();
                    bytes.drain(..valid);
                    text.push_str(&piece);
                    if let Some(cut) = stop_at(&text, &job.stop) {
                        let keep = piece.len().saturating_sub(text.len() - cut);
                        if keep > 0
                            && job
                                .out
                                .blocking_send(Piece::Text(piece[..keep].to_owned()))
                                .is_err()
                        {
                            break;
                        }
                        finish = Finish::Stop;
                        break;
                    }
                    if job.out.blocking_send(Piece::Text(piece)).is_err() {
                        break; // cancelled: the client hung up
                    }
                }
                batch.clear();
                batch
                    .add(token, pos as i32, &[seq_id], true)
                    .map_err(|e| JobError::Model(e.to_string()))?;
                ctx.decode(&mut batch)
                    .map_err(|e| JobError::Model(format!("generating: {e}")))?;
                slot.tokens.push(token);
                pos += 1;
            }
            Ok(Stats {
                finish,
                prompt_tokens: tokens.len() as u32,
                cached_tokens: common as u32,
                completion_tokens: completion,
                queue,
                prompt_eval,
                generation: gen_started.elapsed(),
            })
        })();
        let piece = match result {
            Ok(stats) => Piece::Done(stats),
            Err(e) => {
                // A failed job may leave its slot half-written: forget it.
                for s in &mut slots {
                    s.tokens.clear();
                }
                ctx.clear_kv_cache();
                Piece::Failed(e)
            }
        };
        let _ = job.out.blocking_send(piece);
    }
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Where the first stop string begins in `text`, if one occurs.
fn stop_at(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_cut_at_the_earliest() {
        let stops = vec!["\n\n".to_string(), "User:".to_string()];
        assert_eq!(stop_at("Hello there.", &stops), None);
        assert_eq!(stop_at("Hi.\n\nUser: x", &stops), Some(3));
        assert_eq!(stop_at("abc", &[String::new()]), None);
    }

    #[test]
    fn common_prefix_counts_equal_tokens() {
        let a = [LlamaToken(1), LlamaToken(2), LlamaToken(3)];
        let b = [LlamaToken(1), LlamaToken(2), LlamaToken(4), LlamaToken(5)];
        assert_eq!(common_prefix(&a, &b), 2);
        assert_eq!(common_prefix(&[], &b), 0);
    }
}
