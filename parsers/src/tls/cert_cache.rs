//! A small cache of leaf-certificate summaries, keyed by the certificate's DER bytes.
//!
//! A mail server presents the same certificate to every client, so a sensor in front of an
//! MX summarises the same DER over and over: x509-parser and SHA-256 cost ~3 µs a
//! certificate, a lookup here (a hash of the DER, then a byte comparison against the stored
//! copy) a tenth of that. A hit returns exactly what summarising would return, because the
//! stored DER is compared byte for byte, never trusted on its hash alone.
//!
//! Bounded: at most `capacity` certificates are held (each DER at most
//! [`MAX_CACHED_DER`] bytes; larger ones are summarised every time), replaced in FIFO order.
//! A capacity of 0 disables it without allocating.

use super::CertSummary;
use std::hash::{BuildHasher, Hasher};

/// Largest DER kept in the cache (real leaves are 0.5-3 KB; a 10,000-SAN test certificate
/// is not worth keeping).
pub const MAX_CACHED_DER: usize = 8 * 1024;

/// What summarising a leaf certificate gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summarised {
    /// [`CertSummary::from_der`], or the [`CertSummary::unparsed`] fallback when
    /// x509-parser rejected the certificate.
    pub summary: CertSummary,
    /// Whether x509-parser accepted it (false: `summary` is the fallback).
    pub parsed: bool,
}

/// One cached certificate: the DER it came from and what summarising it gave.
#[derive(Debug)]
struct Slot {
    hash: u64,
    der: Box<[u8]>,
    summary: Summarised,
}

/// Leaf-certificate summaries by DER, at most `capacity` of them (FIFO replacement).
#[derive(Debug)]
pub struct CertCache {
    slots: Vec<Slot>,
    capacity: usize,
    /// Next slot to replace once full.
    next: usize,
    hasher: foldhash::fast::FixedState,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that summarised the certificate.
    pub misses: u64,
}

impl CertCache {
    /// A cache of at most `capacity` certificates (0: no caching).
    pub fn new(capacity: usize) -> Self {
        CertCache {
            slots: Vec::new(),
            capacity,
            next: 0,
            // A fixed seed is enough: a collision only costs a byte comparison.
            hasher: foldhash::fast::FixedState::default(),
            hits: 0,
            misses: 0,
        }
    }

    /// The summary of `der`, from the cache when the same DER was summarised before.
    pub fn summarise(&mut self, der: &[u8]) -> Summarised {
        if self.capacity == 0 || der.len() > MAX_CACHED_DER {
            return summarise(der);
        }
        let hash = {
            let mut h = self.hasher.build_hasher();
            h.write(der);
            h.finish()
        };
        if let Some(slot) = self.slots.iter().find(|s| s.hash == hash && *s.der == *der) {
            self.hits += 1;
            return slot.summary.clone();
        }
        self.misses += 1;
        let summary = summarise(der);
        let slot = Slot {
            hash,
            der: der.into(),
            summary: summary.clone(),
        };
        if self.slots.len() < self.capacity {
            self.slots.push(slot);
        } else {
            self.slots[self.next] = slot;
            self.next = (self.next + 1) % self.capacity;
        }
        summary
    }

    /// Certificates held now.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no certificate is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

impl Default for CertCache {
    /// No caching.
    fn default() -> Self {
        CertCache::new(0)
    }
}

fn summarise(der: &[u8]) -> Summarised {
    match CertSummary::from_der(der) {
        Ok(summary) => Summarised {
            summary,
            parsed: true,
        },
        Err(_) => Summarised {
            summary: CertSummary::unparsed(der),
            parsed: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaf certificate of a real Postfix server flight: the first DER SEQUENCE with
    /// a two-byte length ("30 82 hi lo").
    fn postfix_leaf() -> &'static [u8] {
        const FLIGHT: &[u8] = include_bytes!("testdata/postfix-tls12-server-flight.bin");
        let start = FLIGHT
            .windows(2)
            .position(|w| w == [0x30, 0x82])
            .expect("a DER certificate");
        let len = 4 + ((usize::from(FLIGHT[start + 2]) << 8) | usize::from(FLIGHT[start + 3]));
        &FLIGHT[start..start + len]
    }

    #[test]
    fn a_hit_is_what_summarising_gives() {
        let mut c = CertCache::new(4);
        let first = c.summarise(postfix_leaf());
        let second = c.summarise(postfix_leaf());
        assert_eq!(first, second);
        assert!(first.parsed);
        assert_eq!(
            first.summary,
            CertSummary::from_der(postfix_leaf()).unwrap()
        );
        assert_eq!((c.hits, c.misses, c.len()), (1, 1, 1));
    }

    #[test]
    fn rejected_certificates_are_cached_with_their_fallback() {
        let mut c = CertCache::new(4);
        let junk = b"\x30\x82\x00\x04junk";
        let want = Summarised {
            summary: CertSummary::unparsed(junk),
            parsed: false,
        };
        assert_eq!(c.summarise(junk), want);
        assert_eq!(c.summarise(junk), want);
        assert_eq!(c.hits, 1);
    }

    #[test]
    fn bounded_and_never_confused_by_similar_bytes() {
        let mut c = CertCache::new(3);
        // Certificates differing in one byte (the last one of the signature).
        let variants: Vec<Vec<u8>> = (0..8u8)
            .map(|i| {
                let mut d = postfix_leaf().to_vec();
                let last = d.len() - 1;
                d[last] ^= i;
                d
            })
            .collect();
        for round in 0..3 {
            for v in &variants {
                assert_eq!(c.summarise(v), summarise(v), "round {round}");
                assert!(c.len() <= 3);
            }
        }
        let mut off = CertCache::new(0);
        assert_eq!(off.summarise(postfix_leaf()), summarise(postfix_leaf()));
        assert!(off.is_empty());
    }
}
