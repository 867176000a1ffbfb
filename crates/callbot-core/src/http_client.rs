//! The process's outbound HTTP clients: each gets a connect and a total timeout, and a client
//! that cannot be built stops the process at startup rather than falling back to a default one
//! (which would carry neither the timeouts nor, for tenant-chosen URLs, the address filter).

use std::time::Duration;

/// How long a TCP (and TLS) connection may take to open, for every outbound client.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Total time of one request to a tenant's webhook or `play` URL (the turn deadline is shorter
/// and applied per request; this bounds what nothing else does, such as a body that never ends).
pub const TENANT_TOTAL: Duration = Duration::from_secs(30);

/// Total time of one request to a speech provider (a long sentence streams for a while).
pub const PROVIDER_TOTAL: Duration = Duration::from_secs(120);

/// Total time of one request to a language model, streamed to its end.
pub const LLM_TOTAL: Duration = Duration::from_secs(180);

/// A builder with [`CONNECT_TIMEOUT`] and `total` set, and no redirects followed.
pub fn builder(total: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(total)
        .redirect(reqwest::redirect::Policy::none())
}

/// Builds `b` or stops the process: called while it starts, never per request.
///
/// # Panics
/// When the TLS backend cannot be initialised (the process cannot make safe requests at all).
pub fn build(b: reqwest::ClientBuilder, what: &str) -> reqwest::Client {
    match b.build() {
        Ok(c) => c,
        Err(e) => panic!("building the HTTP client for {what} failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_that_never_answers_is_given_up_on_after_the_total_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts, reads nothing, answers nothing.
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                open.push(s);
            }
        });
        let client = build(builder(Duration::from_millis(300)), "a test");
        let started = std::time::Instant::now();
        let r = client.get(format!("http://{addr}/")).send().await;
        assert!(r.is_err_and(|e| e.is_timeout()));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
