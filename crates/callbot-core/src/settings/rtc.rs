//! Browser and WebRTC settings: the ICE servers handed to clients (`CALLBOT_ICE_SERVERS`, JSON in
//! the RTCIceServer shape), a TURN REST secret that turns TURN entries' credentials into
//! short-lived ones (`CALLBOT_TURN_SECRET`, coturn's `use-auth-secret`), the UDP ports WebRTC
//! legs bind (`CALLBOT_RTC_PORTS`, `from-to`), the public address to advertise behind a 1:1 NAT
//! (`CALLBOT_RTC_PUBLIC_IP`), and whether clients may name private addresses as their ICE
//! candidates (`CALLBOT_RTC_ALLOW_PRIVATE`; off, the server never sends STUN to internal hosts).

use super::{SettingsError, err};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One entry of `/iceservers` (WebRTC's RTCIceServer; RustPBX's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RtcSettings {
    pub ice_servers: Vec<IceServer>,
    /// Shared secret of a TURN server in REST-credential mode.
    pub turn_secret: Option<SecretString>,
    /// Lifetime of those credentials (`CALLBOT_TURN_TTL_SECS`, default 3600).
    pub turn_ttl: Duration,
    /// UDP ports for WebRTC legs; `None`: any the OS picks.
    pub ports: Option<(u16, u16)>,
    /// The public address the legs' ports are reachable at (a 1:1 NAT, such as an EC2 elastic
    /// IP), advertised as a server-reflexive candidate beside the host one.
    pub public_ip: Option<std::net::IpAddr>,
    /// Remote ICE candidates at loopback, private, link-local or other internal addresses are
    /// used (local networks, development) instead of refused.
    pub allow_private: bool,
}

impl RtcSettings {
    pub(super) fn from_get<'a>(
        get: &dyn Fn(&str) -> Option<&'a String>,
    ) -> Result<Self, SettingsError> {
        let ice_servers = match get("CALLBOT_ICE_SERVERS") {
            None => Vec::new(),
            Some(raw) => {
                let list: Vec<IceServer> = serde_json::from_str(raw).map_err(|e| {
                    err(
                        "CALLBOT_ICE_SERVERS",
                        format!("a JSON list of {{\"urls\": [...], \"username\"?, \"credential\"?}}: {e}"),
                    )
                })?;
                for s in &list {
                    let ok = !s.urls.is_empty()
                        && s.urls.iter().all(|u| {
                            ["stun:", "stuns:", "turn:", "turns:"]
                                .iter()
                                .any(|p| u.starts_with(p))
                        });
                    if !ok {
                        return Err(err(
                            "CALLBOT_ICE_SERVERS",
                            "every entry needs urls starting stun:, stuns:, turn: or turns:",
                        ));
                    }
                }
                list
            }
        };
        let ports = match get("CALLBOT_RTC_PORTS") {
            None => None,
            Some(raw) => {
                let parsed = raw.split_once('-').and_then(|(a, b)| {
                    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                    (a >= 1024 && a <= b).then_some((a, b))
                });
                Some(parsed.ok_or_else(|| {
                    err(
                        "CALLBOT_RTC_PORTS",
                        format!("{raw:?}: a UDP port range like 40000-40999 (from ≥ 1024)"),
                    )
                })?)
            }
        };
        let turn_ttl = match get("CALLBOT_TURN_TTL_SECS") {
            None => Duration::from_secs(3600),
            Some(raw) => raw
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| (60..=86_400).contains(s))
                .map(Duration::from_secs)
                .ok_or_else(|| err("CALLBOT_TURN_TTL_SECS", "60-86400 seconds"))?,
        };
        let public_ip = match get("CALLBOT_RTC_PUBLIC_IP") {
            None => None,
            Some(raw) => Some(
                raw.trim()
                    .parse::<std::net::IpAddr>()
                    .ok()
                    .filter(|ip| !ip.is_loopback() && !ip.is_unspecified() && !ip.is_multicast())
                    .ok_or_else(|| {
                        err(
                            "CALLBOT_RTC_PUBLIC_IP",
                            format!("{raw:?}: the IPv4 or IPv6 address clients reach this host at"),
                        )
                    })?,
            ),
        };
        Ok(RtcSettings {
            ice_servers,
            turn_secret: get("CALLBOT_TURN_SECRET").map(|s| SecretString::from(s.clone())),
            turn_ttl,
            ports,
            public_ip,
            allow_private: super::truthy(get("CALLBOT_RTC_ALLOW_PRIVATE")),
        })
    }

    /// The ICE servers for a client of `tenant` at `now` (Unix seconds): TURN entries get REST
    /// credentials (`username` = `<expiry>:<tenant>`, `credential` = base64 HMAC-SHA1 of it)
    /// when a TURN secret is set; others are returned as configured.
    pub fn ice_servers_for(&self, tenant: &str, now: u64) -> Vec<IceServer> {
        use base64::Engine as _;
        self.ice_servers
            .iter()
            .map(|s| {
                let turn = s.urls.iter().any(|u| u.starts_with("turn"));
                match (&self.turn_secret, turn) {
                    (Some(secret), true) => {
                        let username = format!("{}:{tenant}", now + self.turn_ttl.as_secs());
                        let mut mac =
                            Hmac::<sha1::Sha1>::new_from_slice(secret.expose_secret().as_bytes())
                                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
                        mac.update(username.as_bytes());
                        let credential = base64::engine::general_purpose::STANDARD
                            .encode(mac.finalize().into_bytes());
                        IceServer {
                            urls: s.urls.clone(),
                            username: Some(username),
                            credential: Some(credential),
                        }
                    }
                    _ => s.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<RtcSettings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RtcSettings::from_get(&|k| map.get(k))
    }

    #[test]
    fn ice_servers_ports_and_turn_credentials() {
        let s = parse(&[
            (
                "CALLBOT_ICE_SERVERS",
                r#"[{"urls":["stun:stun.example.com:3478"]},{"urls":["turn:turn.example.com:3478"],"username":"u","credential":"p"}]"#,
            ),
            ("CALLBOT_RTC_PORTS", "40000-40099"),
            ("CALLBOT_TURN_SECRET", "north"),
        ])
        .unwrap();
        assert_eq!(s.ports, Some((40000, 40099)));
        let got = s.ice_servers_for("acme", 1_000);
        assert_eq!(
            got[0].username, None,
            "STUN entries are passed on as they are"
        );
        assert_eq!(got[1].username.as_deref(), Some("4600:acme"));
        // coturn's REST scheme: base64(HMAC-SHA1(secret, username)).
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"north").unwrap();
        mac.update(b"4600:acme");
        use base64::Engine as _;
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(got[1].credential.as_deref(), Some(want.as_str()));
        assert!(parse(&[("CALLBOT_ICE_SERVERS", "[{\"urls\":[\"http://x\"]}]")]).is_err());
        assert!(parse(&[("CALLBOT_ICE_SERVERS", "nope")]).is_err());
        assert!(parse(&[("CALLBOT_RTC_PORTS", "50-40")]).is_err());
        assert!(parse(&[("CALLBOT_RTC_PUBLIC_IP", "127.0.0.1")]).is_err());
        assert!(parse(&[("CALLBOT_RTC_PUBLIC_IP", "nope")]).is_err());
        let s = parse(&[("CALLBOT_RTC_PUBLIC_IP", "203.0.113.7")]).unwrap();
        assert_eq!(s.public_ip, Some("203.0.113.7".parse().unwrap()));
        assert!(
            !s.allow_private,
            "private candidates are refused by default"
        );
        assert!(parse(&[]).unwrap().ice_servers.is_empty());
    }
}
