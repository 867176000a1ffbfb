//! Business webhook URLs: https to public hosts unless the operator allows private targets.

use super::ParseError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Operator policy for webhook targets (`CALLBOT_ALLOW_PRIVATE_WEBHOOKS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// Allow plain http and loopback/private/link-local targets (local development).
    pub allow_private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

/// True for addresses a public webhook must never point at: every special-purpose range of the
/// IANA registries. IPv4: "this network", private, CGNAT, loopback, link-local (cloud metadata at
/// 169.254.169.254), IETF protocol assignments, documentation, the 6to4 relay, benchmarking,
/// multicast, reserved and broadcast. IPv6: anything outside global unicast `2000::/3` (loopback,
/// unspecified, IPv4-compatible, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, discard, unique-local,
/// link-local, site-local, multicast), and inside it IETF protocol assignments `2001::/23` (Teredo
/// included), documentation `2001:db8::/32` and `3fff::/20`, and 6to4 `2002::/16`. IPv4-mapped
/// addresses follow the IPv4 rule.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_non_public_v4(v4);
            }
            let s = v6.segments();
            (s[0] & 0xe000) != 0x2000 // not global unicast
                || (s[0] == 0x2001 && s[1] < 0x0200) // 2001::/23 IETF protocol assignments
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[0] == 0x2002 // 6to4
                || (s[0] == 0x3fff && s[1] < 0x1000) // documentation 3fff::/20
        }
    }
}

fn is_non_public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 CGNAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 IETF protocol assignments
        || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 192.88.99.0/24 6to4 relay anycast
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240
}

fn is_internal_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost"
        || h.ends_with(".localhost")
        || h.ends_with(".local")
        || h.ends_with(".internal")
        || h.ends_with(".localdomain")
        || !h.contains('.')
}

impl WebhookUrl {
    pub fn parse(raw: &str, policy: WebhookPolicy) -> Result<Self, ParseError> {
        if raw.len() > 2_048 {
            return Err(ParseError::new(
                "invalid_webhook",
                "webhook URL is longer than 2048 characters",
            ));
        }
        let url = url::Url::parse(raw.trim()).map_err(|e| {
            ParseError::new(
                "invalid_webhook",
                format!("webhook is not a valid URL: {e}"),
            )
        })?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_private => {}
            "http" => {
                return Err(ParseError::new(
                    "webhook_not_allowed",
                    "webhook must use https (plain http is allowed only when the operator sets CALLBOT_ALLOW_PRIVATE_WEBHOOKS)",
                ));
            }
            other => {
                return Err(ParseError::new(
                    "invalid_webhook",
                    format!("webhook scheme {other:?} is not http(s)"),
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ParseError::new(
                "invalid_webhook",
                "webhook URL must not embed credentials",
            ));
        }
        let host = url
            .host()
            .ok_or_else(|| ParseError::new("invalid_webhook", "webhook URL has no host"))?;
        if !policy.allow_private {
            let private = match host {
                url::Host::Ipv4(ip) => is_non_public(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => is_non_public(IpAddr::V6(ip)),
                url::Host::Domain(name) => is_internal_name(name),
            };
            if private {
                return Err(ParseError::new(
                    "webhook_not_allowed",
                    "webhook points at a private, loopback or internal address; the operator must set CALLBOT_ALLOW_PRIVATE_WEBHOOKS to allow it",
                ));
            }
        }
        Ok(WebhookUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: WebhookPolicy = WebhookPolicy {
        allow_private: false,
    };
    const DEV: WebhookPolicy = WebhookPolicy {
        allow_private: true,
    };

    #[test]
    fn public_https_is_accepted() {
        assert!(WebhookUrl::parse("https://example.com/hook", STRICT).is_ok());
        assert!(WebhookUrl::parse("https://8.8.8.8/hook", STRICT).is_ok());
        assert!(WebhookUrl::parse("https://[2606:4700::1111]/hook", STRICT).is_ok());
    }

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        for raw in [
            "http://example.com/hook",
            "https://localhost/hook",
            "https://127.0.0.1/hook",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://172.16.5.4/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[fd00::1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:a9fe:a9fe::1]/",
            "https://[2001::1]/",
            "https://192.0.0.170/",
            "https://100.64.1.1/",
            "https://0.0.0.0/",
            "https://db.internal/",
            "https://intranet/",
        ] {
            assert_eq!(
                WebhookUrl::parse(raw, STRICT).unwrap_err().code,
                "webhook_not_allowed",
                "{raw}"
            );
            assert!(WebhookUrl::parse(raw, DEV).is_ok(), "{raw}");
        }
    }

    #[test]
    fn garbage_is_invalid() {
        for raw in [
            "",
            "not a url",
            "ftp://example.com/",
            "https://user:pw@example.com/",
        ] {
            assert_eq!(
                WebhookUrl::parse(raw, DEV).unwrap_err().code,
                "invalid_webhook",
                "{raw}"
            );
        }
    }
}
