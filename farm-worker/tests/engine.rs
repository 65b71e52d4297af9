//! The engine core on a virtual clock, with browsers played by str0m peers in memory: every
//! datagram the engine transmits is handed to the browser it is addressed to and back. No
//! sockets, no real time, no emulator: the rooms' media is made here with the real encoders.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use farm_worker::congestion::RateConfig;
use farm_worker::engine::{Engine, EngineConfig, Input, Media, Output, RoomStart, ViewerReport};
use farm_worker::library::{default_cores, Library};
use farm_worker::link::Status;
use retrofarm_media::{
    convert, software_encoder, AudioConfig, AudioEncoder, I420Frame, Picture, PixelFormat, TestPattern, VideoCodec,
    VideoConfig, VideoEncoder,
};
use retrofarm_proto::control::{CoordMsg, WorkerMsg};
use retrofarm_proto::game::{GameCommand, GameReply, Screen};
use retrofarm_proto::ids::{RoomId, SessionId};
use retrofarm_proto::input::{PadState, Pointer};
use retrofarm_proto::ErrorCode;
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, Rtc};

const WORKER: &str = "10.0.0.1:5000";
const GAME: &str = "Walk";

/// A bottleneck on the way to a browser: datagrams leave one after another at `bps` and are
/// dropped when the queue already holds `max_queue` of sending time (a router's tail drop).
struct Bottleneck {
    bps: u64,
    max_queue: Duration,
    /// When the link finishes sending what is queued.
    free_at: Instant,
    /// Datagrams on their way, with their arrival times.
    queue: VecDeque<(Instant, Transmit)>,
    dropped: usize,
}

impl Bottleneck {
    fn new(bps: u64, now: Instant) -> Self {
        Self { bps, max_queue: Duration::from_millis(150), free_at: now, queue: VecDeque::new(), dropped: 0 }
    }

    /// Queues a datagram sent at `now`, or drops it.
    fn send(&mut self, now: Instant, t: Transmit) {
        let start = self.free_at.max(now);
        if start.duration_since(now) > self.max_queue {
            self.dropped += 1;
            return;
        }
        self.free_at = start + Duration::from_secs_f64((t.contents.len() as f64 + 28.0) * 8.0 / self.bps as f64);
        self.queue.push_back((self.free_at, t));
    }
}

/// A browser: a str0m peer that answers the worker's offer.
struct Browser {
    rtc: Rtc,
    addr: SocketAddr,
    /// The link to it; `None`: every datagram arrives at once.
    link: Option<Bottleneck>,
    /// Video payload bytes received, with when.
    video_bytes: Vec<(Instant, usize)>,
    timeout: Instant,
    connected: bool,
    video: Option<Mid>,
    input: Option<ChannelId>,
    control: Option<ChannelId>,
    /// Text received on the `control` channel.
    replies: Vec<String>,
    /// Video frames and audio packets received, by kind.
    frames: HashMap<MediaKind, usize>,
    /// Whether the first video frame received could be decoded on its own.
    first_video_keyframe: Option<bool>,
}

/// The engine, its browsers and everything the engine asked for.
struct World {
    now: Instant,
    engine: Engine,
    engine_timeout: Instant,
    browsers: HashMap<SessionId, Browser>,
    /// Messages for the coordinator, in order.
    coordinator: Vec<WorkerMsg>,
    started: Vec<RoomStart>,
    stopped: Vec<RoomId>,
    wanted: HashMap<RoomId, Vec<VideoCodec>>,
    keyframes: Vec<(RoomId, VideoCodec)>,
    /// Bitrates the engine set, in order.
    rates: Vec<(RoomId, VideoCodec, u32)>,
    pads: Vec<(RoomId, u8, PadState)>,
    games: Vec<(RoomId, SessionId, GameCommand)>,
    resumes: Vec<RoomId>,
    status: Option<Status>,
    next_port: u16,
}

fn library() -> Library {
    let mut lib = Library::from_paths([PathBuf::from(format!("games/{GAME}.nes"))], &default_cores());
    assert!(lib.resolve_cores(|c| Some(PathBuf::from("/cores").join(c))).is_empty());
    lib
}

/// The worker's defaults: 150 kbit/s to 2 Mbit/s.
fn rate_config() -> RateConfig {
    RateConfig::new(150_000, 2_000_000)
}

fn sid(n: u32) -> SessionId {
    SessionId::new(format!("s{n}")).unwrap()
}

impl Browser {
    fn receive(&mut self, now: Instant, t: &Transmit) {
        let input = str0m::Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: t.source,
                destination: t.destination,
                contents: (&*t.contents).try_into().unwrap(),
            },
        );
        self.rtc.handle_input(input).unwrap();
    }

    /// Hands over the datagrams the link has delivered by `now`.
    fn arrive(&mut self, now: Instant) {
        while let Some((at, t)) = self.link.as_mut().and_then(|l| l.queue.pop_front_if(|(at, _)| *at <= now)) {
            self.receive(at.max(now), &t);
        }
    }

    /// Video bits per second received in the `window` before `now`.
    fn video_bps(&self, now: Instant, window: Duration) -> f64 {
        let bytes: usize =
            self.video_bytes.iter().filter(|(t, _)| now.duration_since(*t) <= window).map(|(_, n)| n).sum();
        bytes as f64 * 8.0 / window.as_secs_f64()
    }
}

impl World {
    fn new(capacity: u32) -> Self {
        Self::with_connect_timeout(capacity, Duration::from_secs(20))
    }

    fn with_connect_timeout(capacity: u32, connect_timeout: Duration) -> Self {
        Self::with(capacity, connect_timeout, Duration::ZERO)
    }

    fn with(capacity: u32, connect_timeout: Duration, linger: Duration) -> Self {
        let now = Instant::now();
        let cfg =
            EngineConfig { candidates: vec![WORKER.parse().unwrap()], connect_timeout, linger, rate: rate_config() };
        Self {
            now,
            engine: Engine::new(cfg, library(), capacity, now),
            engine_timeout: now,
            browsers: HashMap::new(),
            coordinator: vec![],
            started: vec![],
            stopped: vec![],
            wanted: HashMap::new(),
            keyframes: vec![],
            rates: vec![],
            pads: vec![],
            games: vec![],
            resumes: vec![],
            status: None,
            next_port: 6000,
        }
    }

    fn command(&mut self, cmd: CoordMsg) {
        self.engine.handle(self.now, Input::Command(cmd));
        self.drain();
    }

    /// Carries out everything the engine has to do now.
    fn drain(&mut self) {
        loop {
            match self.engine.poll_output() {
                Output::Transmit(t) => {
                    let Some(b) = self.browsers.values_mut().find(|b| b.addr == t.destination) else { continue };
                    match &mut b.link {
                        Some(link) => link.send(self.now, t),
                        None => b.receive(self.now, &t),
                    }
                }
                Output::Coordinator(m) => self.coordinator.push(m),
                Output::StartRoom(s) => self.started.push(s),
                Output::StopRoom(r) => self.stopped.push(r),
                Output::WantedCodecs { room, codecs } => {
                    self.wanted.insert(room, codecs);
                }
                Output::Keyframe { room, codec } => self.keyframes.push((room, codec)),
                Output::VideoRate { room, codec, bitrate_bps } => self.rates.push((room, codec, bitrate_bps)),
                Output::Pad { room, port, pad } => self.pads.push((room, port, pad)),
                Output::Game { room, session, command } => self.games.push((room, session, command)),
                Output::Resume(room) => self.resumes.push(room),
                Output::Status(s) => self.status = Some(s),
                Output::Timeout(t) => {
                    self.engine_timeout = t;
                    break;
                }
            }
        }
    }

    /// Starts a session for `game` (or in `room`) on `port`; returns the worker's offer.
    fn start(&mut self, session: &SessionId, room: Option<RoomId>, port: u8) -> Option<String> {
        let before = self.coordinator.len();
        self.command(CoordMsg::StartSession { session: session.clone(), game: GAME.into(), room, port });
        self.coordinator[before..].iter().find_map(|m| match m {
            WorkerMsg::Offer { session: s, sdp } if s == session => Some(sdp.clone()),
            _ => None,
        })
    }

    /// A browser answers `offer` for `session`.
    fn answer(&mut self, session: &SessionId, offer: &str) {
        let addr: SocketAddr = format!("10.0.0.2:{}", self.next_port).parse().unwrap();
        self.next_port += 1;
        let mut rtc = Rtc::builder().build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let answer = rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(offer).unwrap()).unwrap();
        let browser = Browser {
            rtc,
            addr,
            link: None,
            video_bytes: vec![],
            timeout: self.now,
            connected: false,
            video: None,
            input: None,
            control: None,
            replies: vec![],
            frames: HashMap::new(),
            first_video_keyframe: None,
        };
        self.browsers.insert(session.clone(), browser);
        self.command(CoordMsg::Answer { session: session.clone(), sdp: answer.to_sdp_string() });
    }

    /// A session that joins, gets its offer answered and connects.
    fn join(&mut self, session: &SessionId, room: Option<RoomId>, port: u8) {
        let offer = self.start(session, room, port).expect("an offer");
        self.answer(session, &offer);
        self.run_until(Duration::from_secs(5), |w| {
            w.browsers[session].connected && w.browsers[session].input.is_some()
        });
    }

    /// Lets the browsers work until each waits, feeding their datagrams to the engine.
    fn browsers_work(&mut self) {
        let worker: SocketAddr = WORKER.parse().unwrap();
        let ids: Vec<SessionId> = self.browsers.keys().cloned().collect();
        for id in ids {
            loop {
                let b = self.browsers.get_mut(&id).unwrap();
                if !b.rtc.is_alive() {
                    break;
                }
                match b.rtc.poll_output().unwrap() {
                    str0m::Output::Timeout(t) => {
                        b.timeout = t;
                        break;
                    }
                    str0m::Output::Transmit(t) => {
                        let input = Input::Datagram { source: b.addr, destination: worker, contents: &t.contents };
                        self.engine.handle(self.now, input);
                    }
                    str0m::Output::Event(ev) => match ev {
                        Event::Connected => b.connected = true,
                        Event::MediaAdded(m) if m.kind == MediaKind::Video => b.video = Some(m.mid),
                        Event::ChannelOpen(id, label) if label == "control" => b.control = Some(id),
                        Event::ChannelOpen(id, _) => b.input = Some(id),
                        Event::ChannelData(d) if Some(d.id) == b.control => {
                            b.replies.push(String::from_utf8(d.data).unwrap());
                        }
                        Event::MediaData(d) => {
                            let kind = if Some(d.mid) == b.video { MediaKind::Video } else { MediaKind::Audio };
                            *b.frames.entry(kind).or_default() += 1;
                            if kind == MediaKind::Video {
                                b.video_bytes.push((self.now, d.data.len()));
                            }
                            if kind == MediaKind::Video && b.first_video_keyframe.is_none() {
                                b.first_video_keyframe = Some(is_h264_idr(&d.data));
                            }
                        }
                        _ => {}
                    },
                }
            }
        }
        self.drain();
    }

    /// Advances the virtual clock to the next timeout of anyone (at least 1 ms).
    fn tick(&mut self) {
        self.browsers_work();
        let arrivals = self.browsers.values().filter_map(|b| b.link.as_ref()?.queue.front().map(|(at, _)| *at));
        let next =
            self.browsers.values().map(|b| b.timeout).chain(arrivals).chain([self.engine_timeout]).min().unwrap();
        self.advance_to(next.max(self.now + Duration::from_millis(1)));
    }

    fn advance_to(&mut self, t: Instant) {
        self.now = self.now.max(t);
        for b in self.browsers.values_mut() {
            b.arrive(self.now);
            if b.rtc.is_alive() {
                b.rtc.handle_input(str0m::Input::Timeout(self.now)).unwrap();
            }
        }
        self.engine.handle(self.now, Input::Timeout);
        self.drain();
        self.browsers_work();
    }

    /// Runs the clock until `done` or `limit` of virtual time passed; panics at the limit.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&World) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            assert!(self.now < end, "condition not met within {limit:?} of virtual time");
            self.tick();
        }
    }

    /// Lets `d` of virtual time pass.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.tick();
        }
    }

    fn ended(&self, session: &SessionId) -> Vec<(ErrorCode, String)> {
        self.coordinator
            .iter()
            .filter_map(|m| match m {
                WorkerMsg::SessionEnded { session: s, code, message } if s == session => Some((*code, message.clone())),
                _ => None,
            })
            .collect()
    }

    fn closed(&self, room: &RoomId) -> usize {
        self.coordinator.iter().filter(|m| matches!(m, WorkerMsg::RoomClosed { room: r } if r == room)).count()
    }

    fn room(&self) -> RoomId {
        self.started.last().expect("a room was started").room.clone()
    }
}

fn is_h264_idr(access_unit: &[u8]) -> bool {
    retrofarm_media::h264::nal_units(access_unit).any(|nal| nal.first().is_some_and(|h| h & 0x1f == 5))
}

/// A room's media as the encoder pool would make it: real H264 and Opus.
struct Source {
    room: RoomId,
    video: Box<dyn VideoEncoder>,
    audio: AudioEncoder,
    pattern: TestPattern,
    i420: I420Frame,
    frame: u32,
    /// The bitrate congestion control last set.
    bitrate: u32,
}

impl Source {
    fn new(room: RoomId) -> Self {
        Self {
            room,
            video: software_encoder(VideoCodec::H264, VideoConfig::default()).unwrap(),
            audio: AudioEncoder::new(AudioConfig::new(48_000.0)).unwrap(),
            pattern: TestPattern::new(256, 240),
            i420: I420Frame::default(),
            frame: 0,
            bitrate: VideoConfig::default().bitrate_bps,
        }
    }

    /// One frame's worth of video and audio, fed to the engine; honours keyframe requests.
    fn feed(&mut self, w: &mut World) {
        if let Some(&(_, _, bps)) = w.rates.iter().rev().find(|(r, _, _)| *r == self.room) {
            if bps != self.bitrate {
                self.video.set_rate(bps, 60.0).unwrap();
                self.bitrate = bps;
            }
        }
        if w.keyframes.iter().any(|(r, _)| *r == self.room) {
            w.keyframes.retain(|(r, _)| *r != self.room);
            self.video.request_keyframe();
        }
        convert(&self.pattern.render(self.frame, PixelFormat::Xrgb8888), &mut self.i420).unwrap();
        let pts = Duration::from_micros(u64::from(self.frame) * 16_667);
        let out = self.video.encode(Picture::I420(&self.i420), pts).unwrap();
        let video = Media::Video {
            room: self.room.clone(),
            codec: VideoCodec::H264,
            data: Arc::from(out.data),
            rtp_90k: (pts.as_nanos() * 9 / 100_000) as u64,
            emulated_ns: 0,
        };
        w.engine.handle(w.now, Input::Media(video));
        self.audio.push(&[0i16; 1600]).unwrap();
        while let Some(p) = self.audio.pop() {
            let audio = Media::Audio { room: self.room.clone(), data: Arc::from(p.data), rtp_48k: p.timestamp };
            w.engine.handle(w.now, Input::Media(audio));
        }
        self.frame += 1;
        w.drain();
    }

    /// Plays `frames` frames at 60 fps of virtual time.
    fn play(&mut self, w: &mut World, frames: u32) {
        for _ in 0..frames {
            self.feed(w);
            let next = w.now + Duration::from_micros(16_667);
            while w.now < next {
                w.tick();
            }
        }
    }
}

#[test]
fn join_offer_answer_then_media_and_input_flow() {
    let mut w = World::new(4);
    let s = sid(1);
    let offer = w.start(&s, None, 1).expect("the worker offers");
    assert!(offer.contains("m=video") && offer.contains("H264/90000"));
    let room = w.room();
    assert_eq!(
        w.started,
        vec![RoomStart {
            room: room.clone(),
            core: "/cores/nestopia_libretro.so".into(),
            rom: "games/Walk.nes".into(),
            game: GAME.into(),
            resume: false,
        }]
    );
    assert!(matches!(&w.coordinator[0], WorkerMsg::SessionStarted { room: r, port: 1, .. } if *r == room));
    assert!(matches!(&w.coordinator[2], WorkerMsg::Ice { candidate: None, .. }));
    assert_eq!(w.status.as_ref().unwrap().load.rooms, 1);

    w.answer(&s, &offer);
    w.run_until(Duration::from_secs(5), |w| w.browsers[&s].connected && w.browsers[&s].input.is_some());
    // Connected: the room encodes H264 for it and starts with a keyframe.
    assert_eq!(w.wanted[&room], vec![VideoCodec::H264]);
    assert!(w.keyframes.contains(&(room.clone(), VideoCodec::H264)));

    let mut src = Source::new(room.clone());
    src.play(&mut w, 60);
    let b = &w.browsers[&s];
    assert!(b.frames.get(&MediaKind::Video).copied().unwrap_or(0) >= 55, "video frames: {:?}", b.frames);
    assert!(b.frames.get(&MediaKind::Audio).copied().unwrap_or(0) >= 40, "audio packets: {:?}", b.frames);
    assert_eq!(b.first_video_keyframe, Some(true), "the first frame a viewer gets is a keyframe");
    assert!(w.engine.counters().video_bytes > 0 && w.engine.counters().audio_bytes > 0);
    assert_eq!(w.engine.counters().viewers, 1);

    // Input over the data channel reaches the room on the session's port; a stale packet does not.
    let b = w.browsers.get_mut(&s).unwrap();
    let ch = b.input.unwrap();
    let newer = PadState { seq: 7, buttons: 0b1001, axes: [0; 4], ..Default::default() };
    let older = PadState { seq: 6, buttons: 0b1111, axes: [0; 4], ..Default::default() };
    b.rtc.channel(ch).unwrap().write(true, &newer.encode()).unwrap();
    b.rtc.channel(ch).unwrap().write(true, &older.encode()).unwrap();
    b.rtc.channel(ch).unwrap().write(true, b"garbage").unwrap();
    w.run_for(Duration::from_millis(200));
    assert_eq!(w.pads, vec![(room.clone(), 1, newer)]);

    // A touch on the picture (a version 2 packet) reaches the room with its pointer.
    let touch = PadState { seq: 8, pointer: Pointer { x: 0x3fff, y: -5, pressed: true }, ..newer };
    let b = w.browsers.get_mut(&s).unwrap();
    b.rtc.channel(ch).unwrap().write(true, &touch.encode()).unwrap();
    w.run_for(Duration::from_millis(200));
    assert_eq!(w.pads.last(), Some(&(room, 1, touch)));
}

#[test]
fn a_pli_asks_the_room_for_a_keyframe() {
    let mut w = World::new(4);
    let s = sid(1);
    w.join(&s, None, 1);
    let room = w.room();
    let mut src = Source::new(room.clone());
    src.play(&mut w, 10);
    assert!(w.keyframes.is_empty(), "the join's keyframe was taken");
    let b = w.browsers.get_mut(&s).unwrap();
    let mid = b.video.unwrap();
    b.rtc.writer(mid).unwrap().request_keyframe(None, KeyframeRequestKind::Pli).unwrap();
    w.run_until(Duration::from_secs(1), |w| !w.keyframes.is_empty());
    assert_eq!(w.keyframes, vec![(room, VideoCodec::H264)]);
}

#[test]
fn a_viewer_leaving_mid_stream_leaves_the_others_playing() {
    let mut w = World::new(4);
    let (a, b) = (sid(1), sid(2));
    w.join(&a, None, 1);
    let room = w.room();
    w.join(&b, Some(room.clone()), 2);
    assert_eq!(w.started.len(), 1, "the second player joins the same room");
    let mut src = Source::new(room.clone());
    src.play(&mut w, 20);
    let before = w.browsers[&b].frames[&MediaKind::Video];

    w.command(CoordMsg::EndSession { session: a.clone() });
    src.play(&mut w, 30);
    assert!(w.browsers[&b].frames[&MediaKind::Video] >= before + 25, "the other viewer keeps getting frames");
    assert!(w.stopped.is_empty(), "the room goes on");
    assert_eq!(w.closed(&room), 0);
    assert_eq!(w.engine.counters().viewers, 1);
    assert_eq!(w.status.as_ref().unwrap().load.sessions, 1);
    // A second player may take the freed port.
    assert!(w.start(&sid(3), Some(room), 1).is_some());
}

#[test]
fn the_last_viewer_leaving_ends_the_room() {
    let mut w = World::new(4);
    let s = sid(1);
    w.join(&s, None, 1);
    let room = w.room();
    w.command(CoordMsg::EndSession { session: s.clone() });
    assert_eq!(w.stopped, vec![room.clone()]);
    assert_eq!(w.closed(&room), 1);
    assert!(w.ended(&s).is_empty(), "the coordinator ended it: nothing to tell");
    assert_eq!(w.status.as_ref().unwrap().load.rooms, 0);
    // Media still in flight for the closed room goes nowhere.
    Source::new(room.clone()).play(&mut w, 3);
    assert_eq!(w.closed(&room), 1);
}

#[test]
fn an_emptied_room_waits_for_its_player_to_come_back_then_closes_once() {
    let mut w = World::with(4, Duration::from_secs(20), Duration::from_secs(10));
    let s = sid(1);
    w.join(&s, None, 1);
    let room = w.room();
    // The page reloads: its session ends, a new one comes back to the same room and port.
    w.command(CoordMsg::EndSession { session: s.clone() });
    assert!(w.stopped.is_empty() && w.closed(&room) == 0, "the room waits");
    assert_eq!(w.wanted[&room], vec![], "and encodes nothing meanwhile");
    assert_eq!(w.status.as_ref().unwrap().load.rooms, 1, "it still counts as a room");
    w.run_for(Duration::from_secs(5));
    let back = sid(2);
    w.join(&back, Some(room.clone()), 1);
    assert_eq!(w.started.len(), 1, "the same emulator goes on: no new room");
    assert_eq!(w.wanted[&room], vec![VideoCodec::H264]);
    w.run_for(Duration::from_secs(10));
    assert!(w.stopped.is_empty(), "a returned player keeps it open past the first wait");

    // Nobody comes back: it closes once, after the wait.
    w.command(CoordMsg::EndSession { session: back });
    w.run_for(Duration::from_secs(9));
    assert!(w.stopped.is_empty());
    w.run_for(Duration::from_secs(2));
    assert_eq!(w.stopped, vec![room.clone()]);
    assert_eq!(w.closed(&room), 1);
    w.run_for(Duration::from_secs(12));
    assert_eq!(w.closed(&room), 1, "reported once");
}

#[test]
fn a_clock_jump_loses_no_room_and_no_viewer() {
    // The worker process froze (a VM paused, a stop signal) or its monotonic clock jumped:
    // 5 s pass at once, with nothing exchanged meanwhile. Nothing may time out spuriously.
    let mut w = World::new(4);
    let s = sid(1);
    w.join(&s, None, 1);
    let room = w.room();
    let mut src = Source::new(room.clone());
    src.play(&mut w, 30);
    let before = w.browsers[&s].frames[&MediaKind::Video];
    let (rates_before, rate_before) = (w.rates.len(), last_rate(&w, &room).unwrap());
    let jump_to = w.now + Duration::from_secs(5);
    w.advance_to(jump_to);
    src.play(&mut w, 120);
    let after = w.browsers[&s].frames[&MediaKind::Video];
    assert!(after >= before + 100, "the viewer got {} frames after the jump", after - before);
    assert!(w.stopped.is_empty(), "the room goes on");
    assert!(w.ended(&s).is_empty(), "the session goes on: {:?}", w.ended(&s));
    assert_eq!(w.engine.counters().viewers, 1);
    // Nor is congestion control: after the jump the rate does not fall, and climbs on.
    let after_jump = &w.rates[rates_before..];
    assert!(after_jump.iter().all(|r| r.2 >= rate_before), "rates after the jump: {after_jump:?}");
    src.play(&mut w, 600);
    assert!(last_rate(&w, &room).unwrap() > rate_before, "the rate stopped climbing: {:?}", w.rates);
}

#[test]
fn a_draining_worker_starts_no_room_lets_games_finish_then_closes_the_rest() {
    let mut w = World::with(4, Duration::from_secs(20), Duration::from_secs(60));
    let (a, b) = (sid(1), sid(2));
    w.join(&a, None, 1);
    let playing = w.room();
    w.join(&b, None, 1);
    let emptied = w.started[1].room.clone();
    w.command(CoordMsg::EndSession { session: b.clone() });
    assert!(w.stopped.is_empty(), "the emptied room lingers for its player");

    w.engine.handle(w.now, Input::Drain);
    w.drain();
    assert_eq!(w.stopped, vec![emptied], "draining closes the rooms nobody plays at once");
    assert_eq!(w.status.as_ref().unwrap().load.free, 0, "the coordinator hears the host is full");
    // No new room; the running game goes on.
    let refused = sid(3);
    assert!(w.start(&refused, None, 1).is_none());
    assert!(matches!(w.ended(&refused)[..], [(ErrorCode::NoFreeWorker, _)]), "{:?}", w.ended(&refused));
    let mut src = Source::new(playing.clone());
    src.play(&mut w, 30);
    assert!(w.browsers[&a].frames.get(&MediaKind::Video).copied().unwrap_or(0) > 20, "the game goes on");

    // The drain time is over: the room closes, its player is told to continue elsewhere.
    w.engine.handle(w.now, Input::Shutdown { message: "shutting down: reload".into() });
    w.drain();
    assert_eq!(w.ended(&a), vec![(ErrorCode::WorkerLost, "shutting down: reload".to_string())]);
    assert_eq!(w.stopped.last(), Some(&playing));
    assert_eq!(w.closed(&playing), 1);
    assert_eq!(w.engine.room_count(), 0);
    assert_eq!(w.engine.counters().rooms_failed, 0, "a shutdown is not a failure");
}

#[test]
fn an_unanswered_offer_times_out() {
    let mut w = World::new(4);
    let s = sid(1);
    w.start(&s, None, 1).expect("an offer");
    let room = w.room();
    w.run_for(Duration::from_secs(19));
    assert!(w.ended(&s).is_empty());
    w.run_for(Duration::from_secs(2));
    let ended = w.ended(&s);
    assert_eq!(ended.len(), 1);
    assert!(ended[0].1.contains("did not answer"), "{ended:?}");
    assert_eq!(w.stopped, vec![room.clone()]);
    assert_eq!(w.closed(&room), 1);
}

#[test]
fn an_unanswered_peer_that_gives_up_first_is_reported_as_unanswered() {
    // Our own timeout far away: the peer's DTLS handshake gives up on its own (about 23 to
    // 41 s of retries), and the player still hears that the browser did not answer.
    let mut w = World::with_connect_timeout(4, Duration::from_secs(600));
    let s = sid(1);
    w.start(&s, None, 1).expect("an offer");
    let room = w.room();
    w.run_for(Duration::from_secs(90));
    let ended = w.ended(&s);
    assert_eq!(ended.len(), 1, "the dead peer ended its session: {ended:?}");
    assert!(ended[0].1.contains("did not answer"), "{ended:?}");
    assert_eq!(w.stopped, vec![room]);
}

#[test]
fn a_room_that_dies_is_reported_once() {
    let mut w = World::new(4);
    let (a, b) = (sid(1), sid(2));
    w.join(&a, None, 1);
    let room = w.room();
    w.join(&b, Some(room.clone()), 2);
    for _ in 0..2 {
        let input = Input::RoomEnded { room: room.clone(), reason: "the game stopped: core crashed".into() };
        w.engine.handle(w.now, input);
        w.drain();
    }
    assert_eq!(w.closed(&room), 1, "one room_closed for the coordinator");
    assert_eq!(w.stopped, vec![room.clone()], "one stop for the driver");
    for s in [&a, &b] {
        assert_eq!(w.ended(s), vec![(ErrorCode::RoomClosed, "the game stopped: core crashed".to_string())]);
    }
    assert_eq!(w.engine.counters().rooms_failed, 1);
    assert_eq!(w.engine.counters().viewers, 0);
    // The peers were dropped: nothing more is sent to them.
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.closed(&room), 1);
}

#[test]
fn unknown_games_missing_cores_and_a_full_host_are_refused_with_reasons() {
    let mut w = World::new(1);
    w.command(CoordMsg::StartSession { session: sid(1), game: "Nope".into(), room: None, port: 1 });
    assert_eq!(w.ended(&sid(1))[0].0, ErrorCode::UnknownGame);
    w.start(&sid(2), None, 1).expect("room for one");
    assert!(w.start(&sid(3), None, 1).is_none());
    assert_eq!(w.ended(&sid(3))[0].0, ErrorCode::NoFreeWorker);
    // The driver measured more room.
    w.engine.handle(w.now, Input::Capacity(2));
    assert!(w.start(&sid(4), None, 1).is_some());
    // A room that is not here is looked up (to resume it): no save, a clear refusal.
    let gone = RoomId::new("gone").unwrap();
    assert!(w.start(&sid(5), Some(gone.clone()), 1).is_none());
    assert_eq!(w.resumes, std::slice::from_ref(&gone));
    w.engine.handle(w.now, Input::Resumed { room: gone, game: Err("room gone has no save".into()) });
    w.drain();
    assert_eq!(w.ended(&sid(5))[0], (ErrorCode::UnknownRoom, "room gone has no save".into()));

    let mut lib = Library::from_paths([PathBuf::from("games/Walk.nes")], &default_cores());
    lib.resolve_cores(|_| None);
    let cfg = EngineConfig {
        candidates: vec![WORKER.parse().unwrap()],
        connect_timeout: Duration::from_secs(20),
        linger: Duration::ZERO,
        rate: rate_config(),
    };
    let mut e = Engine::new(cfg, lib, 4, w.now);
    e.handle(w.now, Input::Command(CoordMsg::StartSession { session: sid(6), game: GAME.into(), room: None, port: 1 }));
    let Output::Coordinator(WorkerMsg::SessionEnded { message, .. }) = e.poll_output() else { panic!("refused") };
    assert!(message.contains("nestopia_libretro.so"), "{message}");
}

impl World {
    /// Sends text on a browser's `control` channel.
    fn send_control(&mut self, session: &SessionId, text: &str) {
        let b = self.browsers.get_mut(session).unwrap();
        let id = b.control.expect("the control channel is open");
        b.rtc.channel(id).unwrap().write(false, text.as_bytes()).unwrap();
        self.browsers_work();
    }
}

#[test]
fn game_commands_travel_on_the_control_channel_and_are_answered_there() {
    let mut w = World::new(4);
    let s = sid(1);
    w.join(&s, None, 1);
    w.run_until(Duration::from_secs(2), |w| w.browsers[&s].control.is_some());
    let room = w.room();

    let save = GameCommand::Save { user: "player-0001".into(), slot: 2 };
    w.send_control(&s, &save.encode());
    w.run_until(Duration::from_secs(1), |w| !w.games.is_empty());
    assert_eq!(w.games, [(room.clone(), s.clone(), save)]);
    // While the save is carried out: garbage, then a reset. Neither overtakes the save.
    w.send_control(&s, r#"{"t":"load","p":{"user":"../etc","slot":9}}"#);
    w.send_control(&s, &GameCommand::Reset.encode());
    w.run_for(Duration::from_millis(200));
    assert_eq!(w.games.len(), 1, "one command at a time");
    assert!(w.browsers[&s].replies.is_empty(), "answers wait for the one in front");

    // The driver did the save: its answer, the garbage's, and then the reset is carried out.
    w.engine.handle(w.now, Input::GameReply { session: s.clone(), reply: GameReply::Saved { slot: 2 } });
    w.drain();
    w.run_until(Duration::from_secs(1), |w| w.browsers[&s].replies.len() == 2);
    let replies: Vec<GameReply> = w.browsers[&s].replies.iter().map(|r| GameReply::decode(r).unwrap()).collect();
    assert_eq!(replies[0], GameReply::Saved { slot: 2 });
    let GameReply::Failed { command, message } = &replies[1] else { panic!("a failure: {replies:?}") };
    assert_eq!(command, "unknown");
    assert!(message.starts_with("bad command:"), "{message}");
    assert_eq!(w.games.len(), 2);
    assert_eq!(w.games[1].2, GameCommand::Reset);
    w.engine.handle(w.now, Input::GameReply { session: s.clone(), reply: GameReply::Reset });
    w.drain();
    w.run_until(Duration::from_secs(1), |w| w.browsers[&s].replies.len() == 3);
    assert!(w.ended(&s).is_empty());
}

#[test]
fn viewers_report_what_they_received_and_their_losses_are_counted() {
    let mut w = World::new(4);
    let s = sid(1);
    w.join(&s, None, 1);
    w.run_until(Duration::from_secs(2), |w| w.browsers[&s].control.is_some());
    let mut src = Source::new(w.room());
    src.play(&mut w, 180);
    // str0m's egress stats (once a second) count the packets sent; the link loses none.
    let c = w.engine.counters();
    assert!(c.packets_sent > 100, "packets sent: {}", c.packets_sent);
    assert_eq!(c.packets_lost, 0);

    // A page's report is counted, never answered, and does not wait behind a command.
    let save = GameCommand::Save { user: "player-0001".into(), slot: 1 };
    w.send_control(&s, &save.encode());
    let report = GameCommand::Report { frames: 290, ms: 5000, freezes: 1, freeze_ms: 120 };
    w.send_control(&s, &report.encode());
    w.send_control(&s, r#"{"t":"report","p":{"frames":99999,"ms":5000,"freezes":0,"freeze_ms":0}}"#);
    w.run_for(Duration::from_millis(200));
    let samples = w.engine.take_samples();
    assert_eq!(samples.viewer_reports, vec![ViewerReport { frames: 290, ms: 5000, freezes: 1, freeze_ms: 120 }]);
    assert_eq!(w.games.len(), 1, "only the save reached the driver");
    w.engine.handle(w.now, Input::GameReply { session: s.clone(), reply: GameReply::Saved { slot: 1 } });
    w.drain();
    w.run_until(Duration::from_secs(1), |w| w.browsers[&s].replies.len() == 2);
    let replies: Vec<GameReply> = w.browsers[&s].replies.iter().map(|r| GameReply::decode(r).unwrap()).collect();
    assert_eq!(replies[0], GameReply::Saved { slot: 1 });
    assert!(matches!(&replies[1], GameReply::Failed { command, .. } if command == "unknown"), "{replies:?}");
}

#[test]
fn a_room_that_is_not_here_resumes_from_its_autosave_under_its_own_id() {
    let mut w = World::new(4);
    let room = RoomId::new("k7f2a9c1").unwrap();
    // Two players open the share link at once, a third gives up while the save is looked up.
    assert!(w.start(&sid(1), Some(room.clone()), 1).is_none());
    assert!(w.start(&sid(2), Some(room.clone()), 2).is_none());
    assert!(w.start(&sid(3), Some(room.clone()), 3).is_none());
    w.command(CoordMsg::EndSession { session: sid(3) });
    assert_eq!(w.resumes, std::slice::from_ref(&room), "looked up once");
    assert!(w.started.is_empty());

    w.engine.handle(w.now, Input::Resumed { room: room.clone(), game: Ok(GAME.into()) });
    w.drain();
    assert_eq!(w.started.len(), 1);
    let start = &w.started[0];
    assert_eq!((&start.room, start.resume, start.game.as_str()), (&room, true, GAME));
    for (n, port) in [(1, 1), (2, 2)] {
        assert!(
            w.coordinator.iter().any(|m| matches!(m, WorkerMsg::SessionStarted { session, room: r, port: p, .. }
                if *session == sid(n) && *r == room && *p == port)),
            "session {n} is in the resumed room on port {port}"
        );
    }
    assert!(!w
        .coordinator
        .iter()
        .any(|m| matches!(m, WorkerMsg::SessionStarted { session, .. } if *session == sid(3))));
    // Once running, the room is joined like any other.
    assert!(w.start(&sid(4), Some(room.clone()), 4).is_some());
    assert_eq!(w.resumes.len(), 1);
}

impl World {
    /// Sends a pad state on a browser's `input` channel.
    fn press(&mut self, session: &SessionId, pad: PadState) {
        let b = self.browsers.get_mut(session).unwrap();
        let ch = b.input.unwrap();
        b.rtc.channel(ch).unwrap().write(true, &pad.encode()).unwrap();
        self.run_for(Duration::from_millis(100));
    }

    /// Sends a game command and returns the answer.
    fn command_reply(&mut self, session: &SessionId, command: &GameCommand) -> GameReply {
        let before = self.browsers[session].replies.len();
        self.send_control(session, &command.encode());
        self.run_until(Duration::from_secs(1), |w| w.browsers[session].replies.len() > before);
        GameReply::decode(&self.browsers[session].replies[before]).unwrap()
    }
}

#[test]
fn spectators_watch_without_playing_and_players_switch_ports() {
    let mut w = World::new(4);
    let (player, watcher) = (sid(1), sid(2));
    w.join(&player, None, 1);
    let room = w.room();
    w.join(&watcher, Some(room.clone()), 0);
    w.run_until(Duration::from_secs(2), |w| w.browsers[&watcher].control.is_some());
    let mut src = Source::new(room.clone());
    src.play(&mut w, 30);
    assert!(w.browsers[&watcher].frames.get(&MediaKind::Video).copied().unwrap_or(0) >= 25, "the spectator watches");

    // A spectator's pad drives nothing; it may not load or reset, but may take a free port.
    w.press(&watcher, PadState { seq: 1, buttons: 1, axes: [0; 4], ..Default::default() });
    assert!(w.pads.is_empty(), "{:?}", w.pads);
    for command in [GameCommand::Reset, GameCommand::Load { user: "watcher-1".into(), slot: 1 }] {
        let GameReply::Failed { message, .. } = w.command_reply(&watcher, &command) else { panic!("refused") };
        assert!(message.contains("spectators cannot change the game"), "{message}");
    }
    assert!(w.games.is_empty(), "nothing reached the driver");
    assert_eq!(
        w.command_reply(&watcher, &GameCommand::Port { port: 1 }),
        GameReply::Failed { command: "port".into(), message: "player 1 is taken in this room; pick another".into() }
    );
    assert_eq!(w.command_reply(&watcher, &GameCommand::Port { port: 2 }), GameReply::Port { port: 2 });
    w.press(&watcher, PadState { seq: 2, buttons: 4, axes: [0; 4], ..Default::default() });
    assert_eq!(w.pads, vec![(room.clone(), 2, PadState { seq: 2, buttons: 4, axes: [0; 4], ..Default::default() })]);

    // The player moves from port 1 to 3: port 1's buttons are released, input goes to port 3.
    w.press(&player, PadState { seq: 5, buttons: 8, axes: [0; 4], ..Default::default() });
    assert_eq!(w.command_reply(&player, &GameCommand::Port { port: 3 }), GameReply::Port { port: 3 });
    assert!(w.pads.contains(&(room.clone(), 1, PadState::default())), "port 1 released: {:?}", w.pads);
    w.press(&player, PadState { seq: 6, buttons: 16, axes: [0; 4], ..Default::default() });
    assert_eq!(
        w.pads.last(),
        Some(&(room.clone(), 3, PadState { seq: 6, buttons: 16, axes: [0; 4], ..Default::default() }))
    );
    // Watching again frees the port.
    assert_eq!(w.command_reply(&player, &GameCommand::Port { port: 0 }), GameReply::Port { port: 0 });
    assert_eq!(w.pads.last(), Some(&(room.clone(), 3, PadState::default())));
    assert!(w.ended(&player).is_empty() && w.ended(&watcher).is_empty());
}

/// The last bitrate the engine set for a room.
fn last_rate(w: &World, room: &RoomId) -> Option<u32> {
    w.rates.iter().rev().find(|(r, _, _)| r == room).map(|(_, _, bps)| *bps)
}

#[test]
fn the_bitrate_follows_a_slow_link_down_and_climbs_when_it_widens() {
    let mut w = World::new(4);
    let s = sid(1);
    w.join(&s, None, 1);
    let room = w.room();
    let now = w.now;
    w.browsers.get_mut(&s).unwrap().link = Some(Bottleneck::new(700_000, now));
    let mut src = Source::new(room.clone());
    src.play(&mut w, 60 * 12);
    let slow = last_rate(&w, &room).expect("the engine set a bitrate");
    let b = &w.browsers[&s];
    let received = b.video_bps(w.now, Duration::from_secs(4));
    let dropped = b.link.as_ref().unwrap().dropped;
    eprintln!(
        "700 kbit/s link: encoder at {slow} bit/s, {received:.0} bit/s of video received, {dropped} datagrams dropped"
    );
    assert!((150_000..=600_000).contains(&slow), "the encoder runs below the link: {slow}");
    assert!(received < 700_000.0, "{received}");
    let decreases = w.engine.counters().rate_decreases;
    assert!(decreases >= 1);

    // The link widens: the estimate probes up and the stream follows, in steps.
    w.browsers.get_mut(&s).unwrap().link.as_mut().unwrap().bps = 20_000_000;
    src.play(&mut w, 60 * 15);
    let fast = last_rate(&w, &room).unwrap();
    eprintln!("20 Mbit/s link: encoder at {fast} bit/s, {} raises", w.engine.counters().rate_increases);
    // GCC's climb: multiplicative while far from the last level, capped at 1.5x what is
    // actually sent, and probes; a few seconds per doubling.
    assert!(fast >= 2 * slow, "{slow} → {fast}");
    assert!(w.browsers[&s].frames[&MediaKind::Video] > 60 * 25, "frames kept flowing: {:?}", w.browsers[&s].frames);
}

#[test]
fn a_room_follows_its_slowest_viewer_until_that_one_leaves() {
    let mut w = World::new(4);
    let (fast, slow) = (sid(1), sid(2));
    w.join(&fast, None, 1);
    let room = w.room();
    w.join(&slow, Some(room.clone()), 2);
    let now = w.now;
    w.browsers.get_mut(&slow).unwrap().link = Some(Bottleneck::new(500_000, now));
    let mut src = Source::new(room.clone());
    src.play(&mut w, 60 * 10);
    let shared = last_rate(&w, &room).unwrap();
    eprintln!("with a 500 kbit/s viewer: {shared} bit/s");
    assert!(shared <= 450_000, "the slow viewer sets the pace: {shared}");

    w.command(CoordMsg::EndSession { session: slow.clone() });
    src.play(&mut w, 60 * 10);
    let alone = last_rate(&w, &room).unwrap();
    eprintln!("the fast viewer alone: {alone} bit/s");
    // It climbs as GCC does from an application-limited rate: 1.5x what is sent at most.
    assert!(f64::from(alone) > 1.4 * f64::from(shared), "{shared} → {alone}");
}

#[test]
fn a_burst_of_plis_costs_one_keyframe_now_and_one_after_the_interval() {
    let mut w = World::new(4);
    let s = sid(1);
    w.join(&s, None, 1);
    let room = w.room();
    let mut src = Source::new(room.clone());
    src.play(&mut w, 30);
    assert!(w.keyframes.is_empty(), "the join's keyframe was taken");
    let start = w.now;
    let mut plis = 0;
    let mut at = vec![];
    while w.now < start + Duration::from_secs(1) {
        if plis < 5 && w.now >= start + plis * Duration::from_millis(20) {
            let b = w.browsers.get_mut(&s).unwrap();
            let mid = b.video.unwrap();
            b.rtc.writer(mid).unwrap().request_keyframe(None, KeyframeRequestKind::Pli).unwrap();
            plis += 1;
        }
        w.tick();
        if !w.keyframes.is_empty() {
            at.push(w.now.duration_since(start));
            w.keyframes.clear();
        }
    }
    eprintln!("keyframes after a burst of 5 PLIs at: {at:?}");
    assert_eq!(at.len(), 2, "{at:?}");
    assert!(at[1] - at[0] >= Duration::from_millis(300), "{at:?}");
    assert!(w.engine.counters().keyframes_deferred >= 1);
}

/// The screens a browser heard on its `control` channel, in order.
fn screens(w: &World, session: &SessionId) -> Vec<Screen> {
    let replies = w.browsers[session].replies.iter().map(|r| GameReply::decode(r).unwrap());
    replies.filter_map(|r| if let GameReply::Screen(s) = r { Some(s) } else { None }).collect()
}

#[test]
fn viewers_hear_the_shape_of_the_picture_when_their_channel_opens_and_when_it_changes() {
    let mut w = World::new(4);
    let (first, second) = (sid(1), sid(2));
    let offer = w.start(&first, None, 1).expect("an offer");
    let room = w.room();
    // The room runs before the player's channel opens: it hears the shape once it does.
    let wide = Screen { aspect: 4.0 / 3.0, rotation: 0 };
    w.engine.handle(w.now, Input::Screen { room: room.clone(), screen: wide });
    // News of a room this worker does not run goes nowhere.
    let gone = RoomId::new("gone").unwrap();
    w.engine.handle(w.now, Input::Screen { room: gone, screen: Screen { aspect: 2.0, rotation: 3 } });
    w.drain();
    w.answer(&first, &offer);
    w.run_until(Duration::from_secs(5), |w| !w.browsers[&first].replies.is_empty());
    assert_eq!(screens(&w, &first), [wide]);

    // A second viewer hears it when its own channel opens.
    w.join(&second, Some(room.clone()), 2);
    w.run_until(Duration::from_secs(2), |w| !w.browsers[&second].replies.is_empty());
    assert_eq!(screens(&w, &second), [wide]);

    // The core turns its picture: both hear it, once.
    let tall = Screen { aspect: 4.0 / 3.0, rotation: 1 };
    w.engine.handle(w.now, Input::Screen { room: room.clone(), screen: tall });
    w.drain();
    w.run_until(Duration::from_secs(1), |w| w.browsers.values().all(|b| b.replies.len() == 2));
    w.run_for(Duration::from_millis(200));
    assert_eq!(screens(&w, &first), [wide, tall]);
    assert_eq!(screens(&w, &second), [wide, tall]);
}

#[test]
fn a_rescanned_library_is_used_for_new_rooms_and_reported_once_when_it_changed() {
    let mut w = World::new(4);
    let s = sid(1);
    w.join(&s, None, 1);
    w.coordinator.clear();
    // The same games again: nothing to report.
    w.engine.handle(w.now, Input::Library(library()));
    w.drain();
    assert!(w.coordinator.is_empty(), "{:?}", w.coordinator);

    // A game was added and ours renamed: the coordinator hears the new list, the status
    // (what a re-registration sends) carries it, and the running room plays on.
    let mut lib =
        Library::from_paths(["games/Quest (USA).sfc", "games/Walk Renamed.nes"].map(PathBuf::from), &default_cores());
    lib.resolve_cores(|c| Some(PathBuf::from("/cores").join(c)));
    w.engine.handle(w.now, Input::Library(lib.clone()));
    w.drain();
    let [WorkerMsg::Games { games }] = &w.coordinator[..] else { panic!("{:?}", w.coordinator) };
    assert_eq!(games, &lib.infos());
    assert_eq!(&*w.engine.status().games, &lib.infos()[..]);
    assert!(w.ended(&s).is_empty());
    // A new room starts a game of the new list, from its file.
    w.command(CoordMsg::StartSession { session: sid(2), game: "Quest".into(), room: None, port: 1 });
    let started = w.started.last().unwrap();
    assert_eq!((started.game.as_str(), &started.rom), ("Quest", &PathBuf::from("games/Quest (USA).sfc")));
}
