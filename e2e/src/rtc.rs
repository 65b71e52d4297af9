//! A WebRTC peer playing the browser's part: it answers the worker's offer with str0m over a
//! loopback UDP socket and reports what it receives.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use retrofarm_proto::browser::IceCandidate;
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::media::{KeyframeRequestKind, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Something the peer saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcEvent {
    /// ICE + DTLS up.
    Connected,
    /// A data channel opened.
    ChannelOpen(String),
    /// A depacketized media frame.
    Media {
        /// Audio or video.
        kind: MediaKind,
        /// Codec name, e.g. `H264`, `Opus`.
        codec: String,
        /// The frame (an H264 access unit in Annex B, an Opus packet…).
        data: Vec<u8>,
        /// False when packets were lost before this frame: a browser drops video frames from
        /// here until the next keyframe (its references are gone).
        contiguous: bool,
    },
    /// A message from the worker on the `input` data channel.
    ChannelData(Vec<u8>),
    /// A message from the worker on the `control` data channel (a game command's answer).
    Control(String),
    /// The peer went away.
    Disconnected,
}

/// The peer's handle.
pub struct RtcClient {
    /// SDP answer to send back.
    pub answer: String,
    /// Our ICE candidate, to trickle.
    pub candidate: IceCandidate,
    events: mpsc::UnboundedReceiver<RtcEvent>,
    input: mpsc::UnboundedSender<Ask>,
    task: tokio::task::JoinHandle<()>,
    received: Arc<AtomicU64>,
}

impl Drop for RtcClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RtcClient {
    /// Accepts `offer` and starts the peer.
    pub async fn answer(offer: &str) -> Result<Self> {
        Self::answer_on(offer, IpAddr::from([127, 0, 0, 1])).await
    }

    /// [`Self::answer`] from a socket bound to `ip` (its ICE host candidate): another host's
    /// address than loopback, e.g. a network namespace's veth (crate::netns).
    pub async fn answer_on(offer: &str, ip: IpAddr) -> Result<Self> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder().build(Instant::now());
        let cand = Candidate::host(local, "udp").map_err(|e| anyhow!("{e}"))?;
        let candidate =
            IceCandidate { candidate: cand.to_sdp_string(), sdp_mid: Some("0".into()), sdp_m_line_index: Some(0) };
        let offer = SdpOffer::from_sdp_string(offer).context("worker offer is not SDP")?;
        let answer = rtc.sdp_api().accept_offer(offer).context("offer refused")?.to_sdp_string();
        // Trickled, not in the answer: the candidate reaches the worker through the relay.
        rtc.add_local_candidate(cand);
        let (ev_tx, events) = mpsc::unbounded_channel();
        let (input, in_rx) = mpsc::unbounded_channel();
        let received = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(drive(rtc, socket, local, ev_tx, in_rx, Arc::clone(&received)));
        Ok(Self { answer, candidate, events, input, task, received })
    }

    /// Bytes received on the peer's UDP socket so far (UDP payloads: SRTP, SRTCP, DTLS, STUN).
    pub fn received_bytes(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits for an event that `pick` accepts.
    pub async fn wait_for<T>(&mut self, timeout: Duration, mut pick: impl FnMut(&RtcEvent) -> Option<T>) -> Result<T> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let ev = tokio::time::timeout_at(end, self.events.recv())
                .await
                .map_err(|_| anyhow!("event not seen within {timeout:?}"))?
                .ok_or_else(|| anyhow!("peer task ended"))?;
            if let Some(t) = pick(&ev) {
                return Ok(t);
            }
        }
    }

    /// The next event, or `None` when none came before `end`; an error when the peer ended.
    pub async fn next_until(&mut self, end: tokio::time::Instant) -> Result<Option<RtcEvent>> {
        match tokio::time::timeout_at(end, self.events.recv()).await {
            Err(_) => Ok(None),
            Ok(Some(ev)) => Ok(Some(ev)),
            Ok(None) => Err(anyhow!("peer task ended")),
        }
    }

    /// Collects events for `d`.
    pub async fn collect(&mut self, d: Duration) -> Vec<RtcEvent> {
        let end = tokio::time::Instant::now() + d;
        let mut out = vec![];
        while let Ok(Some(ev)) = tokio::time::timeout_at(end, self.events.recv()).await {
            out.push(ev);
        }
        out
    }

    /// Sends bytes on the input data channel.
    pub fn send_input(&self, bytes: Vec<u8>) {
        let _ = self.input.send(Ask::Input(bytes));
    }

    /// Asks the sender for a keyframe (a PLI), as a browser does when it cannot decode.
    pub fn request_keyframe(&self) {
        self.requester().request_keyframe();
    }

    /// Sends text on the `control` data channel (a game command), once it is open.
    pub fn send_control(&self, text: String) {
        let _ = self.input.send(Ask::Control(text));
    }

    /// A handle that asks for keyframes while the client itself is borrowed (in [`Self::wait_for`]).
    pub fn requester(&self) -> KeyframeRequester {
        KeyframeRequester(self.input.clone())
    }
}

/// Asks a client's sender for keyframes; see [`RtcClient::requester`].
pub struct KeyframeRequester(mpsc::UnboundedSender<Ask>);

impl KeyframeRequester {
    /// Asks the sender for a keyframe (a PLI), spaced as browsers space theirs.
    pub fn request_keyframe(&self) {
        let _ = self.0.send(Ask::Keyframe);
    }
}

/// What the test asks of its peer task.
enum Ask {
    Input(Vec<u8>),
    Control(String),
    Keyframe,
}

/// The least time between two keyframe requests, as browsers space their PLIs.
const PLI_INTERVAL: Duration = Duration::from_millis(300);

async fn drive(
    mut rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    ev: mpsc::UnboundedSender<RtcEvent>,
    mut input: mpsc::UnboundedReceiver<Ask>,
    received: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 2048];
    let mut channel: Option<ChannelId> = None;
    let mut control: Option<ChannelId> = None;
    // Commands asked for before the control channel opened.
    let mut waiting: Vec<String> = Vec::new();
    let mut video = None;
    let mut last_pli: Option<Instant> = None;
    let mut want_keyframe = false;
    loop {
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(e)) => {
                    let out = match e {
                        Event::Connected => Some(RtcEvent::Connected),
                        Event::ChannelOpen(id, label) => {
                            if label == "control" {
                                control = Some(id);
                            } else {
                                channel = Some(id);
                            }
                            Some(RtcEvent::ChannelOpen(label))
                        }
                        Event::ChannelData(d) if Some(d.id) == control => {
                            Some(RtcEvent::Control(String::from_utf8_lossy(&d.data).into_owned()))
                        }
                        Event::ChannelData(d) => Some(RtcEvent::ChannelData(d.data)),
                        Event::MediaData(m) if !m.params.spec().codec.is_audio() => {
                            video = Some(m.mid);
                            // A frame after a gap cannot be decoded: ask for a keyframe.
                            want_keyframe |= !m.contiguous;
                            Some(RtcEvent::Media {
                                kind: MediaKind::Video,
                                codec: format!("{:?}", m.params.spec().codec),
                                data: m.data.to_vec(),
                                contiguous: m.contiguous,
                            })
                        }
                        Event::MediaData(m) => Some(RtcEvent::Media {
                            kind: if m.params.spec().codec.is_audio() { MediaKind::Audio } else { MediaKind::Video },
                            codec: format!("{:?}", m.params.spec().codec),
                            data: m.data.to_vec(),
                            contiguous: m.contiguous,
                        }),
                        _ => None,
                    };
                    if let Some(o) = out {
                        let _ = ev.send(o);
                    }
                }
                Err(_) => {
                    let _ = ev.send(RtcEvent::Disconnected);
                    return;
                }
            }
        };
        if !rtc.is_alive() {
            let _ = ev.send(RtcEvent::Disconnected);
            return;
        }
        let now = Instant::now();
        if want_keyframe && last_pli.is_none_or(|t| now >= t + PLI_INTERVAL) {
            if let Some(mut w) = video.and_then(|mid| rtc.writer(mid)) {
                let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
                last_pli = Some(now);
                want_keyframe = false;
                continue;
            }
        }
        if let Some(mut ch) = control.filter(|_| !waiting.is_empty()).and_then(|id| rtc.channel(id)) {
            for text in waiting.drain(..) {
                let _ = ch.write(false, text.as_bytes());
            }
            continue;
        }
        let wait = timeout.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, source)) = r {
                    received.fetch_add(n as u64, Ordering::Relaxed);
                    if let Ok(contents) = buf[..n].try_into() {
                        let _ = rtc.handle_input(Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents }));
                    }
                }
            }
            ask = input.recv() => match ask {
                None => return,
                Some(Ask::Keyframe) => want_keyframe = true,
                Some(Ask::Control(text)) => waiting.push(text),
                Some(Ask::Input(bytes)) => {
                    if let Some(mut ch) = channel.and_then(|id| rtc.channel(id)) {
                        let _ = ch.write(true, &bytes);
                    }
                }
            },
            _ = tokio::time::sleep(wait) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
}
