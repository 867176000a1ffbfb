//! `callbot bench api`: drives POST /bots, GET /bots/{id} and GET /bots over real HTTP and prints
//! requests/s and latency percentiles, so changes can be compared.

use crate::server;
use anyhow::{Context as _, bail};
use callbot_core::apikey;
use callbot_core::domain::TenantId;
use callbot_core::settings::Settings;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ApiBenchOptions {
    pub requests: usize,
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct Figures {
    pub name: String,
    pub requests: usize,
    pub errors: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<16} {:>7} req {:>4} err {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
            self.name,
            self.requests,
            self.errors,
            self.per_second,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Runs `total` requests made by `make(i)` with `concurrency` workers; returns figures and bodies.
async fn drive<F, Fut>(
    name: &str,
    total: usize,
    concurrency: usize,
    make: F,
) -> (Figures, Vec<serde_json::Value>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<serde_json::Value, String>> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (make, next) = (Arc::clone(&make), Arc::clone(&next));
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut bodies = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let t = Instant::now();
                    match make(i).await {
                        Ok(v) => bodies.push(v),
                        Err(_) => errors += 1,
                    }
                    lat.push(t.elapsed());
                }
                (lat, bodies, errors)
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(total);
    let mut bodies = Vec::with_capacity(total);
    let mut errors = 0;
    for w in workers {
        if let Ok((l, b, e)) = w.await {
            lat.extend(l);
            bodies.extend(b);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    let figures = Figures {
        name: name.to_owned(),
        requests: total,
        errors,
        per_second: total as f64 / elapsed.as_secs_f64(),
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
    };
    (figures, bodies)
}

async fn json_or_err(
    resp: reqwest::Result<reqwest::Response>,
    want: u16,
) -> Result<serde_json::Value, String> {
    let resp = resp.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    if status == want {
        Ok(body)
    } else {
        Err(format!("status {status}: {body}"))
    }
}

/// Starts a server on SQLite in a temporary directory and benchmarks it.
pub async fn api(opts: ApiBenchOptions) -> anyhow::Result<Vec<Figures>> {
    let dir = tempfile::tempdir().context("creating a temporary data dir")?;
    let mut settings = Settings::for_local(dir.path().to_path_buf());
    settings.calls.speech = callbot_core::settings::SpeechSettings::Instant;
    settings.limits.max_bots_per_tenant = u32::try_from(opts.requests + 100).unwrap_or(u32::MAX);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    settings.addr = listener.local_addr()?;
    let platform = server::build(settings).await?;
    let store = platform.state.store.clone();
    let (key, hash) = apikey::generate();
    let tenant = TenantId::parse("bench").map_err(|e| anyhow::anyhow!(e))?;
    store.put_api_key(&hash, &tenant, "bench").await?;
    let base = platform.state.settings.public_base();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run(listener, platform, async {
        let _ = rx.await;
    }));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency * 2)
        .build()?;
    let key = apikey::reveal(&key).to_owned();
    let body = serde_json::json!({
        "goal": "Take restaurant reservations",
        "webhook": "https://example.com/hook",
        "context": "Open 5PM-10PM",
        "voice": "local:en-gb"
    });
    let mut out = Vec::new();
    let (c, k, b) = (client.clone(), key.clone(), base.clone());
    let (fig, created) = drive("POST /bots", opts.requests, opts.concurrency, move |_| {
        let req = c
            .post(format!("{b}/bots"))
            .header("x-api-key", &k)
            .json(&body)
            .send();
        async move { json_or_err(req.await, 201).await }
    })
    .await;
    out.push(fig);
    let ids: Arc<Vec<String>> = Arc::new(
        created
            .iter()
            .filter_map(|v| v["id"].as_str().map(str::to_owned))
            .collect(),
    );
    if ids.is_empty() {
        bail!("no bot was created; cannot benchmark reads");
    }
    let (c, k, b) = (client.clone(), key.clone(), base.clone());
    let (fig, _) = drive(
        "GET /bots/{id}",
        opts.requests,
        opts.concurrency,
        move |i| {
            let req = c
                .get(format!("{b}/bots/{}", ids[i % ids.len()]))
                .header("x-api-key", &k)
                .send();
            async move { json_or_err(req.await, 200).await }
        },
    )
    .await;
    out.push(fig);
    // Listing: a tenant with the default quota's worth (10) of bots.
    let small = TenantId::parse("bench-list").map_err(|e| anyhow::anyhow!(e))?;
    let (list_key, list_hash) = apikey::generate();
    let list_key = apikey::reveal(&list_key).to_owned();
    let store_client = client.clone();
    store.put_api_key(&list_hash, &small, "bench").await?;
    for _ in 0..10 {
        let r = store_client
            .post(format!("{base}/bots"))
            .header("x-api-key", &list_key)
            .json(&serde_json::json!({"goal": "g", "webhook": "https://example.com/h"}))
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            bail!("creating list bots: {}", r.status());
        }
    }
    let (c, b) = (client.clone(), base.clone());
    let (fig, _) = drive(
        "GET /bots (10)",
        opts.requests,
        opts.concurrency,
        move |_| {
            let req = c
                .get(format!("{b}/bots"))
                .header("x-api-key", &list_key)
                .send();
            async move { json_or_err(req.await, 200).await }
        },
    )
    .await;
    out.push(fig);
    let _ = tx.send(());
    let _ = server.await;
    Ok(out)
}
