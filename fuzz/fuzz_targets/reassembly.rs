//! `sensor::reassembly::Stream` under arbitrary sequences of segments, acknowledgments,
//! consumption, hole skipping and buffer stops, with small limits. The harness drives the
//! stream as `session::Session` does: whenever a hole is condemned, the parser reads what is
//! ready and the hole is skipped before the next packet.
//!
//! Invariants checked after every operation:
//! - `buffered()` never exceeds `max_buffer`, and `ready()` is part of it;
//! - the bytes handed to the parser never exceed the payload bytes inserted;
//! - `insert` returns exactly the growth of `ready()`; a stream that stopped buffering holds
//!   nothing;
//! - until the first hole is skipped (or the stream may have been re-based by a SYN), every
//!   byte the parser reads is a byte some segment carried at that sequence number (the
//!   harness keeps its own map, wrap-around included), segments that start before stream
//!   offset 0 included (finding R1 of fuzz/CAMPAIGN.md);
//! - a twin stream fed through `insert_or_lend` (the session's zero-copy path, each lent
//!   segment kept whole by `keep_unconsumed`) holds the same ready bytes, counters and
//!   condemned hole as the stream fed through `insert`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mailtls_sensor::reassembly::{Stream, StreamConfig};
use std::collections::HashMap;

#[derive(Debug, Arbitrary)]
enum Op {
    /// A segment at `base + rel` (relative to the first sequence number of the input).
    Insert {
        rel: i16,
        len: u8,
        fill: u8,
    },
    /// A segment at an absolute sequence number.
    InsertAbs {
        seq: u32,
        len: u8,
        fill: u8,
    },
    /// The peer acknowledged `base + rel`.
    Ack {
        rel: i16,
    },
    /// The parser consumed `n` ready bytes.
    Consume {
        n: u16,
    },
    /// A hole skipped although not condemned (as `finish` does at the end of a flow).
    SkipHole,
    CondemnHole,
    /// A (re)transmitted SYN with ISN `base + rel - 1`.
    Syn {
        rel: i16,
    },
    StopBuffering,
}

#[derive(Debug, Arbitrary)]
struct Input {
    base: u32,
    syn_first: bool,
    max_buffer: u16,
    max_segments: u8,
    ops: Vec<Op>,
}

/// The byte a segment carries at sequence number `seq`: a function of the segment's fill and
/// of `seq`, so that overlapping copies agree unless their fills differ.
fn byte_at(fill: u8, seq: u32) -> u8 {
    fill ^ (seq as u8) ^ ((seq >> 8) as u8).rotate_left(3)
}

struct Harness {
    s: Stream,
    /// The same operations, segments through `insert_or_lend`.
    twin: Stream,
    cfg: StreamConfig,
    /// Sequence number of stream offset 0 as the harness sees it.
    base_seq: Option<u32>,
    /// Bytes carried at each sequence number.
    seen: HashMap<u32, Vec<u8>>,
    inserted: u64,
    delivered: u64,
    /// Whether byte-exact checks still hold.
    exact: bool,
}

impl Harness {
    fn consume(&mut self, n: usize) {
        let n = n.min(self.s.ready().len());
        if self.exact {
            if let Some(b) = self.base_seq {
                let start = b.wrapping_add(self.delivered as u32);
                for (k, byte) in self.s.ready()[..n].iter().enumerate() {
                    let q = start.wrapping_add(k as u32);
                    let ok = self.seen.get(&q).is_some_and(|v| v.contains(byte));
                    assert!(
                        ok,
                        "ready byte {k} (seq {q}, offset {}) is {byte:#04x}, never sent there: {:?}",
                        self.delivered + k as u64,
                        self.seen.get(&q)
                    );
                }
            }
        }
        self.s.consume(n);
        self.twin.consume(n);
        self.delivered += n as u64;
    }

    fn skip_hole(&mut self) {
        self.s.skip_hole(&self.cfg);
        self.twin.skip_hole(&self.cfg);
        // The stream jumped: the harness no longer knows the offset of what is ready.
        self.exact = false;
    }

    fn insert(&mut self, seq: u32, len: u8, fill: u8) {
        let payload: Vec<u8> = (0..u32::from(len))
            .map(|k| byte_at(fill, seq.wrapping_add(k)))
            .collect();
        if !payload.is_empty() && self.base_seq.is_none() {
            self.base_seq = Some(seq);
        }
        for (k, byte) in payload.iter().enumerate() {
            self.seen
                .entry(seq.wrapping_add(k as u32))
                .or_default()
                .push(*byte);
        }
        let before = self.s.ready().len();
        let counting = self.s.is_counting_only();
        let added = self.s.insert(seq, &payload, &self.cfg);
        if let Some(lent) = self.twin.insert_or_lend(seq, &payload, &self.cfg) {
            self.twin.keep_unconsumed(lent);
        }
        assert_eq!(
            added,
            self.s.ready().len() - before,
            "insert's return value"
        );
        if counting {
            assert_eq!(added, 0);
        }
        self.inserted += payload.len() as u64;
    }

    fn check(&self) {
        let s = &self.s;
        assert_eq!(
            self.twin.ready(),
            s.ready(),
            "lending changed the ready bytes"
        );
        assert_eq!(self.twin.buffered(), s.buffered());
        assert_eq!(self.twin.stats, s.stats);
        assert_eq!(self.twin.hole_condemned(), s.hole_condemned());
        assert!(
            s.buffered() <= self.cfg.max_buffer,
            "{} > {}",
            s.buffered(),
            self.cfg.max_buffer
        );
        assert!(s.ready().len() <= s.buffered());
        assert!(
            self.delivered + s.ready().len() as u64 <= self.inserted,
            "more out than in"
        );
        if s.is_counting_only() {
            assert_eq!(s.buffered(), 0);
            assert!(!s.hole_condemned());
        }
    }
}

fuzz_target!(|input: Input| {
    let cfg = StreamConfig {
        max_buffer: usize::from(input.max_buffer % 4096) + 1,
        max_segments: usize::from(input.max_segments % 16) + 1,
    };
    let mut h = Harness {
        s: Stream::default(),
        twin: Stream::default(),
        cfg,
        base_seq: None,
        seen: HashMap::new(),
        inserted: 0,
        delivered: 0,
        exact: true,
    };
    if input.syn_first {
        h.s.on_syn(input.base.wrapping_sub(1));
        h.twin.on_syn(input.base.wrapping_sub(1));
        h.base_seq = Some(input.base);
    }
    let rel = |r: i16| input.base.wrapping_add(r as i32 as u32);
    for op in input.ops.iter().take(512) {
        match *op {
            Op::Insert { rel: r, len, fill } => h.insert(rel(r), len, fill),
            Op::InsertAbs { seq, len, fill } => h.insert(seq, len, fill),
            Op::Ack { rel: r } => {
                h.s.on_peer_ack(rel(r));
                h.twin.on_peer_ack(rel(r));
            }
            Op::Consume { n } => h.consume(usize::from(n)),
            Op::SkipHole => h.skip_hole(),
            Op::CondemnHole => {
                h.s.condemn_hole();
                h.twin.condemn_hole();
            }
            Op::Syn { rel: r } => {
                let was = h.s.started();
                h.s.on_syn(rel(r).wrapping_sub(1));
                h.twin.on_syn(rel(r).wrapping_sub(1));
                if !was || h.delivered == 0 {
                    // The stream may have been re-based.
                    h.exact = false;
                }
            }
            Op::StopBuffering => {
                h.s.stop_buffering();
                h.twin.stop_buffering();
                assert_eq!(h.s.buffered(), 0);
                assert!(h.s.ready().is_empty());
            }
        }
        h.check();
        if h.s.hole_condemned() {
            // What the session does: the parser reads what is ready, then the hole goes.
            let n = h.s.ready().len();
            h.consume(n);
            h.skip_hole();
            h.check();
        }
    }
    // The end of a flow: condemn and skip until nothing waits.
    h.s.condemn_hole();
    h.twin.condemn_hole();
    for _ in 0..cfg.max_segments + 2 {
        if !h.s.hole_condemned() {
            break;
        }
        let n = h.s.ready().len();
        h.consume(n);
        h.skip_hole();
        h.check();
    }
});
