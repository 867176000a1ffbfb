//! The model thread: owns the llama.cpp model and context and generates for several requests at
//! once (continuous batching: each step evaluates every running request's last token in one
//! batch, and a new request's prompt is evaluated between steps). Each running request has a
//! KV-cache slot; a request takes the free slot whose cached tokens share the longest prefix with
//! its prompt, so a call's next turn only evaluates what is new since its last one. Requests
//! beyond the slots wait in a bounded queue.

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
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
    /// llama.cpp's repetition penalty over the last 64 tokens (1.0: none).
    pub repeat_penalty: f32,
    /// OpenAI's `frequency_penalty` and `presence_penalty`.
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
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
    /// The messages cannot be made into a prompt (a NUL byte, a template failure): this request
    /// only; nothing was evaluated.
    #[error("{0}")]
    Prompt(String),
    /// Evaluation failed: the KV cache may be half-written, so every running request fails.
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
    /// The tokens whose keys and values are in this sequence of the KV cache.
    tokens: Vec<LlamaToken>,
    /// Length of the prompt of the last request served here (its conversation's next prompt
    /// extends it).
    prompt_len: usize,
    used: Instant,
    busy: bool,
}

/// A job being generated: its slot, its sampler, the token sampled but not yet evaluated.
struct Active {
    job: Job,
    seq: usize,
    sampler: LlamaSampler,
    next: Option<LlamaToken>,
    bytes: Vec<u8>,
    text: String,
    stats: Stats,
    gen_started: Instant,
}

/// Outcome of one step of a job.
enum Step {
    Going,
    Finished(Finish),
    /// The client went away.
    Gone,
}

struct Model<'m> {
    model: &'m LlamaModel,
    ctx: llama_cpp_2::context::LlamaContext<'m>,
    template: llama_cpp_2::model::LlamaChatTemplate,
    slots: Vec<Slot>,
    batch: LlamaBatch<'static>,
    limit: usize,
}

impl Model<'_> {
    /// Evaluates a new job's prompt in a free slot (reusing the longest cached prefix) and samples
    /// its first token.
    fn start(&mut self, job: Job) -> Result<Active, Box<(Job, JobError)>> {
        let queue = job.queued.elapsed();
        let tokens = match self.prompt(&job) {
            Ok(t) => t,
            Err(e) => return Err(Box::new((job, e))),
        };
        let room = self.limit.saturating_sub(job.max_tokens as usize);
        if tokens.len() > room {
            let e = JobError::ContextLength {
                tokens: tokens.len(),
                limit: room,
            };
            return Err(Box::new((job, e)));
        }
        // A free slot whose last prompt this one extends (the same conversation, next turn);
        // otherwise the least recently used free slot — never another conversation's.
        let continuation = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.busy && s.prompt_len > 0)
            .map(|(i, s)| (i, common_prefix(&s.tokens, &tokens), s.prompt_len))
            .filter(|&(_, c, len)| c >= len)
            .max_by_key(|&(_, c, _)| c)
            .map(|(i, c, _)| (i, c));
        let lru = || {
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.busy)
                .min_by_key(|(_, s)| s.used)
                .map(|(i, s)| (i, common_prefix(&s.tokens, &tokens)))
        };
        let Some((seq, own)) = continuation.or_else(lru) else {
            return Err(Box::new((job, JobError::Model("no free slot".into()))));
        };
        // Another slot, busy or not, may hold a longer prefix (another call of the same bot: the
        // same system prompt): share its cached keys and values instead of evaluating them again.
        let (donor, shared) = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, common_prefix(&s.tokens, &tokens)))
            .max_by_key(|&(_, c)| c)
            .unwrap_or((seq, own));
        let common = if donor != seq && shared > own + 16 {
            let copied = self
                .ctx
                .clear_kv_cache_seq(Some(seq as u32), None, None)
                .ok()
                .and_then(|_| {
                    self.ctx
                        .copy_kv_cache_seq(donor as i32, seq as i32, Some(0), Some(shared as u32))
                        .ok()
                });
            if copied.is_some() {
                let prefix = self.slots[donor].tokens[..shared].to_vec();
                self.slots[seq].tokens = prefix;
                shared
            } else {
                self.slots[seq].tokens.clear();
                0
            }
        } else {
            own
        };
        // At least the last prompt token is evaluated: its logits start the reply.
        let common = common.min(tokens.len().saturating_sub(1));
        let started = Instant::now();
        if let Err(e) = self.prefill(seq, common, &tokens) {
            return Err(Box::new((job, e)));
        }
        let slot = &mut self.slots[seq];
        slot.busy = true;
        slot.used = Instant::now();
        slot.prompt_len = tokens.len();
        // Small models loop ("I'm not. I'm not."): repeated tokens are penalised first.
        let penalties = LlamaSampler::penalties(
            self.model.n_vocab(),
            64,
            job.repeat_penalty,
            job.frequency_penalty,
            job.presence_penalty,
        );
        let mut sampler = if job.temperature <= 0.0 {
            LlamaSampler::chain_simple([penalties, LlamaSampler::greedy()])
        } else {
            LlamaSampler::chain_simple([
                penalties,
                LlamaSampler::temp(job.temperature),
                LlamaSampler::dist(0x5eed),
            ])
        };
        let first = sampler.sample(&self.ctx, self.batch.n_tokens() - 1);
        Ok(Active {
            job,
            seq,
            sampler,
            next: Some(first),
            bytes: Vec::new(),
            text: String::new(),
            stats: Stats {
                finish: Finish::Length,
                prompt_tokens: tokens.len() as u32,
                cached_tokens: common as u32,
                completion_tokens: 0,
                queue,
                prompt_eval: started.elapsed(),
                generation: Duration::ZERO,
            },
            gen_started: Instant::now(),
        })
    }

    fn prompt(&self, job: &Job) -> Result<Vec<LlamaToken>, JobError> {
        let msgs: Vec<LlamaChatMessage> = job
            .messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| JobError::Prompt(format!("message: {e}")))?;
        let prompt = self
            .model
            .apply_chat_template(&self.template, &msgs, true)
            .map_err(|e| JobError::Prompt(format!("chat template: {e}")))?;
        Ok(self.model.vocab().tokenize(prompt.as_bytes(), true, true))
    }

    /// Drops what the slot holds beyond `common` tokens and evaluates the rest of `tokens`.
    fn prefill(
        &mut self,
        seq: usize,
        common: usize,
        tokens: &[LlamaToken],
    ) -> Result<(), JobError> {
        let model_err = |e: &dyn std::fmt::Display| JobError::Model(e.to_string());
        self.ctx
            .clear_kv_cache_seq(Some(seq as u32), Some(common as u32), None)
            .map_err(|e| model_err(&e))?;
        let slot = &mut self.slots[seq];
        slot.tokens.truncate(common);
        let mut pos = common;
        for chunk in tokens[common..].chunks(512) {
            self.batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                let last = pos + i + 1 == tokens.len();
                self.batch
                    .add(t, (pos + i) as i32, &[seq as i32], last)
                    .map_err(|e| model_err(&e))?;
            }
            if let Err(e) = self.ctx.decode(&mut self.batch) {
                slot.tokens.clear();
                return Err(JobError::Model(format!("evaluating the prompt: {e}")));
            }
            slot.tokens.extend_from_slice(chunk);
            pos += chunk.len();
        }
        Ok(())
    }

    /// Emits `a`'s sampled token (or finishes the job on end of generation, a stop string, the
    /// token budget or a client that went away).
    fn emit(&self, a: &mut Active) -> Step {
        let Some(token) = a.next else {
            return Step::Finished(Finish::Stop);
        };
        let vocab = self.model.vocab();
        if vocab.is_eog(token) {
            return Step::Finished(Finish::Stop);
        }
        a.stats.completion_tokens += 1;
        a.bytes.extend(vocab.token_to_piece(token, false, None));
        let valid = match std::str::from_utf8(&a.bytes) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        if valid > 0 {
            let piece: String = String::from_utf8_lossy(&a.bytes[..valid]).into_owned();
            a.bytes.drain(..valid);
            a.text.push_str(&piece);
            if let Some(cut) = stop_at(&a.text, &a.job.stop) {
                let keep = piece.len().saturating_sub(a.text.len() - cut);
                if keep > 0
                    && a.job
                        .out
                        .blocking_send(Piece::Text(piece[..keep].to_owned()))
                        .is_err()
                {
                    return Step::Gone;
                }
                return Step::Finished(Finish::Stop);
            }
            if a.job.out.blocking_send(Piece::Text(piece)).is_err() {
                return Step::Gone;
            }
        }
        let pos = self.slots[a.seq].tokens.len();
        if a.stats.completion_tokens >= a.job.max_tokens || pos + 1 >= self.limit {
            return Step::Finished(Finish::Length);
        }
        Step::Going
    }

    /// One decoding step for every job: their sampled tokens are evaluated in one batch, and
    /// each job's next token is sampled from it.
    fn step(&mut self, active: &mut [Active]) -> Result<(), JobError> {
        self.batch.clear();
        let mut rows = Vec::with_capacity(active.len());
        for a in active.iter() {
            if let Some(t) = a.next {
                let pos = self.slots[a.seq].tokens.len();
                self.batch
                    .add(t, pos as i32, &[a.seq as i32], true)
                    .map_err(|e| JobError::Model(e.to_string()))?;
                rows.push(self.batch.n_tokens() - 1);
            } else {
                rows.push(-1);
            }
        }
        self.ctx
            .decode(&mut self.batch)
            .map_err(|e| JobError::Model(format!("generating: {e}")))?;
        for (a, &row) in active.iter_mut().zip(&rows) {
            if let (Some(t), true) = (a.next, row >= 0) {
                self.slots[a.seq].tokens.push(t);
                a.next = Some(a.sampler.sample(&self.ctx, row));
            }
        }
        Ok(())
    }

    fn release(&mut self, a: &Active) {
        let slot = &mut self.slots[a.seq];
        slot.busy = false;
        slot.used = Instant::now();
    }

    /// After a failed evaluation the cache may be half-written: forget all of it.
    fn reset(&mut self) {
        for s in &mut self.slots {
            s.tokens.clear();
            s.prompt_len = 0;
            s.busy = false;
        }
        self.ctx.clear_kv_cache();
    }
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
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.slot_ctx * slots_n))
        .with_n_batch(512)
        .with_n_seq_max(slots_n)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads)
        // One pool of cells for all slots, so slots can share a cached prefix (seq_cp).
        .with_kv_unified(true);
    let ctx = match model.new_context(&backend, params) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!("creating the context: {e}")));
            return;
        }
    };
    let template = match model.chat_template(None) {
        Ok(t) => t,
        // A base model's GGUF stores no template: llama.cpp's built-in one for its family.
        Err(e) => match builtin_template(&model) {
            Some(t) => t,
            None => {
                let _ = ready.send(Err(format!("the model has no chat template: {e}")));
                return;
            }
        },
    };
    let now = Instant::now();
    let mut m = Model {
        model: &model,
        ctx,
        template,
        slots: (0..slots_n)
            .map(|_| Slot {
                tokens: Vec::new(),
                prompt_len: 0,
                used: now,
                busy: false,
            })
            .collect(),
        batch: LlamaBatch::new(512, 1),
        limit: config.slot_ctx as usize,
    };
    let _ = ready.send(Ok(()));
    let mut active: Vec<Active> = Vec::new();
    loop {
        // New jobs while slots are free: wait for one when idle, take what is queued otherwise.
        while active.len() < m.slots.len() {
            let job = if active.is_empty() {
                match rx.blocking_recv() {
                    Some(j) => j,
                    None => return,
                }
            } else {
                match rx.try_recv() {
                    Ok(j) => j,
                    Err(_) => break,
                }
            };
            if job.out.is_closed() {
                continue; // the client went away while queued
            }
            match m.start(job) {
                Ok(a) => active.push(a),
                Err(failed) => {
                    let (job, e) = *failed;
                    if matches!(e, JobError::Model(_)) {
                        m.reset();
                        fail_all(&mut active, &e);
                    }
                    let _ = job.out.blocking_send(Piece::Failed(e));
                }
            }
        }
        // Emit each job's sampled token; finished jobs leave and free their slot.
        let mut i = 0;
        while i < active.len() {
            let finish = match m.emit(&mut active[i]) {
                Step::Going => {
                    i += 1;
                    continue;
                }
                Step::Finished(f) => f,
                Step::Gone => Finish::Stop,
            };
            let mut a = active.swap_remove(i);
            m.release(&a);
            a.stats.finish = finish;
            a.stats.generation = a.gen_started.elapsed();
            let _ = a.job.out.blocking_send(Piece::Done(a.stats.clone()));
        }
        if active.is_empty() {
            continue;
        }
        if let Err(e) = m.step(&mut active) {
            m.reset();
            fail_all(&mut active, &e);
        }
    }
}

fn fail_all(active: &mut Vec<Active>, e: &JobError) {
    for a in active.drain(..) {
        let _ = a.job.out.blocking_send(Piece::Failed(e.clone()));
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

/// llama.cpp's built-in chat template for a model family whose GGUF stores none (base models,
/// e.g. Gemma 3 270M): chosen by `general.architecture`.
fn builtin_template(model: &LlamaModel) -> Option<LlamaChatTemplate> {
    let arch = model.meta_val_str("general.architecture").ok()?;
    let name = match arch.as_str() {
        a if a.starts_with("gemma") => "gemma",
        "llama" => "llama3",
        _ => "chatml",
    };
    tracing::info!(architecture = %arch, template = name, "the model stores no chat template; using llama.cpp's built-in one");
    LlamaChatTemplate::new(name).ok()
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
