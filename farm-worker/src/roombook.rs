//! Which sessions are in which room, on which player port (or watching: port
//! [`SPECTATOR`]). Pure bookkeeping.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use retrofarm_proto::browser::MAX_PORT;
use retrofarm_proto::control::{Load, RoomInfo};
use retrofarm_proto::ids::{RoomId, SessionId};
use retrofarm_proto::ErrorCode;

/// One room's players.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEntry {
    /// The game.
    pub game: String,
    /// Session controlling each port (index 0 = port 1).
    pub ports: [Option<SessionId>; MAX_PORT as usize],
    /// Sessions watching without a port.
    pub spectators: BTreeSet<SessionId>,
}

/// The "port" of a session that watches without playing.
pub const SPECTATOR: u8 = 0;

impl RoomEntry {
    fn is_empty(&self) -> bool {
        self.spectators.is_empty() && self.ports.iter().all(Option::is_none)
    }

    /// Takes `port` (or a spectator's place) for `session`.
    fn take(&mut self, session: &SessionId, port: u8) -> Result<(), Refusal> {
        if port == SPECTATOR {
            self.spectators.insert(session.clone());
            return Ok(());
        }
        let slot = &mut self.ports[usize::from(port - 1)];
        if slot.is_some() {
            return Err(refuse(ErrorCode::PortTaken, format!("player {port} is taken in this room; pick another")));
        }
        *slot = Some(session.clone());
        Ok(())
    }

    fn give_back(&mut self, session: &SessionId, port: u8) {
        if port == SPECTATOR {
            self.spectators.remove(session);
        } else {
            self.ports[usize::from(port - 1)] = None;
        }
    }
}

/// A refused join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Code for the browser.
    pub code: ErrorCode,
    /// Explanation.
    pub message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// A successful join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The room.
    pub room: RoomId,
    /// Its game.
    pub game: String,
    /// Whether the room was created by this join (its emulator must start).
    pub created: bool,
}

/// Rooms and their sessions.
#[derive(Debug, Default)]
pub struct RoomBook {
    rooms: BTreeMap<RoomId, RoomEntry>,
    sessions: HashMap<SessionId, (RoomId, u8)>,
}

impl RoomBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `session` on `port` of `room`, or of a new room `new_room` running `game` when
    /// `room` is `None`. `can_create` says whether the host has capacity for a new room.
    pub fn join(
        &mut self,
        session: SessionId,
        game: &str,
        room: Option<&RoomId>,
        port: u8,
        new_room: RoomId,
        can_create: bool,
    ) -> Result<Joined, Refusal> {
        if self.sessions.contains_key(&session) {
            return Err(refuse(ErrorCode::BadState, "this session is already in a room; quit first"));
        }
        if port > MAX_PORT {
            return Err(refuse(ErrorCode::Malformed, format!("port {port} is not in 0..={MAX_PORT}")));
        }
        let (id, created) = match room {
            Some(r) => {
                if !self.rooms.contains_key(r) {
                    return Err(refuse(ErrorCode::UnknownRoom, format!("room {r} does not exist (it may have ended)")));
                }
                (r.clone(), false)
            }
            None => {
                if !can_create {
                    return Err(refuse(ErrorCode::NoFreeWorker, "this server is full; try again in a minute"));
                }
                let entry =
                    RoomEntry { game: game.to_string(), ports: Default::default(), spectators: BTreeSet::new() };
                self.rooms.insert(new_room.clone(), entry);
                (new_room, true)
            }
        };
        let entry = self.rooms.get_mut(&id).expect("room exists");
        if let Err(refusal) = entry.take(&session, port) {
            if created {
                self.rooms.remove(&id);
            }
            return Err(refusal);
        }
        self.sessions.insert(session, (id.clone(), port));
        Ok(Joined { game: entry.game.clone(), room: id, created })
    }

    /// Removes `session`; returns its room and whether the room is now empty. An empty room
    /// stays until it is closed ([`RoomBook::close`]).
    pub fn leave(&mut self, session: &SessionId) -> Option<(RoomId, bool)> {
        let (room, port) = self.sessions.remove(session)?;
        let entry = self.rooms.get_mut(&room)?;
        entry.give_back(session, port);
        Some((room, entry.is_empty()))
    }

    /// Moves `session` to `port` of its room (or to watching, [`SPECTATOR`]); returns the port
    /// it left.
    pub fn switch(&mut self, session: &SessionId, port: u8) -> Result<u8, Refusal> {
        if port > MAX_PORT {
            return Err(refuse(ErrorCode::Malformed, format!("port {port} is not in 0..={MAX_PORT}")));
        }
        let (room, old) =
            self.sessions.get(session).cloned().ok_or_else(|| refuse(ErrorCode::BadState, "not in a room"))?;
        if old == port {
            return Ok(old);
        }
        let entry = self.rooms.get_mut(&room).ok_or_else(|| refuse(ErrorCode::BadState, "not in a room"))?;
        entry.take(session, port)?;
        entry.give_back(session, old);
        self.sessions.insert(session.clone(), (room, port));
        Ok(old)
    }

    /// Whether `room` has nobody in it, players or spectators.
    pub fn is_empty(&self, room: &RoomId) -> bool {
        self.rooms.get(room).is_some_and(RoomEntry::is_empty)
    }

    /// Removes a room (emptied, or its emulator died); returns the sessions that were in it, or
    /// `None` when there was no such room.
    pub fn close(&mut self, room: &RoomId) -> Option<Vec<SessionId>> {
        let entry = self.rooms.remove(room)?;
        let sessions: Vec<SessionId> = entry.ports.into_iter().flatten().chain(entry.spectators).collect();
        for s in &sessions {
            self.sessions.remove(s);
        }
        Some(sessions)
    }

    /// The sessions in a room.
    pub fn sessions_in(&self, room: &RoomId) -> impl Iterator<Item = &SessionId> {
        self.rooms.get(room).into_iter().flat_map(|r| r.ports.iter().flatten().chain(&r.spectators))
    }

    /// The room and port of a session.
    pub fn session(&self, session: &SessionId) -> Option<&(RoomId, u8)> {
        self.sessions.get(session)
    }

    /// Rooms, for (re-)registration.
    pub fn infos(&self) -> Vec<RoomInfo> {
        self.rooms.iter().map(|(id, r)| RoomInfo { id: id.clone(), game: r.game.clone() }).collect()
    }

    /// Whether `room` is open here.
    pub fn has_room(&self, room: &RoomId) -> bool {
        self.rooms.contains_key(room)
    }

    /// The open rooms' ids.
    pub fn room_ids(&self) -> Vec<RoomId> {
        self.rooms.keys().cloned().collect()
    }

    /// Number of rooms.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Load for heartbeats, given the host's room capacity.
    pub fn load(&self, capacity: u32) -> Load {
        let rooms = self.rooms.len() as u32;
        Load { rooms, sessions: self.sessions.len() as u32, free: capacity.saturating_sub(rooms) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> SessionId {
        SessionId::new(x).unwrap()
    }
    fn r(x: &str) -> RoomId {
        RoomId::new(x).unwrap()
    }

    #[test]
    fn create_join_leave() {
        let mut b = RoomBook::new();
        let j = b.join(s("a"), "walk", None, 1, r("r1"), true).unwrap();
        assert_eq!(j, Joined { room: r("r1"), game: "walk".into(), created: true });
        let j = b.join(s("b"), "", Some(&r("r1")), 2, r("unused"), false).unwrap();
        assert!(!j.created);
        assert_eq!(j.game, "walk");
        assert_eq!(b.load(4), Load { rooms: 1, sessions: 2, free: 3 });
        assert_eq!(b.leave(&s("a")), Some((r("r1"), false)));
        assert_eq!(b.leave(&s("b")), Some((r("r1"), true)));
        assert!(b.is_empty(&r("r1")) && b.has_room(&r("r1")), "an empty room stays until closed");
        assert_eq!(b.close(&r("r1")), Some(vec![]));
        assert_eq!(b.room_count(), 0);
        assert_eq!(b.leave(&s("b")), None);
    }

    #[test]
    fn refusals() {
        let mut b = RoomBook::new();
        b.join(s("a"), "walk", None, 1, r("r1"), true).unwrap();
        assert_eq!(b.join(s("b"), "", Some(&r("r1")), 1, r("x"), true).unwrap_err().code, ErrorCode::PortTaken);
        assert_eq!(b.join(s("b"), "", Some(&r("zz")), 2, r("x"), true).unwrap_err().code, ErrorCode::UnknownRoom);
        assert_eq!(b.join(s("b"), "walk", None, 1, r("x"), false).unwrap_err().code, ErrorCode::NoFreeWorker);
        assert_eq!(b.join(s("a"), "walk", None, 1, r("y"), true).unwrap_err().code, ErrorCode::BadState);
        assert_eq!(b.join(s("c"), "walk", None, 5, r("y"), true).unwrap_err().code, ErrorCode::Malformed);
        assert_eq!(b.room_count(), 1, "refused joins leave no room behind");
    }

    #[test]
    fn spectators_watch_without_a_port_and_players_switch_ports() {
        let mut b = RoomBook::new();
        b.join(s("a"), "walk", None, 1, r("r1"), true).unwrap();
        b.join(s("w"), "", Some(&r("r1")), SPECTATOR, r("x"), false).unwrap();
        b.join(s("v"), "", Some(&r("r1")), SPECTATOR, r("x"), false).unwrap();
        assert_eq!(b.sessions_in(&r("r1")).count(), 3, "spectators get the stream");
        // A player moves to port 3, then port 1 is free for a spectator who wants to play.
        assert_eq!(b.switch(&s("a"), 3), Ok(1));
        assert_eq!(b.session(&s("a")), Some(&(r("r1"), 3)));
        assert_eq!(b.switch(&s("w"), 3).unwrap_err().code, ErrorCode::PortTaken);
        assert_eq!(b.switch(&s("w"), 1), Ok(SPECTATOR));
        assert_eq!(b.switch(&s("w"), 9).unwrap_err().code, ErrorCode::Malformed);
        assert_eq!(b.switch(&s("nobody"), 2).unwrap_err().code, ErrorCode::BadState);
        // The players leave: the room is not empty while someone watches.
        assert_eq!(b.leave(&s("a")), Some((r("r1"), false)));
        assert_eq!(b.leave(&s("w")), Some((r("r1"), false)));
        assert_eq!(b.leave(&s("v")), Some((r("r1"), true)));
        // A spectator's join of a full room's port refused does not leave a room behind.
        assert_eq!(b.join(s("z"), "walk", None, 7, r("r2"), true).unwrap_err().code, ErrorCode::Malformed);
        assert!(!b.has_room(&r("r2")));
    }

    #[test]
    fn closing_a_room_returns_its_sessions() {
        let mut b = RoomBook::new();
        b.join(s("a"), "walk", None, 1, r("r1"), true).unwrap();
        b.join(s("b"), "", Some(&r("r1")), 3, r("x"), true).unwrap();
        let mut gone = b.close(&r("r1")).unwrap();
        gone.sort();
        assert_eq!(gone, vec![s("a"), s("b")]);
        assert!(b.session(&s("a")).is_none());
        assert_eq!(b.close(&r("r1")), None, "a room closes once");
    }
}
