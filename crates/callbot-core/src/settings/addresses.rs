//! Where this deployment is reached: the URLs Twilio is given and the internal address other
//! instances relay live calls' sockets to, explicit or derived from the listen address.

use super::Settings;

/// The stream service's path for answering-machine verdicts.
pub const AMD_PATH: &str = "/twilio/amd";

impl Settings {
    /// The URL Twilio is given for `/voice` and status callbacks: `PUBLIC_BASE_URL`, or
    /// `http://{addr}` for a local server.
    pub fn public_base(&self) -> String {
        match &self.public_base_url {
            Some(u) => u.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.addr),
        }
    }

    /// The base of the media-stream WebSocket URL: `STREAM_BASE_URL`, or `ws://{addr}`.
    pub fn stream_base(&self) -> String {
        match &self.stream_base_url {
            Some(u) => u.as_str().trim_end_matches('/').to_owned(),
            None => format!("ws://{}", self.addr),
        }
    }

    /// Where Twilio posts answering-machine verdicts: the stream service (which holds the call's
    /// media), at the HTTP form of `stream_base` (`wss://` → `https://`) plus `/twilio/amd`.
    pub fn amd_callback_url(&self) -> String {
        let base = self.stream_base();
        let http = base
            .strip_prefix("wss://")
            .map(|h| format!("https://{h}"))
            .or_else(|| base.strip_prefix("ws://").map(|h| format!("http://{h}")))
            .unwrap_or(base);
        format!("{http}{AMD_PATH}")
    }

    /// Where other instances reach this one: `CALLBOT_INSTANCE_URL`, or `http://{addr}` with an
    /// unspecified bind address read as loopback (one machine).
    pub fn instance_base(&self) -> String {
        match &self.instance_url {
            Some(u) => u.as_str().trim_end_matches('/').to_owned(),
            None => {
                let mut addr = self.addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        }
    }
}
