//! The HTTP client for URLs a tenant chooses (webhooks, `play` files): it connects only to
//! addresses that pass the public-address rule, checked on the very addresses it connects to.
//!
//! Checking a host name before a request is not enough: the client resolves it again when it
//! connects, and a DNS server under an attacker's control can answer a public address to the
//! check and `169.254.169.254` to the connection (DNS rebinding). Here the client's own resolver
//! is the check: a name whose answer holds any non-public address is refused as a whole, so the
//! connection can only go where the rule allowed. IP-literal hosts never reach a resolver; they
//! are checked by [`literal_allowed`] before the request. Redirects are not followed and no proxy
//! from the environment is used (either would connect somewhere unchecked).

use crate::domain::WebhookPolicy;
use crate::domain::webhook::is_non_public;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Resolves host names to addresses. Real adapter: [`SystemLookup`]; tests supply answers of
/// their choosing (a rebinding DNS server, special-purpose ranges). Does not block the runtime
/// (the system adapter runs `getaddrinfo` on tokio's blocking pool); safe to cancel; idempotent.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(
        &self,
        host: String,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The operating system's resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// Why a connection was not attempted: the name resolved to an address the rule refuses.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, which is not a public address")]
pub struct RefusedAddress {
    pub host: String,
    pub ip: IpAddr,
}

struct PublicOnly {
    inner: Arc<dyn Lookup>,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let inner = self.inner.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = inner.lookup(host.clone()).await?;
            if let Some(&ip) = ips.iter().find(|ip| is_non_public(**ip)) {
                tracing::warn!(%host, %ip, "refused to connect: the name resolves to a non-public address");
                return Err(Box::new(RefusedAddress { host, ip }) as _);
            }
            if ips.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{host} has no addresses"),
                )) as _);
            }
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// A client for tenant-chosen URLs under `policy`: with `allow_private` (local development) it
/// is an ordinary client; otherwise every name it connects to is resolved by `lookup` and
/// filtered as described above.
///
/// # Panics
/// At startup, when the client cannot be built (see [`crate::http_client::build`]).
pub fn client(policy: WebhookPolicy, lookup: Arc<dyn Lookup>) -> reqwest::Client {
    let builder = crate::http_client::builder(crate::http_client::TENANT_TOTAL)
        .pool_idle_timeout(Duration::from_secs(30))
        .no_proxy();
    let builder = if policy.allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly { inner: lookup }))
    };
    // Never a default client in its place: that one would not filter addresses.
    crate::http_client::build(builder, "tenant URLs")
}

/// The check for URLs whose host is an IP literal (no resolver sees those); names pass here and
/// are checked by the client's resolver when it connects.
pub fn literal_allowed(url: &url::Url, policy: WebhookPolicy) -> bool {
    if policy.allow_private {
        return true;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_non_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_non_public(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => true,
        None => false,
    }
}

/// True when a request failed because its host resolved to a refused address.
pub fn is_refused(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<RefusedAddress>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A DNS server that answers each lookup with the next answer of its list (the last one
    /// repeats): the first answer public, the next one internal is DNS rebinding.
    struct Scripted(Mutex<Vec<Vec<IpAddr>>>);

    impl Lookup for Scripted {
        fn lookup(
            &self,
            _host: String,
        ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
            let mut answers = self.0.lock().unwrap();
            let next = if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers[0].clone()
            };
            Box::pin(async move { Ok(next) })
        }
    }

    const STRICT: WebhookPolicy = WebhookPolicy {
        allow_private: false,
    };

    /// A local HTTP server counting the connections it accepts.
    async fn counting_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        });
        (port, hits)
    }

    #[tokio::test]
    async fn a_rebinding_name_never_reaches_the_internal_address() {
        let (port, hits) = counting_server().await;
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        // Whatever a pre-check saw (the public answer), the connection resolves again and gets
        // the loopback address: the client refuses it.
        let dns = Arc::new(Scripted(Mutex::new(vec![vec![public], vec![loopback]])));
        let _ = dns.lookup("rebind.example".into()).await;
        let http = client(STRICT, dns);
        let err = http
            .get(format!("http://rebind.example:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(is_refused(&err), "{err:?}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn every_special_purpose_answer_is_refused_at_connect_time() {
        let (port, hits) = counting_server().await;
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.0.8",
            "192.88.99.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:db8::1",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            // One public address next to it does not make the answer acceptable.
            let answer = vec!["93.184.215.14".parse().unwrap(), ip];
            let http = client(STRICT, Arc::new(Scripted(Mutex::new(vec![answer]))));
            let err = http
                .get(format!("http://host.example:{port}/"))
                .send()
                .await
                .unwrap_err();
            assert!(is_refused(&err), "{ip}: {err:?}");
        }
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn allowed_private_targets_connect() {
        let (port, hits) = counting_server().await;
        let dns = Arc::new(Scripted(Mutex::new(vec![vec![
            "127.0.0.1".parse().unwrap(),
        ]])));
        let http = client(
            WebhookPolicy {
                allow_private: true,
            },
            dns,
        );
        let resp = http
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap(), "ok");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn literal_hosts_are_checked_before_the_request() {
        for raw in [
            "https://169.254.169.254/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:7f00:1::]/",
            "https://[::ffff:10.0.0.1]/",
        ] {
            assert!(!literal_allowed(&raw.parse().unwrap(), STRICT), "{raw}");
        }
        assert!(literal_allowed(
            &"https://93.184.215.14/".parse().unwrap(),
            STRICT
        ));
        assert!(literal_allowed(
            &"https://hooks.example.com/".parse().unwrap(),
            STRICT
        ));
    }
}
