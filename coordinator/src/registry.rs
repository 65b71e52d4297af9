//! The registry of connected workers and the rooms they host. Pure state, driven by the
//! caller's clock (`now`), so heartbeat expiry is tested with a virtual clock.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use retrofarm_proto::browser::GameInfo;
use retrofarm_proto::control::{Load, RoomInfo};
use retrofarm_proto::ids::{RoomId, WorkerId};

use crate::selection::Candidate;

/// One QUIC connection from a worker. A reconnecting worker gets a new one, so a late
/// disconnect of its old connection cannot remove the new registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A registered worker.
#[derive(Debug, Clone)]
pub struct Worker {
    /// The connection it registered on.
    pub conn: ConnId,
    /// Its zone.
    pub zone: String,
    /// Its ping URL.
    pub ping_url: String,
    /// Its game library.
    pub games: Vec<GameInfo>,
    /// Load from its last heartbeat.
    pub load: Load,
    /// Rooms started here since the last heartbeat reported them (keeps two quick starts from
    /// over-filling a host between heartbeats).
    pub pending_starts: u32,
    /// When it was last heard from.
    pub last_seen: Instant,
}

impl Worker {
    /// Rooms it can still take.
    pub fn free(&self) -> u32 {
        self.load.free.saturating_sub(self.pending_starts)
    }
}

/// What a registration carries.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Worker id.
    pub id: WorkerId,
    /// Zone.
    pub zone: String,
    /// Ping URL.
    pub ping_url: String,
    /// Library.
    pub games: Vec<GameInfo>,
    /// Rooms it already runs.
    pub rooms: Vec<RoomInfo>,
    /// Load.
    pub load: Load,
}

/// Worker and room bookkeeping.
#[derive(Debug)]
pub struct Registry {
    workers: BTreeMap<WorkerId, Worker>,
    by_conn: HashMap<ConnId, WorkerId>,
    rooms: HashMap<RoomId, (WorkerId, String)>,
    timeout: Duration,
}

/// A worker that left the registry, with the rooms it took along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departed {
    /// The worker.
    pub id: WorkerId,
    /// Its connection.
    pub conn: ConnId,
    /// Rooms that are gone with it.
    pub rooms: Vec<RoomId>,
}

impl Registry {
    /// An empty registry; workers silent for longer than `timeout` expire.
    pub fn new(timeout: Duration) -> Self {
        Self { workers: BTreeMap::new(), by_conn: HashMap::new(), rooms: HashMap::new(), timeout }
    }

    /// Registers (or re-registers) a worker on `conn`. A previous registration of the same id
    /// (an old connection the worker abandoned) is replaced and returned so its sessions can be
    /// told.
    pub fn register(&mut self, conn: ConnId, now: Instant, reg: Registration) -> Option<Departed> {
        let replaced = self.workers.get(&reg.id).map(|w| w.conn).and_then(|old| self.remove(old));
        for room in reg.rooms {
            self.rooms.insert(room.id, (reg.id.clone(), room.game));
        }
        self.by_conn.insert(conn, reg.id.clone());
        self.workers.insert(
            reg.id,
            Worker {
                conn,
                zone: reg.zone,
                ping_url: reg.ping_url,
                games: reg.games,
                load: reg.load,
                pending_starts: 0,
                last_seen: now,
            },
        );
        replaced
    }

    /// The worker registered on `conn`.
    pub fn worker_of(&self, conn: ConnId) -> Option<&WorkerId> {
        self.by_conn.get(&conn)
    }

    /// A worker by id.
    pub fn get(&self, id: &WorkerId) -> Option<&Worker> {
        self.workers.get(id)
    }

    /// Records a heartbeat.
    pub fn heartbeat(&mut self, conn: ConnId, now: Instant, load: Load) {
        if let Some(w) = self.by_conn.get(&conn).and_then(|id| self.workers.get_mut(id)) {
            w.last_seen = now;
            w.load = load;
            w.pending_starts = 0;
        }
    }

    /// Replaces a worker's games (it scanned its games folder again).
    pub fn set_games(&mut self, conn: ConnId, games: Vec<GameInfo>) {
        if let Some(w) = self.by_conn.get(&conn).and_then(|id| self.workers.get_mut(id)) {
            w.games = games;
        }
    }

    /// Notes that a new room is being started on `id`.
    pub fn start_pending(&mut self, id: &WorkerId) {
        if let Some(w) = self.workers.get_mut(id) {
            w.pending_starts += 1;
        }
    }

    /// Records a room that a worker now hosts.
    pub fn room_opened(&mut self, conn: ConnId, room: RoomId, game: String) {
        if let Some(id) = self.by_conn.get(&conn) {
            self.rooms.insert(room, (id.clone(), game));
        }
    }

    /// Forgets a room (only if `conn`'s worker hosts it).
    pub fn room_closed(&mut self, conn: ConnId, room: &RoomId) {
        let hosted_here = self.rooms.get(room).is_some_and(|(w, _)| self.by_conn.get(&conn) == Some(w));
        if hosted_here {
            self.rooms.remove(room);
        }
    }

    /// The worker hosting `room`, and the game in it.
    pub fn room(&self, room: &RoomId) -> Option<(&WorkerId, &str)> {
        self.rooms.get(room).map(|(w, g)| (w, g.as_str()))
    }

    /// Removes the worker on `conn` (disconnected) with its rooms.
    pub fn remove(&mut self, conn: ConnId) -> Option<Departed> {
        let id = self.by_conn.remove(&conn)?;
        self.workers.remove(&id);
        let mut rooms: Vec<RoomId> = self.rooms.iter().filter(|(_, (w, _))| *w == id).map(|(r, _)| r.clone()).collect();
        rooms.sort();
        for r in &rooms {
            self.rooms.remove(r);
        }
        Some(Departed { id, conn, rooms })
    }

    /// Removes every worker not heard from within the timeout.
    pub fn expire(&mut self, now: Instant) -> Vec<Departed> {
        let stale: Vec<ConnId> = self
            .workers
            .values()
            .filter(|w| now.saturating_duration_since(w.last_seen) > self.timeout)
            .map(|w| w.conn)
            .collect();
        stale.into_iter().filter_map(|c| self.remove(c)).collect()
    }

    /// Selection's view of the workers.
    pub fn candidates(&self) -> Vec<Candidate> {
        self.workers
            .iter()
            .map(|(id, w)| Candidate {
                id: id.clone(),
                zone: w.zone.clone(),
                ping_url: w.ping_url.clone(),
                free: w.free(),
            })
            .collect()
    }

    /// Number of workers per zone.
    pub fn zones(&self) -> BTreeMap<&str, usize> {
        let mut z = BTreeMap::new();
        for w in self.workers.values() {
            *z.entry(w.zone.as_str()).or_default() += 1;
        }
        z
    }

    /// Number of rooms known.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: &str, rooms: &[&str]) -> Registration {
        Registration {
            id: WorkerId::new(id).unwrap(),
            zone: "eu".into(),
            ping_url: "http://x/ping".into(),
            games: vec![],
            rooms: rooms.iter().map(|r| RoomInfo { id: RoomId::new(*r).unwrap(), game: "g".into() }).collect(),
            load: Load { rooms: 0, sessions: 0, free: 2 },
        }
    }

    #[test]
    fn heartbeats_keep_workers_and_silence_expires_them() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(3));
        r.register(ConnId(1), t0, reg("a", &["r1"]));
        r.register(ConnId(2), t0, reg("b", &[]));
        r.heartbeat(ConnId(1), t0 + Duration::from_secs(2), Load::default());
        assert!(r.expire(t0 + Duration::from_secs(3)).is_empty());
        let gone = r.expire(t0 + Duration::from_millis(3001));
        assert_eq!(gone, vec![Departed { id: WorkerId::new("b").unwrap(), conn: ConnId(2), rooms: vec![] }]);
        let gone = r.expire(t0 + Duration::from_millis(5001));
        assert_eq!(gone[0].rooms, vec![RoomId::new("r1").unwrap()]);
        assert!(r.room(&RoomId::new("r1").unwrap()).is_none());
        assert!(r.candidates().is_empty());
    }

    #[test]
    fn reconnect_replaces_old_connection_and_keeps_reported_rooms() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(3));
        r.register(ConnId(1), t0, reg("a", &["r1"]));
        let replaced = r.register(ConnId(2), t0, reg("a", &["r1", "r2"])).unwrap();
        assert_eq!(replaced.conn, ConnId(1));
        // The old connection's late disconnect removes nothing.
        assert!(r.remove(ConnId(1)).is_none());
        assert_eq!(r.room(&RoomId::new("r2").unwrap()).unwrap().0.as_str(), "a");
        assert_eq!(r.room(&RoomId::new("r1").unwrap()).unwrap().0.as_str(), "a");
        assert_eq!(r.worker_of(ConnId(2)).unwrap().as_str(), "a");
    }

    #[test]
    fn pending_starts_reduce_free_capacity_until_the_next_heartbeat() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(3));
        r.register(ConnId(1), t0, reg("a", &[]));
        let a = WorkerId::new("a").unwrap();
        r.start_pending(&a);
        r.start_pending(&a);
        r.start_pending(&a);
        assert_eq!(r.get(&a).unwrap().free(), 0);
        r.heartbeat(ConnId(1), t0, Load { rooms: 2, sessions: 2, free: 1 });
        assert_eq!(r.get(&a).unwrap().free(), 1);
    }

    #[test]
    fn only_the_hosting_worker_closes_a_room() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(3));
        r.register(ConnId(1), t0, reg("a", &["r1"]));
        r.register(ConnId(2), t0, reg("b", &[]));
        let r1 = RoomId::new("r1").unwrap();
        r.room_closed(ConnId(2), &r1);
        assert!(r.room(&r1).is_some());
        r.room_closed(ConnId(1), &r1);
        assert!(r.room(&r1).is_none());
    }
}
