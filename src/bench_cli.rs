//! `callbot bench …`: the benchmark subcommands, their options, and how each is run (each prints
//! its figures to stdout).

use crate::bench;
use callbot_core::settings::Settings;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The engine's answering-machine detector on synthetic greetings with beeps (espeak-ng) and
    /// on people answering: detection rate, time to each verdict, false "machine" verdicts.
    Amd,
    /// POST /bots, GET /bots/{id}, GET /bots against an in-process server on SQLite.
    Api {
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Concurrent simulated Twilio calls against a `callbot serve` child process (instant speech
    /// engines, local webhook): CPU and RSS per call, outbound frame gaps, platform turn latency.
    Calls {
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Seconds each call lasts.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Cores the server may use.
        #[arg(long, default_value_t = 1)]
        server_cores: usize,
        /// Hear callers with Deepgram and speak with ElevenLabs (stand-ins in this process)
        /// instead of the instant engines: the platform's own cost per call with network
        /// providers.
        #[arg(long)]
        standins: bool,
        /// New calls per second while the calls are set up (calls arrive at this rate, as on
        /// a phone line, not all in the same instant); CPU per call is read once all are up.
        #[arg(long, default_value_t = 200, conflicts_with = "faults")]
        arrival_rate: u32,
        /// A fault soak instead: every call's webhook times out, answers 500, garbage and slowly
        /// in turn, and the recogniser is saturated; prints turns sent, answered and lost, the
        /// longest dead air and memory per call early and late.
        #[arg(long, conflicts_with = "standins")]
        faults: bool,
    },
    /// Latency a caller hears: end of speech → first reply audio for local whisper with a
    /// fixed silence, with smart endpointing, and with the Deepgram stand-in; and the time the
    /// platform adds to each cloud voice's first audio (stand-ins).
    Voices {
        /// The whisper model (default: the installed one).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// Calls per scenario.
        #[arg(long, default_value_t = 8)]
        calls: usize,
    },
    /// Concurrent WebRTC calls (str0m peers in this process) against a `callbot serve` child
    /// with instant speech: server CPU and memory per call, beside `bench calls`.
    Webrtc {
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Seconds each call lasts.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Cores the server may use.
        #[arg(long, default_value_t = 1)]
        server_cores: usize,
    },
    /// Round trip at the console: end of speech → first bot audio audible in a real Chromium
    /// talking over WebRTC (local engines).
    Browser {
        /// The whisper model (default: the installed one).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 10)]
        turns: usize,
    },
    /// How well calls hear callers: a fixed set of utterances (several espeak-ng voices and
    /// rates, and any WAV files given) through the phone path and the configured recogniser;
    /// word error rate per category, end-of-turn decisions, recognition time.
    Quality {
        /// The whisper model (default: the configured one).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// Another utterance set (YAML, as bench/quality/utterances.yaml).
        #[arg(long)]
        set: Option<std::path::PathBuf>,
        /// A directory of NAME.wav recordings with their words in NAME.txt.
        #[arg(long)]
        wavs: Option<std::path::PathBuf>,
        /// Beam width (1: greedy).
        #[arg(long, default_value_t = callbot_stream::speech::whisper::Decoding::default().beam)]
        beam: u8,
        /// No prompt from the conversation.
        #[arg(long)]
        no_prompt: bool,
        /// Encoder context beyond the utterance, in ms.
        #[arg(long, default_value_t = callbot_stream::speech::whisper::Decoding::default().context_pad_ms)]
        context_pad_ms: u32,
        /// Threads of the recogniser's worker.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Only this voice of the set (repeatable; `en-us` or `en-us@165`).
        #[arg(long)]
        voice: Vec<String>,
        /// The bot's end-of-turn silence, in ms.
        #[arg(long, default_value_t = 700)]
        silence_ms: u64,
        /// One line per utterance.
        #[arg(long)]
        verbose: bool,
        /// Leave out the end-of-turn model's rules (by default they run where the model and ONNX
        /// Runtime are installed).
        #[arg(long)]
        no_turn_model: bool,
    },
    /// How long a webhook-mode caller waits for the reply when the bot asks the model for a
    /// suggestion, with and without preemptive suggestions, for the embedded model and a
    /// fixed-delay stand-in (real speech through the phone path).
    Reply {
        /// The whisper model (default: the configured one).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// The embedded language model (default: the configured or installed one).
        #[arg(long)]
        llm_model: Option<std::path::PathBuf>,
        /// Calls per scenario (three caller turns each).
        #[arg(long, default_value_t = 3)]
        calls: usize,
        /// Delay of the model stand-in, in ms.
        #[arg(long, default_value_t = 300)]
        standin_delay_ms: u64,
    },
    /// How well language models answer on the phone: the phone-bot evaluation
    /// (bench/answers/eval.yaml) put to each model through the call engine's prompt and tools,
    /// scored by rules; time to first token and generation speed.
    Answers {
        /// A GGUF model to evaluate (repeatable; default: the configured one).
        #[arg(long)]
        model: Vec<std::path::PathBuf>,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        threads: u32,
        /// Another evaluation set (YAML, as bench/answers/eval.yaml).
        #[arg(long)]
        set: Option<std::path::PathBuf>,
        /// One line per case.
        #[arg(long)]
        verbose: bool,
    },
    /// The language model: the embedded model's time to first token and reply time at turns 1,
    /// 5 and 10, its speed, CPU and memory; how many concurrent calls one worker serves; the
    /// platform's own added latency in LLM mode over a fixed-delay model stand-in.
    Llm {
        /// The GGUF model (default: CALLBOT_LLM_MODEL_FILE or the installed one).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        threads: u32,
        /// 10-turn conversations for the per-turn figures.
        #[arg(long, default_value_t = 5)]
        calls: usize,
        /// Concurrency levels for the capacity figure.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
        levels: Vec<usize>,
        /// Seconds per concurrency level.
        #[arg(long, default_value_t = 20)]
        level_secs: u64,
        /// Delay of the model stand-in for the platform-overhead figure, in ms.
        #[arg(long, default_value_t = 300)]
        standin_delay_ms: u64,
    },
}

/// Runs one benchmark with the loaded settings.
pub async fn run(command: BenchCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        BenchCommand::Api {
            requests,
            concurrency,
        } => {
            println!(
                "callbot bench api: {requests} requests per operation, concurrency {concurrency}, SQLite store"
            );
            for fig in bench::api(bench::ApiBenchOptions {
                requests,
                concurrency,
            })
            .await?
            {
                println!("{fig}");
            }
            Ok(())
        }
        BenchCommand::Llm {
            model,
            threads,
            calls,
            levels,
            level_secs,
            standin_delay_ms,
        } => {
            let (configured, worker) = local_llm(settings);
            let model = model.unwrap_or(configured);
            for line in crate::bench_llm::llm(crate::bench_llm::LlmBenchOptions {
                model,
                worker,
                threads,
                calls,
                levels,
                level_secs,
                standin_delay: std::time::Duration::from_millis(standin_delay_ms),
            })
            .await?
            {
                println!("{line}");
            }
            Ok(())
        }
        BenchCommand::Webrtc {
            concurrency,
            duration,
            server_cores,
        } => {
            for line in crate::bench_webrtc::webrtc(crate::bench_webrtc::WebrtcBenchOptions {
                concurrency,
                duration: std::time::Duration::from_secs(duration),
                server_cores,
            })
            .await?
            {
                println!("{line}");
            }
            Ok(())
        }
        BenchCommand::Browser { model, turns } => {
            let model = whisper_model(model, settings);
            for line in crate::bench_browser::browser(crate::bench_browser::BrowserBenchOptions {
                model,
                turns,
            })
            .await?
            {
                println!("{line}");
            }
            Ok(())
        }
        BenchCommand::Quality {
            model,
            set,
            wavs,
            beam,
            no_prompt,
            context_pad_ms,
            threads,
            voice,
            silence_ms,
            verbose,
            no_turn_model,
        } => {
            anyhow::ensure!((1..=8).contains(&beam), "--beam must be 1-8");
            let turn_model = match &settings.calls.turn_model {
                callbot_core::settings::TurnModelSettings::Onnx { model, runtime }
                    if !no_turn_model =>
                {
                    Some((runtime.clone(), model.clone()))
                }
                _ => None,
            };
            let opts = crate::quality::QualityOptions {
                model: whisper_model(model, settings),
                set,
                wavs,
                decoding: callbot_stream::speech::whisper::Decoding {
                    beam,
                    prompt: !no_prompt,
                    context_pad_ms,
                },
                threads,
                voices: voice,
                usual: std::time::Duration::from_millis(silence_ms),
                verbose,
                turn_model,
            };
            for line in crate::quality::quality(opts).await?.lines {
                println!("{line}");
            }
            Ok(())
        }
        BenchCommand::Reply {
            model,
            llm_model,
            calls,
            standin_delay_ms,
        } => {
            let (configured, worker) = local_llm(settings);
            let opts = crate::bench_reply::ReplyBenchOptions {
                model: whisper_model(model, settings),
                llm_model: llm_model.unwrap_or(configured),
                worker,
                standin_delay: std::time::Duration::from_millis(standin_delay_ms),
                calls,
            };
            for line in crate::bench_reply::reply(opts).await? {
                println!("{line}");
            }
            Ok(())
        }
        BenchCommand::Answers {
            model,
            threads,
            set,
            verbose,
        } => {
            let (configured, worker) = local_llm(settings);
            let models = if model.is_empty() {
                vec![configured]
            } else {
                model
            };
            let opts = crate::quality::answers::AnswersOptions {
                models,
                worker,
                threads,
                set,
                verbose,
            };
            for line in crate::quality::answers::run(&opts).await? {
                println!("{line}");
            }
            Ok(())
        }
        BenchCommand::Amd => {
            for line in crate::bench_amd::amd().await? {
                println!("{line}");
            }
            Ok(())
        }
        BenchCommand::Voices { model, calls } => {
            let model = whisper_model(model, settings);
            for line in
                crate::bench_voices::voices(crate::bench_voices::VoiceBenchOptions { model, calls })
                    .await?
            {
                println!("{line}");
            }
            Ok(())
        }
        BenchCommand::Calls {
            concurrency,
            duration,
            server_cores,
            standins,
            arrival_rate,
            faults,
        } => {
            let opts = crate::bench_calls::CallBenchOptions {
                concurrency,
                duration: std::time::Duration::from_secs(duration),
                server_cores,
                standins,
                arrival_rate,
            };
            let lines = if faults {
                crate::bench_faults::soak(opts).await?
            } else {
                crate::bench_calls::calls(opts).await?
            };
            for line in lines {
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// The embedded model's file and worker program: the configured ones, or the installed model.
fn local_llm(settings: &Settings) -> (std::path::PathBuf, Option<std::path::PathBuf>) {
    match &settings.llm {
        callbot_core::settings::LlmSettings::Local { model, worker, .. } => {
            (model.clone(), worker.clone())
        }
        _ => (callbot_stream::models::llm::path(&settings.data_dir), None),
    }
}

/// The whisper model a benchmark uses: the one given, the configured one, or the installed one.
fn whisper_model(given: Option<std::path::PathBuf>, settings: &Settings) -> std::path::PathBuf {
    match (given, &settings.calls.speech) {
        (Some(m), _) => m,
        (None, callbot_core::settings::SpeechSettings::Local { model, .. }) => model.clone(),
        (None, _) => settings.data_dir.join("models").join("ggml-base.bin"),
    }
}
