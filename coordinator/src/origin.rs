//! Which pages may open `/ws`: the check of a WebSocket upgrade's `Origin` header.
//!
//! Browsers let any page open a WebSocket to any host and say which page did in `Origin`; the
//! server must refuse the pages it does not serve, or another site could play (and spend a
//! farm's capacity) in its visitors' browsers. Pure functions; the driver is in `server`.

/// The decision for one upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refuse with HTTP 403; the origin that was refused.
    Refuse(String),
}

/// Decides whether a page of `origin` (the request's `Origin` header, absent for clients that
/// are not browsers) may open `/ws` on a server reached as `host` (the `Host` header).
///
/// Allowed: no `Origin` at all; the same origin (the Origin's host and port equal `Host`, a
/// default port written or not); an origin listed in `allowed` (compared without case and
/// default ports); anything when `allowed` holds `"*"`.
pub fn decide(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> Decision {
    let Some(origin) = origin else { return Decision::Allow };
    if allowed.iter().any(|a| a.trim() == "*") {
        return Decision::Allow;
    }
    let refuse = || Decision::Refuse(origin.to_string());
    let Some(o) = Origin::parse(origin) else { return refuse() };
    if allowed.iter().filter_map(|a| Origin::parse(a)).any(|a| a == o) {
        return Decision::Allow;
    }
    match host.and_then(|h| Authority::parse(h, o.scheme.default_port())) {
        Some(h) if h == o.authority => Decision::Allow,
        _ => refuse(),
    }
}

/// The body of the 403 answer: which origin, and what the operator can set.
pub fn refusal(origin: &str) -> String {
    format!(
        "origin {origin:?} may not open /ws on this coordinator: only its own pages may. If that page is yours, \
         add its origin to allowed_origins (configuration file), RETROFARM_ALLOWED_ORIGINS or --allowed-origins \
         (\"*\" allows every origin)\n"
    )
}

/// Checks an `allowed_origins` entry: `"*"` or `scheme://host[:port]`.
pub fn check_entry(entry: &str) -> Result<(), String> {
    if entry.trim() == "*" || Origin::parse(entry).is_some() {
        return Ok(());
    }
    let host = entry.trim().trim_end_matches('/');
    let host = host.rsplit("://").next().unwrap_or(host);
    Err(format!(
        "{entry:?} is not an origin: write the scheme, host and port (if not the default) of the page, \
         e.g. \"https://{host}\", or \"*\""
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// `host[:port]`, the host in lower case and the scheme's default port left out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    fn parse(s: &str, default_port: u16) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        // `[v6]:port`, `[v6]`, `name:port`, `name`.
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') && (h.starts_with('[') || !h.contains(':')) => (h, Some(p)),
            _ => (s.as_str(), None),
        };
        if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
            return None;
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().ok()?),
            None => None,
        };
        Some(Self { host: host.to_string(), port: port.filter(|p| *p != default_port) })
    }
}

/// A web origin, `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: Scheme,
    authority: Authority,
}

impl Origin {
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        };
        // Origins have no path; a configured entry may end in one `/`.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        Some(Self { scheme, authority: Authority::parse(rest, scheme.default_port())? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn clients_without_an_origin_are_allowed() {
        assert_eq!(decide(None, Some("farm.example.org"), &[]), Decision::Allow);
        assert_eq!(decide(None, None, &[]), Decision::Allow);
    }

    #[test]
    fn same_origin_means_the_host_and_port_of_the_request() {
        let d = |origin, host| decide(Some(origin), Some(host), &[]);
        assert_eq!(d("http://127.0.0.1:8000", "127.0.0.1:8000"), Decision::Allow);
        assert_eq!(d("https://Play.Example.org", "play.example.org"), Decision::Allow);
        assert_eq!(d("https://play.example.org", "play.example.org:443"), Decision::Allow);
        assert_eq!(d("http://play.example.org:80", "play.example.org"), Decision::Allow);
        assert_eq!(d("http://[::1]:8000", "[::1]:8000"), Decision::Allow);
        // Another port, host or scheme's default port is another origin.
        assert_eq!(d("http://127.0.0.1:8001", "127.0.0.1:8000"), Decision::Refuse("http://127.0.0.1:8001".into()));
        assert_eq!(d("https://evil.example", "play.example.org"), Decision::Refuse("https://evil.example".into()));
        assert_eq!(
            d("https://play.example.org", "play.example.org:80"),
            Decision::Refuse("https://play.example.org".into())
        );
        assert_eq!(d("http://[::1]:8001", "[::1]:8000"), Decision::Refuse("http://[::1]:8001".into()));
        // Pages without an origin of their own (file://, sandboxed frames) and junk.
        assert_eq!(d("null", "127.0.0.1:8000"), Decision::Refuse("null".into()));
        assert_eq!(d("file://", "127.0.0.1:8000"), Decision::Refuse("file://".into()));
        assert_eq!(
            d("http://a/b@127.0.0.1:8000", "127.0.0.1:8000"),
            Decision::Refuse("http://a/b@127.0.0.1:8000".into())
        );
        // No Host header: only the list can allow a browser.
        assert!(matches!(decide(Some("http://127.0.0.1:8000"), None, &[]), Decision::Refuse(_)));
    }

    #[test]
    fn listed_origins_and_the_wildcard() {
        let allowed = list(&["https://play.example.org/", "http://localhost:3000"]);
        let d = |origin| decide(Some(origin), Some("coordinator.internal:8000"), &allowed);
        assert_eq!(d("https://play.example.org"), Decision::Allow);
        assert_eq!(d("https://PLAY.example.org:443"), Decision::Allow);
        assert_eq!(d("http://localhost:3000"), Decision::Allow);
        assert_eq!(d("http://play.example.org"), Decision::Refuse("http://play.example.org".into()));
        assert_eq!(d("http://localhost:3001"), Decision::Refuse("http://localhost:3001".into()));
        assert_eq!(decide(Some("https://anything.example"), Some("x"), &list(&["*"])), Decision::Allow);
        assert_eq!(decide(Some("null"), Some("x"), &list(&["*"])), Decision::Allow);
    }

    #[test]
    fn entries_are_checked_and_the_refusal_names_the_key() {
        assert!(check_entry("*").is_ok());
        assert!(check_entry("https://play.example.org").is_ok());
        assert!(check_entry("http://127.0.0.1:8000").is_ok());
        let e = check_entry("play.example.org").unwrap_err();
        assert!(e.contains("\"https://play.example.org\""), "{e}");
        assert!(check_entry("ftp://x").is_err());
        assert!(check_entry("https://x:99999").is_err());
        let body = refusal("https://evil.example");
        assert!(body.contains("\"https://evil.example\"") && body.contains("allowed_origins"), "{body}");
    }
}
