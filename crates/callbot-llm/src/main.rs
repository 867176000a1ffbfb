//! `callbot-llm`: loads the model, binds, prints `listening on http://ADDR` (the supervisor reads
//! it), serves until SIGTERM or until its stdin closes (the supervising process is gone).

use anyhow::Context;
use clap::Parser;
use tokio::io::AsyncReadExt;

#[derive(Debug, Parser)]
#[command(name = "callbot-llm", about = "OpenAI-compatible local model worker")]
struct Args {
    /// The GGUF model file.
    #[arg(long)]
    model: std::path::PathBuf,
    /// Listen address (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: std::net::SocketAddr,
    /// Threads for prompt evaluation and generation.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Requests generated at once, each with its conversation's prompt cached (the KV cache
    /// holds `slots` × `slot_ctx` tokens: about 23 KB a token for SmolLM2-135M).
    #[arg(long, default_value_t = 8)]
    slots: u32,
    /// Context per conversation, in tokens.
    #[arg(long, default_value_t = 2048)]
    slot_ctx: u32,
    /// Requests that may wait for the model; more are refused with 503.
    #[arg(long, default_value_t = 32)]
    queue: usize,
    /// Exit when stdin reaches end of file (used by `callbot serve`).
    #[arg(long)]
    exit_with_stdin: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let engine = callbot_llm::Engine::start(callbot_llm::EngineConfig {
        model: args.model.clone(),
        threads: args.threads,
        slots: args.slots,
        slot_ctx: args.slot_ctx,
        queue: args.queue,
    })
    .with_context(|| format!("starting the model {}", args.model.display()))?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    let exit_with_stdin = args.exit_with_stdin;
    let shutdown = async move {
        let stdin_closed = async {
            if exit_with_stdin {
                let mut buf = [0u8; 64];
                let mut stdin = tokio::io::stdin();
                while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
            } else {
                std::future::pending::<()>().await;
            }
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = stdin_closed => {}
        }
    };
    tracing::info!(%addr, model = %args.model.display(), threads = args.threads, "local model ready");
    callbot_llm::serve(listener, engine, shutdown).await?;
    Ok(())
}
