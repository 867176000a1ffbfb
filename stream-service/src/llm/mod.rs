//! The stream service's side of the language models: the types, the trait, the OpenAI-compatible
//! adapter and the post-call analysis live in `callbot_core::llm` (re-exported here); `worker`
//! starts and supervises the embedded model's worker; `prompt` builds what the model is told;
//! `sentences` cuts a stream into sentences for synthesis.

pub mod prompt;
pub mod sentences;
pub mod worker;

pub use callbot_core::llm::{
    ChatMessage, ChatRequest, Llm, LlmError, LlmEvent, LlmStream, ToolCall, ToolSpec, Usage,
    analysis, openai,
};

/// Where the `/llm/v1` gateway forwards to: the model server's base URL and the platform's key.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Ends without `/`, e.g. `https://api.openai.com/v1`.
    pub base: String,
    pub key: Option<secrecy::SecretString>,
}

/// The model the settings ask for, and the local worker when it runs one.
#[derive(Debug, Default, Clone)]
pub struct LlmSetup {
    pub llm: Option<std::sync::Arc<dyn Llm>>,
    pub upstream: Option<Upstream>,
    pub worker: Option<std::sync::Arc<worker::LocalWorker>>,
    /// The model is the small embedded one: the bot's facts go with the caller's words too.
    pub small: bool,
}

/// Starts what `settings` describe: nothing (`off`), the local worker and an adapter pointed at
/// it (`local`), or the adapter for a remote server (`openai`).
pub async fn from_settings(
    settings: &callbot_core::settings::LlmSettings,
) -> Result<LlmSetup, worker::WorkerError> {
    use callbot_core::settings::LlmSettings;
    use std::sync::Arc;
    Ok(match settings {
        LlmSettings::Off => LlmSetup::default(),
        LlmSettings::Local {
            model,
            worker: program,
            threads,
        } => {
            let w = worker::start(&worker::program(program.as_deref()), model, *threads).await?;
            let name = model
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let llm = openai::OpenAiLlm::new(&w.base_url, None, name, "local");
            LlmSetup {
                llm: Some(Arc::new(llm)),
                upstream: Some(Upstream {
                    base: w.base_url.as_str().trim_end_matches('/').to_owned(),
                    key: None,
                }),
                worker: Some(Arc::new(w)),
                small: true,
            }
        }
        LlmSettings::OpenAi {
            base_url,
            api_key,
            model,
        } => LlmSetup {
            llm: Some(Arc::new(openai::OpenAiLlm::new(
                base_url,
                api_key.clone(),
                model.clone(),
                "openai",
            ))),
            upstream: Some(Upstream {
                base: base_url.as_str().trim_end_matches('/').to_owned(),
                key: api_key.clone(),
            }),
            worker: None,
            small: false,
        },
    })
}
