//! WebRTC legs (`/call/webrtc`) with str0m, a sans-IO implementation of ICE, DTLS-SRTP and RTP:
//! this module owns the UDP sockets and drives it. Only PCMU (G.711 μ-law, payload type 0) is
//! offered, so the line's audio crosses without transcoding. The leg's task turns received RTP
//! into 20 ms caller frames for the call engine and the engine's frames into RTP packets; it
//! reports `Closed` when ICE fails, disconnects or never connects, or the peer stops answering.
//!
//! Addresses: the answer offers a host candidate on the address of the default route (never
//! loopback) and, behind a 1:1 NAT, a server-reflexive one at the configured public address. The
//! client's candidates (in the offer and trickled) that point at loopback, private, link-local,
//! metadata or other internal addresses are refused unless the operator allows private addresses,
//! so a client cannot make the server send STUN to hosts inside its network.

use crate::audio::FRAME_BYTES;
use crate::engine::call::leg::RtcEvent;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::SdpOffer;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// ICE must connect within this after the answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A WebRTC leg that accepted an offer: the answer to send back, and the channels the call
/// engine uses (`media`: frames to play; `candidates`: trickled remote ICE candidates;
/// `events`: caller audio and the end of the leg).
#[derive(Debug)]
pub struct RtcLeg {
    pub answer_sdp: String,
    pub media: mpsc::Sender<[u8; FRAME_BYTES]>,
    pub candidates: mpsc::Sender<String>,
    pub events: mpsc::Receiver<RtcEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum RtcSetupError {
    #[error("invalid SDP offer: {0}")]
    Offer(String),
    #[error("the offer has no audio that can be sent as PCMU (G.711 μ-law)")]
    NoPcmu,
    #[error("no UDP port free for the WebRTC leg: {0}")]
    Ports(String),
}

/// UDP ports for WebRTC legs (`CALLBOT_RTC_PORTS`, `from-to`), or any the OS picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange(pub u16, pub u16);

/// The deployment's WebRTC address rules (from `RtcSettings`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    pub ports: Option<PortRange>,
    /// Advertised as a server-reflexive candidate (`CALLBOT_RTC_PUBLIC_IP`).
    pub public_ip: Option<IpAddr>,
    /// Remote candidates at internal addresses are used (`CALLBOT_RTC_ALLOW_PRIVATE`).
    pub allow_private: bool,
}

impl Policy {
    pub fn from_settings(s: &callbot_core::settings::RtcSettings) -> Self {
        Policy {
            ports: s.ports.map(|(a, b)| PortRange(a, b)),
            public_ip: s.public_ip,
            allow_private: s.allow_private,
        }
    }

    /// Whether a remote ICE candidate line (`candidate:…`, with or without `a=`) may be used:
    /// `Err` says why not.
    pub fn remote_candidate(&self, line: &str) -> Result<(), String> {
        let line = line.trim().trim_start_matches("a=");
        // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
        let Some(addr) = line.split_whitespace().nth(4) else {
            return Err("not an ICE candidate line".into());
        };
        let Ok(ip) = addr.parse::<IpAddr>() else {
            // An mDNS name (`….local`) or another host name: nothing here resolves it.
            return Err(format!("candidate address {addr:?} is not an IP address"));
        };
        if !self.allow_private && callbot_core::domain::webhook::is_non_public(ip) {
            return Err(format!(
                "candidate address {ip} is loopback, private, link-local or otherwise internal; the operator must set CALLBOT_RTC_ALLOW_PRIVATE to allow it"
            ));
        }
        Ok(())
    }

    /// The offer without the candidates [`Policy::remote_candidate`] refuses.
    pub fn filter_offer(&self, sdp: &str) -> String {
        let mut out = String::with_capacity(sdp.len());
        for line in sdp.split_inclusive('\n') {
            let refused = line.starts_with("a=candidate:") && self.remote_candidate(line).is_err();
            if !refused {
                out.push_str(line);
            }
        }
        out
    }
}

/// The address to gather the host candidate on: the default route's (found without sending
/// anything), never loopback; `None` on a machine without a network.
fn host_address() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

async fn bind(ip: IpAddr, ports: Option<PortRange>) -> Result<UdpSocket, RtcSetupError> {
    match ports {
        None => UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(|e| RtcSetupError::Ports(e.to_string())),
        Some(PortRange(lo, hi)) => {
            // Start at a random port of the range so concurrent legs do not all probe from `lo`.
            let span = u32::from(hi - lo) + 1;
            let start = rand::random::<u32>() % span;
            for i in 0..span {
                let port = lo + ((start + i) % span) as u16;
                if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)).await {
                    return Ok(s);
                }
            }
            Err(RtcSetupError::Ports(format!("all of {lo}-{hi} are in use")))
        }
    }
}

type Sockets = Vec<(UdpSocket, SocketAddr)>;

/// A PCMU-only peer with a host candidate on its own socket (and a server-reflexive one at the
/// public address, when there is one).
async fn peer(policy: Policy) -> Result<(Rtc, Sockets), RtcSetupError> {
    let provider = Arc::new(str0m::crypto::from_feature_flags());
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(provider)
        .clear_codecs()
        .enable_pcmu(true, false)
        .build(Instant::now());
    let mut sockets = Vec::new();
    let Some(ip) = host_address() else {
        return Err(RtcSetupError::Ports(
            "this host has no network address to offer (no default route)".into(),
        ));
    };
    let socket = bind(ip, policy.ports).await?;
    let local = socket
        .local_addr()
        .map_err(|e| RtcSetupError::Ports(e.to_string()))?;
    if let Ok(c) = Candidate::host(local, "udp") {
        rtc.add_local_candidate(c);
    }
    if let Some(public) = policy.public_ip
        && let Ok(c) =
            Candidate::server_reflexive(SocketAddr::new(public, local.port()), local, "udp")
    {
        rtc.add_local_candidate(c);
    }
    sockets.push((socket, local));
    Ok((rtc, sockets))
}

/// Starts a negotiated peer's task; `answer_sdp` is what to send back (empty for an offerer).
fn start(
    rtc: Rtc,
    sockets: Sockets,
    mid: Option<Mid>,
    answer_sdp: String,
) -> Result<RtcLeg, RtcSetupError> {
    let pcmu = rtc
        .codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == str0m::format::Codec::PCMU)
        .map(|p| p.pt());
    let Some(pt) = pcmu else {
        return Err(RtcSetupError::NoPcmu);
    };
    let (media_tx, media_rx) = mpsc::channel(64);
    let (cand_tx, cand_rx) = mpsc::channel(16);
    let (ev_tx, ev_rx) = mpsc::channel(64);
    tokio::spawn(run(rtc, sockets, pt, mid, media_rx, cand_rx, ev_tx));
    Ok(RtcLeg {
        answer_sdp,
        media: media_tx,
        candidates: cand_tx,
        events: ev_rx,
    })
}

/// Accepts an SDP offer: binds the leg's sockets, answers, and starts the leg's task.
pub async fn accept(offer: &str, policy: Policy) -> Result<RtcLeg, RtcSetupError> {
    let offer = SdpOffer::from_sdp_string(&policy.filter_offer(offer))
        .map_err(|e| RtcSetupError::Offer(e.to_string()))?;
    let (mut rtc, sockets) = peer(policy).await?;
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| RtcSetupError::Offer(e.to_string()))?;
    start(rtc, sockets, None, answer.to_sdp_string())
}

/// The offering side (what a browser does; the WebRTC benchmark's simulated callers): an audio
/// send-receive offer, completed by [`Offer::answered`].
#[derive(Debug)]
pub struct Offer {
    pub sdp: String,
    rtc: Rtc,
    sockets: Sockets,
    mid: Mid,
    pending: str0m::change::SdpPendingOffer,
}

impl Offer {
    pub async fn new() -> Result<Offer, RtcSetupError> {
        let (mut rtc, sockets) = peer(Policy::default()).await?;
        let mut change = rtc.sdp_api();
        let mid = change.add_media(
            MediaKind::Audio,
            str0m::media::Direction::SendRecv,
            None,
            None,
            None,
        );
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| RtcSetupError::Offer("nothing to offer".into()))?;
        Ok(Offer {
            sdp: offer.to_sdp_string(),
            rtc,
            sockets,
            mid,
            pending,
        })
    }

    /// Applies the answer and starts the leg's task.
    pub fn answered(mut self, answer: &str) -> Result<RtcLeg, RtcSetupError> {
        let answer = str0m::change::SdpAnswer::from_sdp_string(answer)
            .map_err(|e| RtcSetupError::Offer(e.to_string()))?;
        self.rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .map_err(|e| RtcSetupError::Offer(e.to_string()))?;
        start(self.rtc, self.sockets, Some(self.mid), String::new())
    }
}

/// Why a leg's loop ended.
fn closed(why: &str) -> RtcEvent {
    RtcEvent::Closed(why.to_owned())
}

async fn run(
    mut rtc: Rtc,
    sockets: Sockets,
    pt: Pt,
    mut mid: Option<Mid>,
    mut media: mpsc::Receiver<[u8; FRAME_BYTES]>,
    mut candidates: mpsc::Receiver<String>,
    events: mpsc::Sender<RtcEvent>,
) {
    let started = Instant::now();
    let mut connected = false;
    let mut rtp_time: u64 = rand::random::<u32>().into();
    let mut carry: Vec<u8> = Vec::with_capacity(2 * FRAME_BYTES);
    let mut bufs = [vec![0u8; 2000], vec![0u8; 2000]];
    let why = loop {
        // Everything str0m has to say, until it wants input or time.
        let deadline = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break Some(t),
                Ok(Output::Transmit(t)) => {
                    if let Some((s, _)) = sockets.iter().find(|(_, a)| *a == t.source) {
                        let _ = s.try_send_to(&t.contents, t.destination);
                    }
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => connected = true,
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        break None;
                    }
                    Event::MediaAdded(m) if m.kind == MediaKind::Audio => mid = Some(m.mid),
                    Event::MediaData(d) => {
                        carry.extend_from_slice(&d.data);
                        let mut at = 0;
                        while carry.len() - at >= FRAME_BYTES {
                            let mut f = [0u8; FRAME_BYTES];
                            f.copy_from_slice(&carry[at..at + FRAME_BYTES]);
                            at += FRAME_BYTES;
                            // A full engine queue drops a frame (counted there as silence).
                            let _ = events.try_send(RtcEvent::Audio(f));
                        }
                        carry.drain(..at);
                    }
                    _ => {}
                },
                Err(_) => break None,
            }
        };
        let Some(deadline) = deadline else {
            break closed("ICE disconnected");
        };
        if !rtc.is_alive() {
            break closed("the peer connection closed");
        }
        if !connected && started.elapsed() > CONNECT_TIMEOUT {
            break closed("ICE did not connect");
        }
        let (a, b) = bufs.split_at_mut(1);
        let wait = tokio::time::Instant::from_std(deadline.max(Instant::now()));
        let (s0, l0) = &sockets[0];
        let second = sockets.get(1);
        tokio::select! {
            r = s0.recv_from(&mut a[0]) => if let Ok((n, source)) = r {
                receive(&mut rtc, &a[0][..n], source, *l0);
            },
            r = async {
                match second {
                    Some((s, _)) => s.recv_from(&mut b[0]).await,
                    None => std::future::pending().await,
                }
            } => if let (Ok((n, source)), Some((_, l1))) = (r, second) {
                receive(&mut rtc, &b[0][..n], source, *l1);
            },
            f = media.recv() => match f {
                Some(frame) => {
                    if let (true, Some(m)) = (connected, mid)
                        && let Some(w) = rtc.writer(m)
                    {
                        let t = MediaTime::new(rtp_time, Frequency::EIGHT_KHZ);
                        let _ = w.write(pt, Instant::now(), t, frame.to_vec());
                    }
                    rtp_time += FRAME_BYTES as u64;
                }
                // The call ended.
                None => break closed("call ended"),
            },
            Some(c) = candidates.recv() => {
                let line = c.trim().trim_start_matches("a=");
                if let Ok(c) = Candidate::from_sdp_string(line) {
                    rtc.add_remote_candidate(c);
                }
            },
            _ = tokio::time::sleep_until(wait) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    };
    rtc.disconnect();
    let _ = events.send(why).await;
}

fn receive(rtc: &mut Rtc, data: &[u8], source: SocketAddr, destination: SocketAddr) {
    let Ok(contents) = data.try_into() else {
        return;
    };
    let input = Input::Receive(
        Instant::now(),
        Receive {
            proto: Protocol::Udp,
            source,
            destination,
            contents,
        },
    );
    let _ = rtc.handle_input(input);
}

/// Parses `CALLBOT_RTC_PORTS`-style `from-to`.
pub fn parse_ports(raw: &str) -> Option<PortRange> {
    let (a, b) = raw.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a > 0 && a <= b).then_some(PortRange(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.5 50000 typ host\r\n\
a=candidate:2 1 udp 2130706431 169.254.169.254 50001 typ host\r\n\
a=candidate:3 1 udp 1694498815 93.184.215.14 50002 typ srflx raddr 0.0.0.0 rport 0\r\n\
a=candidate:4 1 udp 2130706431 4a1b.local 50003 typ host\r\n\
a=end-of-candidates\r\n";

    #[test]
    fn internal_candidates_are_refused_unless_allowed() {
        let strict = Policy::default();
        for line in [
            "candidate:1 1 udp 1 127.0.0.1 9 typ host",
            "a=candidate:1 1 udp 1 10.1.2.3 9 typ host",
            "candidate:1 1 udp 1 192.168.1.4 9 typ host",
            "candidate:1 1 udp 1 169.254.169.254 9 typ host",
            "candidate:1 1 udp 1 fd00::1 9 typ host",
            "candidate:1 1 udp 1 ::1 9 typ host",
            "candidate:1 1 udp 1 x.local 9 typ host",
            "nonsense",
        ] {
            assert!(strict.remote_candidate(line).is_err(), "{line}");
        }
        assert!(
            strict
                .remote_candidate("candidate:1 1 udp 1 93.184.215.14 9 typ srflx")
                .is_ok()
        );
        let open = Policy {
            allow_private: true,
            ..Policy::default()
        };
        assert!(
            open.remote_candidate("candidate:1 1 udp 1 10.1.2.3 9 typ host")
                .is_ok()
        );
    }

    #[test]
    fn offers_lose_only_their_refused_candidates() {
        let out = Policy::default().filter_offer(OFFER);
        assert!(
            !out.contains("10.0.0.5") && !out.contains("169.254.169.254"),
            "{out}"
        );
        assert!(!out.contains(".local"), "{out}");
        assert!(out.contains("93.184.215.14 50002 typ srflx"), "{out}");
        assert!(out.starts_with("v=0\r\n") && out.ends_with("a=end-of-candidates\r\n"));
    }

    #[tokio::test]
    async fn the_answer_never_offers_loopback_and_names_the_public_address() {
        let policy = Policy {
            public_ip: Some("203.0.113.7".parse().unwrap()),
            ..Policy::default()
        };
        let (rtc, sockets) = peer(policy).await.unwrap();
        drop(rtc);
        let local = sockets[0].1;
        assert!(!local.ip().is_loopback());
        let offer = Offer::new().await.unwrap();
        let leg = accept(&offer.sdp, policy).await.unwrap();
        let candidates: Vec<&str> = leg
            .answer_sdp
            .lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .collect();
        assert!(!candidates.is_empty());
        assert!(
            candidates.iter().all(|c| !c.contains(" 127.0.0.1 ")),
            "{candidates:?}"
        );
        assert!(
            candidates
                .iter()
                .any(|c| c.contains(" 203.0.113.7 ") && c.contains("typ srflx")),
            "{candidates:?}"
        );
    }
}
