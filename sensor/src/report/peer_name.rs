//! The name a report shows for a peer that was seen under several names.
//!
//! A client may send a different EHLO name on each connection, a server may answer with a
//! different banner host behind one address. The report shows one, and it must not depend on
//! the order the records arrive in: workers interleave their output, and ClickHouse answers
//! in no fixed order. [`PeerName`] keeps the name of the peer's latest session that had one;
//! of two sessions that started in the same microsecond, the name that sorts first.

use mailtls_storage::Timestamp;

/// The name of a peer's latest named session (see the module doc).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeerName {
    /// The chosen name, empty while no session had one.
    name: String,
    /// Start of the session the name came from.
    seen: Timestamp,
}

impl PeerName {
    /// Folds in the name of one session that started at `seen`; an empty name changes nothing.
    pub fn offer(&mut self, name: &str, seen: Timestamp) {
        if name.is_empty() {
            return;
        }
        let newer = self.name.is_empty()
            || seen > self.seen
            || (seen == self.seen && name < self.name.as_str());
        if newer {
            self.name.clear();
            self.name.push_str(name);
            self.seen = seen;
        }
    }

    /// Folds in the choice of another fold (over further sessions of the same peer): the
    /// result is the choice over both sets of sessions.
    pub fn absorb(&mut self, other: &PeerName) {
        self.offer(&other.name, other.seen);
    }

    /// The chosen name, empty when no session had one.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The chosen name, `-` when no session had one (the report's placeholder).
    pub fn or_dash(&self) -> &str {
        if self.name.is_empty() {
            "-"
        } else {
            &self.name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(names: &[(&str, i64)]) -> String {
        let mut p = PeerName::default();
        for (n, t) in names {
            p.offer(n, Timestamp(*t));
        }
        p.as_str().to_string()
    }

    #[test]
    fn the_latest_named_session_wins_in_any_order() {
        let seen = [
            ("a.test", 5),
            ("", 9),
            ("c.test", 7),
            ("b.test", 7),
            ("d.test", 1),
        ];
        let mut order: Vec<usize> = (0..seen.len()).collect();
        // Every rotation and its reverse: the choice never depends on the order.
        for _ in 0..seen.len() {
            order.rotate_left(1);
            for o in [order.clone(), order.iter().rev().copied().collect()] {
                let names: Vec<_> = o.iter().map(|&i| seen[i]).collect();
                assert_eq!(fold(&names), "b.test", "order {o:?}");
            }
        }
    }

    #[test]
    fn no_name_is_a_dash() {
        let mut p = PeerName::default();
        p.offer("", Timestamp(3));
        assert_eq!(p.or_dash(), "-");
        p.offer("mx.test", Timestamp(1));
        assert_eq!(p.or_dash(), "mx.test");
    }
}
