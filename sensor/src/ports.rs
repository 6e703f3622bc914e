//! The set of watched TCP ports, checked by the reader before any flow work.

use crate::flow::Endpoint;

/// Watched server ports as a 65536-bit set, or "every port".
#[derive(Debug, Clone)]
pub struct PortSet {
    bits: Box<[u64; 1024]>,
    all: bool,
}

impl PortSet {
    /// The mail ports: 25 (SMTP), 587 (submission), 465 (implicit TLS submission).
    pub fn mail_default() -> Self {
        PortSet::from_ports(&[25, 587, 465])
    }

    /// Exactly these ports.
    pub fn from_ports(ports: &[u16]) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for p in ports {
            bits[usize::from(*p) >> 6] |= 1 << (p & 63);
        }
        PortSet { bits, all: false }
    }

    /// Every TCP port.
    pub fn all() -> Self {
        PortSet {
            bits: Box::new([u64::MAX; 1024]),
            all: true,
        }
    }

    /// Whether every port is watched.
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Whether `port` is watched.
    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.bits[usize::from(port) >> 6] & (1 << (port & 63)) != 0
    }

    /// Whether a packet between these ports belongs to a watched session.
    #[inline]
    pub fn matches(&self, sport: u16, dport: u16) -> bool {
        self.contains(sport) || self.contains(dport)
    }

    /// Guesses (client, server) for a connection seen without its SYN: the endpoint on a
    /// watched port is the server; when both or neither are, the lower port (the well-known
    /// one, for ports below 1024) is.
    pub fn guess_client_server(&self, a: Endpoint, b: Endpoint) -> (Endpoint, Endpoint) {
        let (wa, wb) = if self.all {
            (false, false)
        } else {
            (self.contains(a.port), self.contains(b.port))
        };
        match (wa, wb) {
            (true, false) => (b, a),
            (false, true) => (a, b),
            _ if a.port <= b.port => (b, a),
            _ => (a, b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership() {
        let p = PortSet::mail_default();
        assert!(p.contains(25) && p.contains(465) && p.contains(587));
        assert!(!p.contains(443) && !p.contains(0) && !p.contains(65535));
        assert!(PortSet::all().contains(65535));
    }

    #[test]
    fn guess_server_side() {
        let p = PortSet::mail_default();
        let c = Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: 50000,
        };
        let s = Endpoint {
            ip: "10.0.0.2".parse().unwrap(),
            port: 25,
        };
        assert_eq!(p.guess_client_server(s, c), (c, s));
        assert_eq!(PortSet::all().guess_client_server(s, c), (c, s));
    }
}
