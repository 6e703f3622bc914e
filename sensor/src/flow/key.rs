//! The flow key: both endpoints of a TCP connection in a canonical order, so that both
//! directions of a connection map to the same key and the same hash.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// One end of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// IP address.
    pub ip: IpAddr,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// `self <= other` in the derived order (address family, address, port), with IPv4
    /// compared as integers: the derived comparison of two `IpAddr` enums was the single
    /// most expensive function of the reader on all-mail traffic.
    #[inline]
    fn le_fast(&self, other: &Endpoint) -> bool {
        match (self.ip, other.ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (u64::from(a.to_bits()) << 16 | u64::from(self.port))
                    <= (u64::from(b.to_bits()) << 16 | u64::from(other.port))
            }
            _ => self <= other,
        }
    }
}

/// A TCP connection named by its two endpoints, lower endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    /// The lower endpoint (by address, then port).
    pub lo: Endpoint,
    /// The higher endpoint.
    pub hi: Endpoint,
}

impl Hash for FlowKey {
    /// Two or four integer writes (address and port packed together), never a byte buffer:
    /// the derived impl made nine calls into the flow table's hasher, one per field and enum
    /// tag, and a packed byte buffer made the hasher's 8-byte reads wait on the byte-wise
    /// stores that filled it (a store-forwarding stall perf put at a tenth of `on_packet`).
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        match (self.lo.ip, self.hi.ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                state.write_u64(u64::from(a.to_bits()) << 16 | u64::from(self.lo.port));
                state.write_u64(u64::from(b.to_bits()) << 16 | u64::from(self.hi.port));
            }
            (a, b) => {
                let bits = |ip: IpAddr| match ip {
                    IpAddr::V4(v) => v.to_ipv6_mapped().to_bits(),
                    IpAddr::V6(v) => v.to_bits(),
                };
                state.write_u128(bits(a));
                state.write_u128(bits(b));
                state.write_u32(u32::from(self.lo.port) << 16 | u32::from(self.hi.port));
            }
        }
    }
}

impl FlowKey {
    /// Builds the canonical key of a packet from `src` to `dst`; the flag says whether the
    /// packet travels from `lo` to `hi`.
    #[inline]
    pub fn new(src: Endpoint, dst: Endpoint) -> (FlowKey, bool) {
        if src.le_fast(&dst) {
            (FlowKey { lo: src, hi: dst }, true)
        } else {
            (FlowKey { lo: dst, hi: src }, false)
        }
    }

    /// A hash that is the same for both directions and the same in every run (so the
    /// worker a flow lands on, and thus the output, never depends on a random seed).
    pub fn symmetric_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |v: u64| {
            h ^= v;
            h = h.wrapping_mul(0x0000_0100_0000_01b3).rotate_left(23);
        };
        for ep in [&self.lo, &self.hi] {
            match ep.ip {
                IpAddr::V4(a) => mix(u64::from(u32::from(a))),
                IpAddr::V6(a) => {
                    let v = u128::from(a);
                    mix(v as u64);
                    mix((v >> 64) as u64);
                }
            }
            mix(u64::from(ep.port));
        }
        // Final avalanche (splitmix64) so low bits are usable as a shard index.
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_share_key_and_hash() {
        let a = Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: 40000,
        };
        let b = Endpoint {
            ip: "10.0.0.2".parse().unwrap(),
            port: 25,
        };
        let (k1, f1) = FlowKey::new(a, b);
        let (k2, f2) = FlowKey::new(b, a);
        assert_eq!(k1, k2);
        assert_ne!(f1, f2);
        assert_eq!(k1.symmetric_hash(), k2.symmetric_hash());
    }

    #[test]
    fn fast_order_is_the_derived_order() {
        let eps: Vec<Endpoint> = ["10.0.0.1", "10.0.0.2", "9.255.255.255", "::1", "fe80::1"]
            .iter()
            .flat_map(|a| {
                [0u16, 25, 40000, 65535].map(|port| Endpoint {
                    ip: a.parse().unwrap(),
                    port,
                })
            })
            .collect();
        for a in &eps {
            for b in &eps {
                assert_eq!(a.le_fast(b), a <= b, "{a:?} {b:?}");
            }
        }
    }
}
