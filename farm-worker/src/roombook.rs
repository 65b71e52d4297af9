//! Which sessions are in which room, on which player port. Pure bookkeeping.

use std::collections::{BTreeMap, HashMap};

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
        if !(1..=MAX_PORT).contains(&port) {
            return Err(refuse(ErrorCode::Malformed, format!("port {port} is not in 1..={MAX_PORT}")));
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
                let entry = RoomEntry { game: game.to_string(), ports: Default::default() };
                self.rooms.insert(new_room.clone(), entry);
                (new_room, true)
            }
        };
        let entry = self.rooms.get_mut(&id).expect("room exists");
        let slot = &mut entry.ports[usize::from(port - 1)];
        if slot.is_some() {
            return Err(refuse(ErrorCode::PortTaken, format!("player {port} is taken in this room; pick another")));
        }
        *slot = Some(session.clone());
        self.sessions.insert(session, (id.clone(), port));
        Ok(Joined { game: entry.game.clone(), room: id, created })
    }

    /// Removes `session`; returns its room and whether the room is now empty. An empty room
    /// stays until it is closed ([`RoomBook::close`]).
    pub fn leave(&mut self, session: &SessionId) -> Option<(RoomId, bool)> {
        let (room, port) = self.sessions.remove(session)?;
        let entry = self.rooms.get_mut(&room)?;
        entry.ports[usize::from(port - 1)] = None;
        let empty = entry.ports.iter().all(Option::is_none);
        Some((room, empty))
    }

    /// Whether `room` has no players.
    pub fn is_empty(&self, room: &RoomId) -> bool {
        self.rooms.get(room).is_some_and(|r| r.ports.iter().all(Option::is_none))
    }

    /// Removes a room (emptied, or its emulator died); returns the sessions that were in it, or
    /// `None` when there was no such room.
    pub fn close(&mut self, room: &RoomId) -> Option<Vec<SessionId>> {
        let entry = self.rooms.remove(room)?;
        let sessions: Vec<SessionId> = entry.ports.into_iter().flatten().collect();
        for s in &sessions {
            self.sessions.remove(s);
        }
        Some(sessions)
    }

    /// The sessions in a room.
    pub fn sessions_in(&self, room: &RoomId) -> impl Iterator<Item = &SessionId> {
        self.rooms.get(room).into_iter().flat_map(|r| r.ports.iter().flatten())
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
        assert_eq!(b.join(s("c"), "walk", None, 0, r("y"), true).unwrap_err().code, ErrorCode::Malformed);
        assert_eq!(b.room_count(), 1, "refused joins leave no room behind");
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
