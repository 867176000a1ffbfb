//! Starts and supervises the local model worker (`callbot-llm`, a separate program because
//! llama.cpp and whisper.cpp each link their own ggml). It listens on a loopback port chosen at
//! the first start; if it dies it is started again on the same port, so the adapter's base URL
//! never changes. It exits by itself when this process goes away (its stdin closes).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long loading the model may take.
const START_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the model file {0} is missing: run `callbot models install` (it fetches the LLM too)")]
    NoModel(PathBuf),
    #[error(
        "the worker program {0} is missing: build it with `cargo build --release -p callbot-llm`"
    )]
    NoProgram(PathBuf),
    #[error("starting the model worker: {0}")]
    Start(String),
}

/// The running worker: its OpenAI-compatible base URL. Dropping it stops the worker.
#[derive(Debug)]
pub struct LocalWorker {
    pub base_url: url::Url,
    /// The process id of the first worker started (benchmarks read its CPU and memory).
    pub pid: Option<u32>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Drop for LocalWorker {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

/// The worker program: `worker` if given, else `callbot-llm` next to the running executable.
pub fn program(worker: Option<&Path>) -> PathBuf {
    match worker {
        Some(w) => w.to_path_buf(),
        None => std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("callbot-llm")))
            .unwrap_or_else(|| PathBuf::from("callbot-llm")),
    }
}

/// Starts the worker and waits until the model is loaded and it listens.
pub async fn start(program: &Path, model: &Path, threads: u32) -> Result<LocalWorker, WorkerError> {
    if !model.exists() {
        return Err(WorkerError::NoModel(model.to_path_buf()));
    }
    if !program.exists() {
        return Err(WorkerError::NoProgram(program.to_path_buf()));
    }
    let (child, addr) = spawn(program, model, threads, "127.0.0.1:0").await?;
    let pid = child.id();
    let base_url = url::Url::parse(&format!("http://{addr}/v1"))
        .map_err(|e| WorkerError::Start(e.to_string()))?;
    let (program, model) = (program.to_path_buf(), model.to_path_buf());
    let supervisor = tokio::spawn(async move {
        let mut child = child;
        loop {
            // `wait` closes the child's stdin first, which tells the worker to exit: keep it.
            let _stdin = child.stdin.take();
            let status = child.wait().await;
            tracing::error!(?status, "the local model worker exited; starting it again");
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match spawn(&program, &model, threads, &addr).await {
                    Ok((c, _)) => {
                        child = c;
                        break;
                    }
                    Err(e) => tracing::error!(error = %e, "restarting the model worker failed"),
                }
            }
        }
    });
    Ok(LocalWorker {
        base_url,
        pid,
        supervisor,
    })
}

async fn spawn(
    program: &Path,
    model: &Path,
    threads: u32,
    addr: &str,
) -> Result<(Child, String), WorkerError> {
    let mut child = Command::new(program)
        .arg("--model")
        .arg(model)
        .args([
            "--addr",
            addr,
            "--threads",
            &threads.to_string(),
            "--exit-with-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| WorkerError::Start(format!("{}: {e}", program.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| WorkerError::Start("no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
        .await
        .map_err(|_| WorkerError::Start("the model did not load within 120 s".into()))?
        .map_err(|e| WorkerError::Start(e.to_string()))?
        .ok_or_else(|| {
            WorkerError::Start("the worker exited while loading (see its log)".into())
        })?;
    let addr = line
        .strip_prefix("listening on http://")
        .ok_or_else(|| WorkerError::Start(format!("unexpected first line {line:?}")))?
        .trim()
        .to_owned();
    // Keep reading stdout so the worker never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr))
}
