//! Worker selection, as the streaming flow describes it: a room id routes to the worker that
//! hosts it; otherwise the candidates are the workers of the requested zone (all zones when none
//! is given) with free capacity, the browser pings up to [`MAX_PING_TARGETS`] of them (every zone
//! represented, the emptiest workers first), and the fastest wins.
//!
//! Pure functions over a snapshot of the registry.

use std::collections::BTreeMap;

use retrofarm_proto::browser::PingTarget;
use retrofarm_proto::ids::WorkerId;

/// What selection needs to know about one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The worker.
    pub id: WorkerId,
    /// Its zone.
    pub zone: String,
    /// Its ping URL.
    pub ping_url: String,
    /// Rooms it can still start at full rate.
    pub free: u32,
}

/// Why no worker could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No worker (of the zone) has free capacity.
    #[error("{}", no_free_message(.zone.as_deref()))]
    NoFreeWorker {
        /// The requested zone.
        zone: Option<String>,
    },
}

fn no_free_message(zone: Option<&str>) -> String {
    match zone {
        Some(z) => {
            format!("zone {z:?} is full: no game server there has free capacity; try again later or another zone")
        }
        None => "the farm is full: every game server is busy; try again in a minute".to_string(),
    }
}

/// Most workers a browser is asked to ping: a farm of hundreds would otherwise have every page
/// open ping them all (and every `check_latency` message grow with the farm).
pub const MAX_PING_TARGETS: usize = 12;

/// Workers the browser should ping: those in `zone` (any zone when `None`) with free capacity,
/// at most [`MAX_PING_TARGETS`]: taken a zone at a time in turn (so that every zone is measured
/// when there are fewer zones than targets), within a zone the ones with the most free rooms.
pub fn ping_targets(workers: &[Candidate], zone: Option<&str>) -> Result<Vec<PingTarget>, SelectError> {
    let mut zones: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for c in eligible(workers, zone) {
        zones.entry(c.zone.as_str()).or_default().push(c);
    }
    if zones.is_empty() {
        return Err(SelectError::NoFreeWorker { zone: zone.map(str::to_string) });
    }
    for list in zones.values_mut() {
        list.sort_by_key(|c| (std::cmp::Reverse(c.free), &c.id));
    }
    let mut targets = Vec::new();
    for round in 0.. {
        let before = targets.len();
        for list in zones.values() {
            if let Some(c) = list.get(round).filter(|_| targets.len() < MAX_PING_TARGETS) {
                targets.push(PingTarget { id: c.id.clone(), ping_url: c.ping_url.clone() });
            }
        }
        if targets.len() == before || targets.len() == MAX_PING_TARGETS {
            break;
        }
    }
    Ok(targets)
}

/// Chooses the eligible worker with the lowest reported ping. Workers the browser could not
/// reach (absent from `pings`) come last; ties go to the one with more free capacity, then to
/// the lower id, so the choice is deterministic.
pub fn choose(
    workers: &[Candidate],
    zone: Option<&str>,
    pings: &BTreeMap<WorkerId, u32>,
) -> Result<WorkerId, SelectError> {
    eligible(workers, zone)
        .min_by_key(|c| (pings.get(&c.id).copied().unwrap_or(u32::MAX), std::cmp::Reverse(c.free), &c.id))
        .map(|c| c.id.clone())
        .ok_or_else(|| SelectError::NoFreeWorker { zone: zone.map(str::to_string) })
}

fn eligible<'a>(workers: &'a [Candidate], zone: Option<&'a str>) -> impl Iterator<Item = &'a Candidate> {
    workers.iter().filter(move |c| c.free > 0 && zone.is_none_or(|z| c.zone == z))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, zone: &str, free: u32) -> Candidate {
        Candidate { id: WorkerId::new(id).unwrap(), zone: zone.into(), ping_url: format!("http://{id}/ping"), free }
    }

    fn pings(p: &[(&str, u32)]) -> BTreeMap<WorkerId, u32> {
        p.iter().map(|(id, ms)| (WorkerId::new(*id).unwrap(), *ms)).collect()
    }

    #[test]
    fn zone_filters_candidates() {
        let ws = [w("a", "eu", 1), w("b", "us", 1), w("c", "eu", 1)];
        let ids: Vec<_> = ping_targets(&ws, Some("eu")).unwrap().into_iter().map(|t| t.id.to_string()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(ping_targets(&ws, None).unwrap().len(), 3);
        // The fastest worker overall is in another zone: the zone still decides.
        assert_eq!(choose(&ws, Some("eu"), &pings(&[("b", 1), ("a", 50), ("c", 30)])).unwrap().as_str(), "c");
    }

    #[test]
    fn a_large_farm_is_sampled_every_zone_and_the_emptiest_first() {
        let ws: Vec<Candidate> =
            (0..1000).map(|i| w(&format!("w{i:04}"), &format!("z{}", i % 10), 1 + (i % 7) as u32)).collect();
        let targets = ping_targets(&ws, None).unwrap();
        assert_eq!(targets.len(), MAX_PING_TARGETS);
        let zones: std::collections::BTreeSet<&str> =
            targets.iter().map(|t| ws.iter().find(|c| c.id == t.id).unwrap().zone.as_str()).collect();
        assert_eq!(zones.len(), 10, "every zone is measured");
        assert!(targets.iter().all(|t| ws.iter().find(|c| c.id == t.id).unwrap().free == 7), "the emptiest first");
        // One zone: its emptiest workers, in a stable order.
        let eu = ping_targets(&ws, Some("z3")).unwrap();
        assert_eq!(eu.len(), MAX_PING_TARGETS);
        assert_eq!(eu, ping_targets(&ws, Some("z3")).unwrap());
    }

    #[test]
    fn lowest_ping_wins() {
        let ws = [w("a", "eu", 1), w("b", "eu", 1)];
        assert_eq!(choose(&ws, None, &pings(&[("a", 80), ("b", 20)])).unwrap().as_str(), "b");
        assert_eq!(choose(&ws, None, &pings(&[("a", 5), ("b", 20)])).unwrap().as_str(), "a");
    }

    #[test]
    fn unreachable_workers_come_last_and_ties_prefer_capacity() {
        let ws = [w("a", "eu", 1), w("b", "eu", 7), w("c", "eu", 3)];
        assert_eq!(choose(&ws, None, &pings(&[("c", 40)])).unwrap().as_str(), "c");
        assert_eq!(choose(&ws, None, &pings(&[])).unwrap().as_str(), "b");
        assert_eq!(choose(&ws, None, &pings(&[("a", 10), ("b", 10)])).unwrap().as_str(), "b");
    }

    #[test]
    fn full_workers_are_skipped() {
        let ws = [w("fast", "eu", 0), w("slow", "eu", 2)];
        assert!(ping_targets(&ws, None).unwrap().iter().all(|t| t.id.as_str() == "slow"));
        assert_eq!(choose(&ws, None, &pings(&[("fast", 1), ("slow", 90)])).unwrap().as_str(), "slow");
    }

    #[test]
    fn no_candidate_is_no_free_worker() {
        let ws = [w("a", "eu", 0), w("b", "us", 4)];
        assert_eq!(ping_targets(&ws, Some("eu")), Err(SelectError::NoFreeWorker { zone: Some("eu".into()) }));
        assert_eq!(
            choose(&ws, Some("asia"), &pings(&[])),
            Err(SelectError::NoFreeWorker { zone: Some("asia".into()) })
        );
        assert!(ping_targets(&[], None).unwrap_err().to_string().contains("busy"));
    }
}
