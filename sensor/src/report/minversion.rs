//! `--min-version V`: which sessions and peers would fail if a minimum TLS version V were
//! enforced.
//!
//! The rule, per session:
//! * only sessions with a ClientHello are judged (a session that never tried TLS does not
//!   change under a TLS minimum; they are counted apart);
//! * the client's best offered version is the highest of `tls_client_version` (the
//!   ClientHello's legacy_version) and `tls_client_versions` (supported_versions);
//! * the session fails under V when that best offered version is below V (the client could
//!   not do V), or when a version below V was negotiated (the server could not, or would not,
//!   do V). Sessions whose handshake already failed are listed too when their client offered
//!   nothing >= V: they could not succeed under V either.
//!
//! Sessions are split by `direction`. The peer of a session is the remote end as seen from
//! "our" side: the server for outbound sessions, the client for inbound, internal and
//! external ones.

use super::best_offered;
use super::peer_name::PeerName;
use mailtls_parsers::registry::{version_name, version_rank};
use mailtls_storage::{Direction, SessionRecord, Timestamp};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

/// One session that fails under the minimum.
#[derive(Debug, Clone)]
pub struct FailingSession {
    /// Session start.
    pub ts: Timestamp,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Server address and port.
    pub server: (IpAddr, u16),
    /// Name of the peer (banner host, SNI or EHLO name), may be empty.
    pub name: String,
    /// Best version the client offered (code).
    pub offered: u16,
    /// Negotiated version (code), 0 when none.
    pub negotiated: u16,
    /// The session's outcome.
    pub outcome: &'static str,
}

/// A peer with sessions failing under the minimum.
#[derive(Debug, Clone, Default)]
pub struct PeerRow {
    /// Name of its latest named failing session (order-independent, see [`PeerName`]).
    pub name: PeerName,
    /// Server ports of its failing sessions.
    pub ports: std::collections::BTreeSet<u16>,
    /// Best version offered by the client in its failing sessions (code).
    pub offered: u16,
    /// Best version negotiated in its failing sessions (code), 0 when none.
    pub negotiated: u16,
    /// Failing sessions.
    pub sessions: u64,
    /// Start of its latest failing session.
    pub last_seen: Timestamp,
}

/// Aggregation for one minimum version.
#[derive(Debug)]
pub struct MinVersion {
    /// The minimum, e.g. "TLSv1.2".
    pub min_name: String,
    min_rank: u8,
    /// Failing sessions by direction, in input order.
    pub sessions: BTreeMap<Direction, Vec<FailingSession>>,
    /// Peers by direction and address.
    pub peers: BTreeMap<Direction, BTreeMap<IpAddr, PeerRow>>,
    /// Sessions with a ClientHello (judged).
    pub judged: u64,
    /// Sessions without a ClientHello (not judged).
    pub not_judged: u64,
}

/// Version code for a name such as "TLSv1.2".
pub fn version_code(name: &str) -> Option<u16> {
    match name {
        "SSLv3" => Some(0x0300),
        "TLSv1.0" => Some(0x0301),
        "TLSv1.1" => Some(0x0302),
        "TLSv1.2" => Some(0x0303),
        "TLSv1.3" => Some(0x0304),
        _ => None,
    }
}

fn vname(code: u16) -> &'static str {
    if code == 0 {
        return "-";
    }
    match version_name(code) {
        "" => "unknown",
        n => n,
    }
}

impl MinVersion {
    /// An empty aggregation for the minimum `name` ("TLSv1.0" .. "TLSv1.3").
    pub fn new(name: &str) -> Result<Self, String> {
        let code = version_code(name).ok_or_else(|| format!("unknown TLS version {name:?}"))?;
        Ok(MinVersion {
            min_name: name.to_string(),
            min_rank: version_rank(code),
            sessions: BTreeMap::new(),
            peers: BTreeMap::new(),
            judged: 0,
            not_judged: 0,
        })
    }

    /// Whether a session fails under the minimum (see the module doc).
    pub fn fails(&self, r: &SessionRecord) -> bool {
        self.fails_offering(best_offered(r), r)
    }

    /// [`MinVersion::fails`] with the client's best offered version already known.
    fn fails_offering(&self, offered: u16, r: &SessionRecord) -> bool {
        offered != 0
            && (version_rank(offered) < self.min_rank
                || (r.tls_version_code != 0 && version_rank(r.tls_version_code) < self.min_rank))
    }

    /// Folds one record in.
    pub fn add(&mut self, r: &SessionRecord) {
        if r.tls_client_version == 0 {
            self.not_judged += 1;
            return;
        }
        self.judged += 1;
        let offered = best_offered(r);
        if !self.fails_offering(offered, r) {
            return;
        }
        let outbound = r.direction == Direction::Outbound;
        let (peer, name) = if outbound {
            let name = [&r.smtp_banner_host, &r.tls_sni, &r.cert_subject_cn]
                .into_iter()
                .find(|s| !s.is_empty())
                .cloned()
                .unwrap_or_default();
            (r.server_ip, name)
        } else {
            (r.client_ip, r.ehlo_host.clone())
        };
        let p = self
            .peers
            .entry(r.direction)
            .or_default()
            .entry(peer)
            .or_default();
        p.name.offer(&name, r.ts_start);
        p.ports.insert(r.server_port);
        if super::better_version(offered, p.offered) {
            p.offered = offered;
        }
        if super::better_version(r.tls_version_code, p.negotiated) {
            p.negotiated = r.tls_version_code;
        }
        p.sessions += 1;
        p.last_seen = p.last_seen.max(r.ts_start);
        self.sessions
            .entry(r.direction)
            .or_default()
            .push(FailingSession {
                ts: r.ts_start,
                client: (r.client_ip, r.client_port),
                server: (r.server_ip, r.server_port),
                name,
                offered,
                negotiated: r.tls_version_code,
                outcome: r.outcome.as_str(),
            });
    }

    /// Total failing sessions.
    pub fn failing(&self) -> usize {
        self.sessions.values().map(Vec::len).sum()
    }

    /// Peers of a direction, most failing sessions first.
    pub fn sorted_peers(&self, d: Direction) -> Vec<(IpAddr, &PeerRow)> {
        let mut v: Vec<_> = self
            .peers
            .get(&d)
            .map(|m| m.iter().map(|(ip, p)| (*ip, p)).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.1.sessions.cmp(&a.1.sessions).then(a.0.cmp(&b.0)));
        v
    }

    /// The exact lists as text. Line formats (stable, for scripts):
    /// `  peer IP name NAME ports P,.. offered V negotiated V sessions N last TS`
    /// `  session CIP:CPORT -> SIP:SPORT name NAME offered V negotiated V outcome O at TS`
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "\nSessions that would fail under a minimum of {} \
             (client offered nothing >= {0}, or a lower version was negotiated)",
            self.min_name
        );
        let _ = writeln!(
            o,
            "  {} of {} sessions with a ClientHello fail; {} sessions without a ClientHello are not judged",
            self.failing(),
            self.judged,
            self.not_judged
        );
        for d in [
            Direction::Outbound,
            Direction::Inbound,
            Direction::Internal,
            Direction::External,
        ] {
            // In time order, whatever order the records came in (worker interleaving,
            // ClickHouse's answer).
            let mut sessions: Vec<&FailingSession> = self
                .sessions
                .get(&d)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            sessions.sort_by_key(|s| (s.ts, s.client, s.server));
            let peers = self.sorted_peers(d);
            let role = if d == Direction::Outbound {
                "server"
            } else {
                "client"
            };
            let _ = writeln!(
                o,
                "\n[{}] {} failing sessions, {} peers (peer = {role})",
                d.as_str(),
                sessions.len(),
                peers.len()
            );
            for (ip, p) in &peers {
                let ports: Vec<String> = p.ports.iter().map(u16::to_string).collect();
                let _ = writeln!(
                    o,
                    "  peer {ip} name {} ports {} offered {} negotiated {} sessions {} last {}",
                    p.name.or_dash(),
                    ports.join(","),
                    vname(p.offered),
                    vname(p.negotiated),
                    p.sessions,
                    p.last_seen.to_rfc3339()
                );
            }
            for s in sessions {
                let _ = writeln!(
                    o,
                    "  session {}:{} -> {}:{} name {} offered {} negotiated {} outcome {} at {}",
                    s.client.0,
                    s.client.1,
                    s.server.0,
                    s.server.1,
                    if s.name.is_empty() { "-" } else { &s.name },
                    vname(s.offered),
                    vname(s.negotiated),
                    s.outcome,
                    s.ts.to_rfc3339()
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(client_ver: u16, versions: Vec<u16>, negotiated: u16) -> SessionRecord {
        SessionRecord {
            tls_client_version: client_ver,
            tls_client_versions: versions,
            tls_version_code: negotiated,
            direction: Direction::Outbound,
            ..SessionRecord::default()
        }
    }

    #[test]
    fn rule() {
        let m = MinVersion::new("TLSv1.2").unwrap();
        assert!(m.fails(&rec(0x0302, vec![], 0)), "client offered only 1.1");
        assert!(m.fails(&rec(0x0303, vec![], 0x0301)), "negotiated 1.0");
        assert!(!m.fails(&rec(0x0303, vec![0x0304], 0x0304)));
        assert!(
            !m.fails(&rec(0x0303, vec![], 0)),
            "1.2 offered, failed for other reasons"
        );
        assert!(!m.fails(&rec(0, vec![], 0)), "no ClientHello");
        let m13 = MinVersion::new("TLSv1.3").unwrap();
        assert!(m13.fails(&rec(0x0303, vec![], 0x0303)));
        assert!(!m13.fails(&rec(0x0303, vec![0x0304, 0x0303], 0x0304)));
        assert!(MinVersion::new("TLSv9").is_err());
    }

    #[test]
    fn peers_split_by_direction() {
        let mut m = MinVersion::new("TLSv1.2").unwrap();
        let mut r = rec(0x0301, vec![], 0x0301);
        r.smtp_banner_host = "mx.example".into();
        m.add(&r);
        m.add(&r);
        r.direction = Direction::Inbound;
        m.add(&r);
        m.add(&rec(0, vec![], 0));
        assert_eq!(m.failing(), 3);
        assert_eq!(m.not_judged, 1);
        assert_eq!(m.sorted_peers(Direction::Outbound)[0].1.sessions, 2);
        let text = m.render();
        assert!(text.contains("peer 0.0.0.0 name mx.example ports 0 offered TLSv1.0"));
        assert!(text.contains("[inbound] 1 failing sessions, 1 peers"));
    }
}
