//! One browser's WebRTC peer (str0m): the worker makes the offer with a video track (H264 or
//! VP8), an audio track (Opus) and an `input` data channel.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use retrofarm_proto::browser::IceCandidate;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::{Candidate, Rtc};

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
    pending: Option<SdpPendingOffer>,
    /// When the offer was made.
    pub created: Instant,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("video", &self.video).field("audio", &self.audio).finish_non_exhaustive()
    }
}

impl Peer {
    /// Creates a peer whose host candidates are `candidates` and returns it with its SDP offer.
    pub fn offer(now: Instant, candidates: &[SocketAddr]) -> Result<(Self, String)> {
        let mut rtc =
            Rtc::builder().clear_codecs().enable_h264(true).enable_vp8(true).enable_opus(true, false).build(now);
        for addr in candidates {
            let c = Candidate::host(*addr, "udp").with_context(|| format!("bad candidate address {addr}"))?;
            rtc.add_local_candidate(c);
        }
        let mut api = rtc.sdp_api();
        let video =
            api.add_media(MediaKind::Video, Direction::SendOnly, Some("game".into()), Some("video".into()), None);
        let audio =
            api.add_media(MediaKind::Audio, Direction::SendOnly, Some("game".into()), Some("audio".into()), None);
        let input = api.add_channel("input".into());
        let (offer, pending) = api.apply().ok_or_else(|| anyhow!("str0m produced no offer"))?;
        let sdp = offer.to_sdp_string();
        Ok((Self { rtc, video, audio, input, pending: Some(pending), created: now }, sdp))
    }

    /// Applies the browser's answer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<()> {
        let answer = SdpAnswer::from_sdp_string(sdp).context("the answer is not valid SDP")?;
        let pending = self.pending.take().ok_or_else(|| anyhow!("an answer was already applied"))?;
        self.rtc.sdp_api().accept_answer(pending, answer).context("the answer does not match the offer")?;
        Ok(())
    }

    /// Whether the answer has been applied.
    pub fn answered(&self) -> bool {
        self.pending.is_none()
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
        let (peer, sdp) = Peer::offer(Instant::now(), &["127.0.0.1:40000".parse().unwrap()]).unwrap();
        assert!(sdp.contains("m=video"), "{sdp}");
        assert!(sdp.contains("m=audio"));
        assert!(sdp.contains("m=application"));
        assert!(sdp.contains("H264/90000"));
        assert!(sdp.contains("VP8/90000"));
        assert!(sdp.contains("opus/48000"));
        assert!(sdp.contains("127.0.0.1 40000 typ host"));
        assert!(!peer.answered());
    }

    #[test]
    fn bad_answers_and_candidates_are_errors_not_panics() {
        let (mut peer, _) = Peer::offer(Instant::now(), &["127.0.0.1:40000".parse().unwrap()]).unwrap();
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
