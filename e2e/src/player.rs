//! A player: a signaling connection plus a WebRTC peer in a room, with helpers to watch the
//! stream and press buttons.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use retrofarm_proto::browser::{ClientMsg, ServerMsg};
use retrofarm_proto::game::{GameCommand, GameReply};
use retrofarm_proto::ids::RoomId;
use retrofarm_proto::input::PadState;
use retrofarm_proto::ErrorCode;
use str0m::media::MediaKind;

use crate::browser::Browser;
use crate::figures::{is_idr, Frame, Recording};
use crate::procs::CoordinatorAddrs;
use crate::rtc::{RtcClient, RtcEvent};
use crate::video::{H264Decoder, Luma};

const T: Duration = Duration::from_secs(20);

/// The project's own game (games/README.md).
pub const GAME: &str = "Retrofarm Walk";

/// One player in a room.
pub struct Player {
    /// Signaling.
    pub browser: Browser,
    /// WebRTC.
    pub peer: RtcClient,
    /// Decoder of the received video.
    pub decoder: H264Decoder,
    seq: u16,
    /// The room.
    pub room: RoomId,
}

impl Player {
    /// Opens a session (joining `room` when given) on `port` and connects WebRTC.
    pub async fn join(addrs: CoordinatorAddrs, room: Option<&RoomId>, port: u8) -> Player {
        Self::join_game(addrs, GAME, room, port).await
    }

    /// Like [`Self::join`], for any game.
    pub async fn join_game(addrs: CoordinatorAddrs, game: &str, room: Option<&RoomId>, port: u8) -> Player {
        match Self::try_join(addrs, game, room, port).await {
            Ok(p) => p,
            Err((code, message)) => panic!("start failed: {code:?} {message}"),
        }
    }

    /// Joins, or returns the error the coordinator or worker answered with.
    pub async fn try_join(
        addrs: CoordinatorAddrs,
        game: &str,
        room: Option<&RoomId>,
        port: u8,
    ) -> Result<Player, (ErrorCode, String)> {
        Self::try_join_from(addrs, game, room, port, IpAddr::from([127, 0, 0, 1])).await
    }

    /// Opens a session of the project's game on port 1, its WebRTC socket bound to `local`
    /// (the player side of a [`crate::netns::NetLink`]: [`crate::netns::NetLink::host_ip`]).
    pub async fn join_from(addrs: CoordinatorAddrs, local: IpAddr) -> Player {
        match Self::try_join_from(addrs, GAME, None, 1, local).await {
            Ok(p) => p,
            Err((code, message)) => panic!("start failed: {code:?} {message}"),
        }
    }

    /// [`Self::try_join`] with the WebRTC socket bound to `local`.
    pub async fn try_join_from(
        addrs: CoordinatorAddrs,
        game: &str,
        room: Option<&RoomId>,
        port: u8,
        local: IpAddr,
    ) -> Result<Player, (ErrorCode, String)> {
        let query = room.map(|r| format!("room={r}")).unwrap_or_default();
        let mut browser = Browser::connect(&addrs.ws_url(&query)).await.unwrap();
        let error = |m: &ServerMsg| match m {
            ServerMsg::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        };
        // A new game, or a room that is not running (to resume), starts with the latency check;
        // a running room's link goes straight to Init.
        loop {
            match browser.recv(T).await.unwrap() {
                ServerMsg::CheckLatency { workers } => {
                    browser.answer_latency(&workers).await.unwrap();
                }
                ServerMsg::Init { .. } => break,
                m => return Err(error(&m).unwrap_or((ErrorCode::Internal, format!("unexpected {m:?}")))),
            }
        }
        browser.send(&ClientMsg::StartGame { game: game.into(), room: room.cloned(), port }).await.unwrap();
        let room = browser
            .recv_until(T, |m| match m {
                ServerMsg::GameStarted { room, .. } => Some(Ok(room.clone())),
                m => error(m).map(Err),
            })
            .await
            .unwrap()?;
        let offer = browser
            .recv_until(T, |m| match m {
                ServerMsg::Offer { sdp } => Some(sdp.clone()),
                _ => None,
            })
            .await
            .unwrap();
        let mut peer = RtcClient::answer_on(&offer, local).await.unwrap();
        browser.send(&ClientMsg::Answer { sdp: peer.answer.clone() }).await.unwrap();
        browser.send(&ClientMsg::Ice { candidate: Some(peer.candidate.clone()) }).await.unwrap();
        peer.wait_for(T, |e| matches!(e, RtcEvent::ChannelOpen(l) if l == "input").then_some(())).await.unwrap();
        Ok(Player { browser, peer, decoder: H264Decoder::default(), seq: 0, room })
    }

    /// Waits up to `timeout` for the first picture that decodes, asking for a keyframe after
    /// each frame that does not (as a browser sends a PLI when it cannot decode).
    pub async fn first_picture(&mut self, timeout: Duration) -> Result<Luma> {
        let Self { peer, decoder, .. } = self;
        let input = peer.requester();
        peer.wait_for(timeout, |e| match e {
            RtcEvent::Media { kind: MediaKind::Video, data, .. } => {
                let picture = decoder.decode(data);
                if picture.is_none() {
                    input.request_keyframe();
                }
                picture
            }
            _ => None,
        })
        .await
    }

    /// Leaves the room (`quit`), as the page's Quit button does.
    pub async fn quit(&mut self) {
        self.browser.send(&ClientMsg::Quit).await.unwrap();
    }

    /// Sends a game command on the `control` channel and waits for its answer.
    pub async fn game(&mut self, command: GameCommand) -> GameReply {
        self.peer.send_control(command.encode());
        // The stream goes on meanwhile: keep decoding it, so the decoder stays in step.
        let Self { peer, decoder, .. } = self;
        let requester = peer.requester();
        let reply = peer
            .wait_for(Duration::from_secs(10), |e| match e {
                RtcEvent::Control(text) => Some(text.clone()),
                RtcEvent::Media { kind: MediaKind::Video, data, .. } => {
                    if decoder.decode(data).is_none() {
                        requester.request_keyframe();
                    }
                    None
                }
                _ => None,
            })
            .await
            .unwrap_or_else(|e| panic!("no answer to {command:?}: {e}"));
        GameReply::decode(&reply).unwrap_or_else(|e| panic!("bad answer {reply:?}: {e}"))
    }

    /// Receives for `d`; returns (video frames, audio packets, last decoded picture).
    pub async fn watch(&mut self, d: Duration) -> (usize, usize, Option<Luma>) {
        let (mut video, mut audio, mut last) = (0, 0, None);
        for ev in self.peer.collect(d).await {
            if let RtcEvent::Media { kind, codec, data, .. } = ev {
                match kind {
                    MediaKind::Video => {
                        assert_eq!(codec, "H264");
                        video += 1;
                        match self.decoder.decode(&data) {
                            Some(l) => last = Some(l),
                            // Undecodable (a lost reference): a browser would send a PLI.
                            None => self.peer.request_keyframe(),
                        }
                    }
                    MediaKind::Audio => {
                        assert_eq!(codec, "Opus");
                        audio += 1;
                    }
                }
            }
        }
        (video, audio, last)
    }

    /// Receives for `d`, noting when each video frame came, its size and whether it was shown,
    /// and the bytes the socket received in each `window` (see [`Recording`]). As a browser,
    /// it shows no frame from a loss until the next keyframe (every frame still goes through
    /// the decoder, which conceals losses), and asks for a keyframe meanwhile.
    /// `buttons(elapsed)` is the pad state sent every 50 ms (`|_| 0`: nothing pressed).
    pub async fn record(
        &mut self,
        d: Duration,
        window: Duration,
        mut buttons: impl FnMut(Duration) -> u16,
    ) -> Recording {
        let start = std::time::Instant::now();
        let t0 = tokio::time::Instant::now();
        let mut rec = Recording::new(start, window);
        let mut bytes_at_window = self.peer.received_bytes();
        let mut next_window = t0 + window;
        let mut next_input = t0;
        let end = t0 + d;
        // Frames were lost and no keyframe came since.
        let mut broken = false;
        loop {
            let now = tokio::time::Instant::now();
            if now >= next_window {
                let b = self.peer.received_bytes();
                rec.wire_bytes.push(b - bytes_at_window);
                bytes_at_window = b;
                next_window += window;
            }
            if now >= end {
                break;
            }
            if now >= next_input {
                self.seq = self.seq.wrapping_add(1);
                let b = buttons(now - t0);
                self.peer
                    .send_input(PadState { seq: self.seq, buttons: b, axes: [0; 4], ..Default::default() }.encode());
                next_input += Duration::from_millis(50);
            }
            let until = next_window.min(next_input).min(end);
            let ev = match self.peer.next_until(until).await {
                Ok(Some(ev)) => ev,
                Ok(None) => continue,
                Err(_) => break,
            };
            if let RtcEvent::Media { kind, data, contiguous, .. } = ev {
                let at = start.elapsed();
                match kind {
                    MediaKind::Video => {
                        let keyframe = is_idr(&data);
                        broken = (broken || !contiguous) && !keyframe;
                        let decoded = self.decoder.decode(&data).is_some() && !broken;
                        if !decoded {
                            self.peer.request_keyframe();
                        }
                        rec.frames.push(Frame { at, bytes: data.len(), decoded, keyframe });
                    }
                    MediaKind::Audio => rec.audio_packets += 1,
                }
            }
        }
        rec.length = start.elapsed();
        rec
    }

    /// Holds `buttons` for `d` (state resent every 50 ms, as the page does), then releases.
    pub async fn hold(&mut self, buttons: u16, d: Duration) -> (usize, usize, Option<Luma>) {
        let end = tokio::time::Instant::now() + d;
        let mut last = None;
        let (mut video, mut audio) = (0, 0);
        while tokio::time::Instant::now() < end {
            self.seq = self.seq.wrapping_add(1);
            self.peer.send_input(PadState { seq: self.seq, buttons, axes: [0; 4], ..Default::default() }.encode());
            let (v, a, l) = self.watch(Duration::from_millis(50)).await;
            video += v;
            audio += a;
            last = l.or(last);
        }
        self.seq = self.seq.wrapping_add(1);
        self.peer.send_input(PadState { seq: self.seq, buttons: 0, axes: [0; 4], ..Default::default() }.encode());
        (video, audio, last)
    }
}
