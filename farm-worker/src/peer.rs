//! One browser's WebRTC peer (str0m): the worker makes the offer with a video track (H264 or
//! VP8), an audio track (Opus), an `input` data channel and a `control` data channel (game
//! commands: save, load, reset).

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use retrofarm_proto::browser::IceCandidate;
use retrofarm_proto::input::PadTracker;

use retrofarm_media::VideoCodec;
use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc};

use crate::congestion::RateConfig;

/// RTP header extension id of playout-delay (not in str0m's standard map, whose ids are 1–4,
/// 10, 11 and 13).
const PLAYOUT_DELAY_ID: u8 = 6;

/// A peer and the handles of what it offered.
pub struct Peer {
    /// The str0m state machine.
    pub rtc: Rtc,
    /// Video m-line.
    pub video: Mid,
    /// Audio m-line.
    pub audio: Mid,
    /// Input data channel.
    pub input: ChannelId,
    /// Game commands and their replies (reliable, ordered).
    pub control: ChannelId,
    pending: Option<SdpPendingOffer>,
    /// When the offer was made.
    pub created: Instant,
    /// Payload types chosen from what the browser accepted, once connected.
    pub payloads: Option<Payloads>,
    /// The newest input applied from this peer.
    pub pad: PadTracker,
}

/// The payload types a peer is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payloads {
    /// H264 video, when the browser accepted it.
    pub h264: Option<Pt>,
    /// VP8 video, when the browser accepted it.
    pub vp8: Option<Pt>,
    /// Opus audio.
    pub opus: Option<Pt>,
}

impl Payloads {
    /// The video codec this peer gets: H264 when it accepted a usable format, else VP8.
    pub fn video(&self) -> Option<(VideoCodec, Pt)> {
        self.h264.map(|pt| (VideoCodec::H264, pt)).or(self.vp8.map(|pt| (VideoCodec::Vp8, pt)))
    }
}

/// Preference among the browser's H264 formats: packetization-mode 1 is required; constrained
/// baseline first (our encoder's profile), then baseline, then main (a superset decoder).
fn h264_rank(p: &PayloadParams) -> Option<u8> {
    let spec = p.spec();
    if spec.codec != Codec::H264 || spec.format.packetization_mode != Some(1) {
        return None;
    }
    match spec.format.profile_level_id.map(|id| id >> 8) {
        Some(0x42e0) => Some(0),
        Some(0x4200) => Some(1),
        Some(0x4d00) => Some(2),
        _ => None,
    }
}

/// Chooses what to send from the payload types the browser accepted.
pub fn choose_payloads(video: &[PayloadParams], audio: &[PayloadParams]) -> Payloads {
    let h264 = video.iter().filter_map(|p| h264_rank(p).map(|r| (r, p.pt()))).min_by_key(|(r, _)| *r).map(|(_, pt)| pt);
    let vp8 = video.iter().find(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt());
    let opus = audio.iter().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt());
    Payloads { h264, vp8, opus }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("video", &self.video).field("audio", &self.audio).finish_non_exhaustive()
    }
}

/// How often str0m reports a peer's statistics.
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Peer {
    /// Creates a peer whose host candidates are `candidates` and returns it with its SDP offer.
    /// With congestion control on, its bandwidth estimator (transport-wide congestion control
    /// feedback, pacing, probing up to the ceiling) reports the link's capacity.
    pub fn offer(now: Instant, candidates: &[SocketAddr], rate: &RateConfig) -> Result<(Self, String)> {
        // Video carries playout-delay min = max = 0 (the engine writes it): the browser renders
        // each frame as soon as it is decoded instead of smoothing through a jitter buffer.
        let mut builder = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_vp8(true)
            .enable_opus(true, false)
            .set_extension(PLAYOUT_DELAY_ID, Extension::PlayoutDelay)
            // Once a second: the viewer's round trip and loss (RTCP) for congestion control
            // and the metrics, and the packets sent and lost.
            .set_stats_interval(Some(STATS_INTERVAL));
        if rate.enabled {
            builder = builder.enable_bwe(Some(Bitrate::bps(u64::from(rate.initial_estimate_bps))));
        }
        let mut rtc = builder.build(now);
        if rate.enabled {
            rtc.bwe().set_desired_bitrate(Bitrate::bps(rate.desired_bps()));
        }
        for addr in candidates {
            let c = Candidate::host(*addr, "udp").with_context(|| format!("bad candidate address {addr}"))?;
            rtc.add_local_candidate(c);
        }
        let mut api = rtc.sdp_api();
        let video =
            api.add_media(MediaKind::Video, Direction::SendOnly, Some("game".into()), Some("video".into()), None);
        let audio =
            api.add_media(MediaKind::Audio, Direction::SendOnly, Some("game".into()), Some("audio".into()), None);
        // Input is whole-pad state resent every 100 ms: an unordered channel without
        // retransmissions never delays a newer state behind a lost older one.
        let input = api.add_channel_with_config(ChannelConfig {
            label: "input".into(),
            ordered: false,
            reliability: Reliability::MaxRetransmits { retransmits: 0 },
            ..Default::default()
        });
        let control = api.add_channel_with_config(ChannelConfig {
            label: "control".into(),
            ordered: true,
            reliability: Reliability::Reliable,
            ..Default::default()
        });
        let (offer, pending) = api.apply().ok_or_else(|| anyhow!("str0m produced no offer"))?;
        let sdp = offer.to_sdp_string();
        let peer = Self {
            rtc,
            video,
            audio,
            input,
            control,
            pending: Some(pending),
            created: now,
            payloads: None,
            pad: PadTracker::default(),
        };
        Ok((peer, sdp))
    }

    /// Applies the browser's answer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<()> {
        let answer = SdpAnswer::from_sdp_string(sdp).context("the answer is not valid SDP")?;
        let pending = self.pending.take().ok_or_else(|| anyhow!("an answer was already applied"))?;
        self.rtc.sdp_api().accept_answer(pending, answer).context("the answer does not match the offer")?;
        Ok(())
    }

    /// Sends text on the `control` channel; false when it is not open.
    pub fn send_control(&mut self, text: &str) -> bool {
        self.rtc.channel(self.control).is_some_and(|mut ch| ch.write(false, text.as_bytes()).is_ok())
    }

    /// Whether the answer has been applied.
    pub fn answered(&self) -> bool {
        self.pending.is_none()
    }

    /// Chooses the payload types from the accepted answer (call once connected).
    pub fn choose_payloads(&mut self) -> Payloads {
        let video: Vec<PayloadParams> =
            self.rtc.writer(self.video).map(|w| w.payload_params().cloned().collect()).unwrap_or_default();
        let audio: Vec<PayloadParams> =
            self.rtc.writer(self.audio).map(|w| w.payload_params().cloned().collect()).unwrap_or_default();
        let p = choose_payloads(&video, &audio);
        self.payloads = Some(p);
        p
    }

    /// Adds a trickled browser candidate. TCP candidates never pair with our UDP socket and
    /// mDNS (`.local`) names cannot be resolved here: both are skipped (`Ok(false)`).
    pub fn add_remote_candidate(&mut self, c: &IceCandidate) -> Result<bool> {
        let line = c.candidate.trim().trim_start_matches("a=");
        if line.is_empty() {
            return Ok(false);
        }
        let lower = line.to_ascii_lowercase();
        if lower.contains(" tcp ") || lower.contains(".local ") {
            return Ok(false);
        }
        let cand = Candidate::from_sdp_string(line).map_err(|e| anyhow!("bad ICE candidate {line:?}: {e}"))?;
        self.rtc.add_remote_candidate(cand);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_has_video_audio_and_data_with_our_codecs() {
        let (peer, sdp) =
            Peer::offer(Instant::now(), &["127.0.0.1:40000".parse().unwrap()], &RateConfig::new(150_000, 2_000_000))
                .unwrap();
        assert!(sdp.contains("m=video"), "{sdp}");
        assert!(sdp.contains("m=audio"));
        assert!(sdp.contains("m=application"));
        assert!(sdp.contains("H264/90000"));
        assert!(sdp.contains("VP8/90000"));
        assert!(sdp.contains("opus/48000"));
        assert!(sdp.contains("127.0.0.1 40000 typ host"));
        let playout = format!("a=extmap:{PLAYOUT_DELAY_ID} http://www.webrtc.org/experiments/rtp-hdrext/playout-delay");
        assert!(sdp.contains(&playout), "video offers playout-delay: {sdp}");
        // Congestion control needs the browser's transport-wide feedback.
        assert!(sdp.contains("transport-wide-cc"), "{sdp}");
        assert!(sdp.contains("transport-cc"), "{sdp}");
        assert!(!peer.answered());
    }

    #[test]
    fn bad_answers_and_candidates_are_errors_not_panics() {
        let (mut peer, _) =
            Peer::offer(Instant::now(), &["127.0.0.1:40000".parse().unwrap()], &RateConfig::new(150_000, 2_000_000))
                .unwrap();
        let tcp = IceCandidate {
            candidate: "candidate:1 1 tcp 1 127.0.0.1 9 typ host tcptype active".into(),
            sdp_mid: None,
            sdp_m_line_index: None,
        };
        assert!(!peer.add_remote_candidate(&tcp).unwrap());
        let junk = IceCandidate { candidate: "candidate:garbage".into(), sdp_mid: None, sdp_m_line_index: None };
        assert!(peer.add_remote_candidate(&junk).is_err());
        assert!(peer.accept_answer("not sdp").is_err());
    }
}
