//! How many browser WebSockets the coordinator holds: per remote address and in all. Sans-IO
//! counting; [`crate::server`] asks [`ConnectionLimits::admit`] before upgrading `/ws` and
//! releases the slot when the session ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

/// The limits (the `[limits]` section of the configuration); 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// WebSockets from one address (one IPv4 address, or one IPv6 /64: a host holds a whole
    /// /64).
    pub per_ip: u32,
    /// WebSockets in all.
    pub total: u32,
}

impl Default for Caps {
    fn default() -> Self {
        // A household or office behind one NAT opens a handful; 64 leaves room for a LAN party.
        // 20 000 idle sessions are ~260 MiB and 20 000 file descriptors (see
        // docs/performance.md).
        Self { per_ip: 64, total: 20_000 }
    }
}

/// Who the per-address count is kept for: an IPv4 address or an IPv6 /64 (IPv4-mapped IPv6
/// addresses count as their IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source of a connection from `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Self(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
                }
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `limits.max_connections_per_ip` reached for this source.
    PerIp { source: Source, max: u32 },
    /// `limits.max_connections` reached.
    Total { max: u32 },
}

impl Refusal {
    /// The HTTP status: 429 for one source's excess, 503 when the coordinator is full.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::PerIp { .. } => 429,
            Refusal::Total { .. } => 503,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::PerIp { source, max } => write!(
                f,
                "too many connections from {source}: at most {max} WebSockets per address \
                 (the operator raises it with limits.max_connections_per_ip, \
                 --max-connections-per-ip or RETROFARM_MAX_CONNECTIONS_PER_IP)"
            ),
            Refusal::Total { max } => write!(
                f,
                "the coordinator is full: at most {max} WebSockets in all \
                 (the operator raises it with limits.max_connections, \
                 --max-connections or RETROFARM_MAX_CONNECTIONS)"
            ),
        }
    }
}

/// The counts.
#[derive(Debug, Default)]
pub struct ConnectionLimits {
    caps: Caps,
    per_source: HashMap<Source, u32>,
    total: u32,
}

impl ConnectionLimits {
    /// No connections yet.
    pub fn new(caps: Caps) -> Self {
        Self { caps, per_source: HashMap::new(), total: 0 }
    }

    /// Counts a connection from `source`, or says which limit it would cross.
    pub fn admit(&mut self, source: Source) -> Result<(), Refusal> {
        if self.caps.total > 0 && self.total >= self.caps.total {
            return Err(Refusal::Total { max: self.caps.total });
        }
        let n = self.per_source.entry(source).or_insert(0);
        if self.caps.per_ip > 0 && *n >= self.caps.per_ip {
            return Err(Refusal::PerIp { source, max: self.caps.per_ip });
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection [`admit`](Self::admit)ted from `source` ended.
    pub fn release(&mut self, source: Source) {
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
            self.total -= 1;
        }
    }

    /// Connections held.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Connections held from `source`.
    pub fn from(&self, source: Source) -> u32 {
        self.per_source.get(&source).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(s: &str) -> Source {
        Source::of(s.parse().unwrap())
    }

    #[test]
    fn per_address_and_total_limits_refuse_and_free_up() {
        let mut l = ConnectionLimits::new(Caps { per_ip: 2, total: 3 });
        let (a, b) = (src("192.0.2.1"), src("192.0.2.2"));
        l.admit(a).unwrap();
        l.admit(a).unwrap();
        let e = l.admit(a).unwrap_err();
        assert_eq!(e, Refusal::PerIp { source: a, max: 2 });
        assert_eq!(e.status(), 429);
        assert!(e.to_string().contains("192.0.2.1") && e.to_string().contains("limits.max_connections_per_ip"));
        l.admit(b).unwrap();
        let e = l.admit(src("192.0.2.3")).unwrap_err();
        assert_eq!((e.status(), l.total()), (503, 3));
        assert!(e.to_string().contains("limits.max_connections,"), "{e}");
        l.release(a);
        l.admit(src("192.0.2.3")).unwrap();
        assert_eq!((l.from(a), l.total()), (1, 3));
        for s in [a, b, src("192.0.2.3")] {
            l.release(s);
        }
        assert_eq!(l.total(), 0);
        assert!(l.per_source.is_empty(), "no entry is kept for addresses that left");
        // Releasing what was never admitted changes nothing.
        l.release(a);
        assert_eq!(l.total(), 0);
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let mut l = ConnectionLimits::new(Caps { per_ip: 0, total: 0 });
        for _ in 0..1000 {
            l.admit(src("192.0.2.1")).unwrap();
        }
        assert_eq!(l.total(), 1000);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(src("2001:db8:1:2:aaaa::1"), src("2001:db8:1:2:bbbb::2"));
        assert_ne!(src("2001:db8:1:2::1"), src("2001:db8:1:3::1"));
        assert_eq!(src("::ffff:192.0.2.1"), src("192.0.2.1"));
        assert_eq!(src("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        let mut l = ConnectionLimits::new(Caps { per_ip: 1, total: 0 });
        l.admit(src("2001:db8:1:2::1")).unwrap();
        assert!(l.admit(src("2001:db8:1:2::99")).is_err());
    }
}
