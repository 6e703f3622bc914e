//! TCP reassembly of one direction of a connection.
//!
//! Bytes are addressed by a 64-bit stream offset (0 = first byte after the SYN, or the first
//! byte seen when the capture started midstream), so sequence-number wrap-around is handled
//! once, in `Stream::offset_of`. In-order bytes go to `ready`, where the parser reads and
//! consumes them; segments beyond a hole wait in `out_of_order`. Overlaps keep the first copy
//! and count conflicting bytes. A hole is skipped (and reported as a gap) only when the caller
//! decides it will not be filled: the peer acknowledged past it, the buffers hit their cap, or
//! the flow ended.
//!
//! Bounded: `ready` plus `out_of_order` never hold more than [`StreamConfig::max_buffer`]
//! bytes; [`Stream::stop_buffering`] drops both and from then on only counts.

use mailtls_parsers::count::bump;
use std::collections::BTreeMap;

/// Limits of one direction's buffers.
#[derive(Debug, Clone, Copy)]
pub struct StreamConfig {
    /// Most bytes held (ready plus out of order).
    pub max_buffer: usize,
    /// Most out-of-order segments held.
    pub max_segments: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_buffer: 256 * 1024,
            max_segments: 256,
        }
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes skipped because the capture missed them.
    pub gap_bytes: u64,
    /// Holes skipped.
    pub gaps: u32,
    /// Segments that carried only bytes already seen.
    pub retransmissions: u32,
    /// Overlapping segments whose bytes differed from the first copy.
    pub conflicts: u32,
    /// Times the buffer cap forced a hole to be skipped or data to be dropped.
    pub overflows: u32,
}

/// Where [`Stream::accept`] put a segment's bytes.
enum Accepted<'p> {
    /// Stored out of order (and drained if that closed a hole), or dropped as old or empty.
    Stored,
    /// In order: to append to the ready buffer.
    Append(&'p [u8]),
    /// In order, buffers empty: taken in without a copy, for the parser to read in place.
    Lent(&'p [u8]),
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of stream offset 0 (set by the SYN or the first segment).
    base_seq: Option<u32>,
    /// Stream offset of the next byte expected in order.
    next: u64,
    /// In-order bytes not yet consumed by the parser.
    ready: Vec<u8>,
    /// Segments beyond a hole, by stream offset.
    out_of_order: BTreeMap<u64, Vec<u8>>,
    out_of_order_bytes: usize,
    /// Only counting, no buffering.
    counting_only: bool,
    /// A hole must be skipped before more data can be read.
    hole_condemned: bool,
    /// Counters.
    pub stats: StreamStats,
}

impl Stream {
    /// Sets offset 0 to follow a SYN with sequence number `isn`.
    ///
    /// A later SYN (or SYN-ACK) with another ISN re-bases the stream as long as no payload
    /// has been taken in yet: servers that answer a retransmitted SYN with a fresh ISN send
    /// their data relative to the last one.
    pub fn on_syn(&mut self, isn: u32) {
        let nothing_yet = self.next == 0 && self.out_of_order.is_empty();
        if self.base_seq.is_none() || nothing_yet {
            self.base_seq = Some(isn.wrapping_add(1));
        }
    }

    /// Whether offset 0 has been fixed.
    pub fn started(&self) -> bool {
        self.base_seq.is_some()
    }

    /// The stream offset of sequence number `seq`, relative to the next expected byte
    /// (so it is correct across wrap-around for any segment within ±2 GiB of it). Negative
    /// for bytes before offset 0 (sent before the SYN's sequence number).
    fn offset_of(&self, base: u32, seq: u32) -> i64 {
        let next_seq = base.wrapping_add(self.next as u32);
        let delta = i64::from(seq.wrapping_sub(next_seq) as i32);
        self.next as i64 + delta
    }

    /// Adds a segment. Returns the number of new bytes made ready for the parser.
    pub fn insert(&mut self, seq: u32, payload: &[u8], cfg: &StreamConfig) -> usize {
        let before = self.ready.len();
        if let Accepted::Append(bytes) = self.accept(seq, payload, cfg, false) {
            self.append_ready(bytes, cfg);
        }
        self.ready.len().saturating_sub(before)
    }

    /// Like [`Stream::insert`], except that a segment which continues the stream while
    /// nothing waits in the buffers is not copied: its new bytes are lent back, for the
    /// parser to read where they lie, and count as taken in. The caller then hands what the
    /// parser left of them to [`Stream::keep_unconsumed`] (the usual segment holds whole
    /// lines or records, so nothing is copied at all).
    pub fn insert_or_lend<'p>(
        &mut self,
        seq: u32,
        payload: &'p [u8],
        cfg: &StreamConfig,
    ) -> Option<&'p [u8]> {
        match self.accept(seq, payload, cfg, true) {
            Accepted::Lent(bytes) => Some(bytes),
            Accepted::Append(bytes) => {
                self.append_ready(bytes, cfg);
                None
            }
            Accepted::Stored => None,
        }
    }

    /// Buffers the bytes of a lent segment (see [`Stream::insert_or_lend`]) that the parser
    /// did not consume; nothing once the stream only counts.
    pub fn keep_unconsumed(&mut self, rest: &[u8]) {
        if !self.counting_only {
            // Fits: the buffers were empty when the bytes were lent, and a segment is lent
            // only when it fits the buffer cap.
            self.ready.extend_from_slice(rest);
        }
    }

    /// Places a segment: stored out of order (or dropped as old), or in order, to append
    /// or (with `lend`, when the buffers are empty) to lend.
    fn accept<'p>(
        &mut self,
        seq: u32,
        payload: &'p [u8],
        cfg: &StreamConfig,
        lend: bool,
    ) -> Accepted<'p> {
        if payload.is_empty() {
            return Accepted::Stored;
        }
        let base = *self.base_seq.get_or_insert(seq);
        if self.counting_only {
            return Accepted::Stored;
        }
        let start = self.offset_of(base, seq);
        // Bytes before offset 0 belong to nothing this stream delivers: cut them off.
        let (start, payload) = if start < 0 {
            let cut = usize::try_from(start.unsigned_abs()).unwrap_or(usize::MAX);
            match payload.get(cut..) {
                Some(rest) if !rest.is_empty() => (0u64, rest),
                _ => {
                    bump(&mut self.stats.retransmissions);
                    return Accepted::Stored;
                }
            }
        } else {
            (start as u64, payload)
        };
        let end = start + payload.len() as u64;
        if end <= self.next {
            bump(&mut self.stats.retransmissions);
            return Accepted::Stored;
        }
        if start <= self.next && self.out_of_order.is_empty() {
            // The common case: in order, nothing waiting that could overlap.
            let skip = (self.next - start) as usize;
            let bytes = &payload[skip..];
            if lend
                && self.ready.is_empty()
                && !self.hole_condemned
                && bytes.len() <= cfg.max_buffer
            {
                self.next += bytes.len() as u64;
                return Accepted::Lent(bytes);
            }
            return Accepted::Append(bytes);
        }
        // Out of order, or in order over waiting segments: the first copy of every byte wins,
        // so the new bytes go through the same trimming as any out-of-order segment.
        let (start, payload) = if start < self.next {
            let skip = (self.next - start) as usize;
            (self.next, &payload[skip..])
        } else {
            (start, payload)
        };
        self.store_out_of_order(start, payload, cfg);
        self.drain_out_of_order(cfg);
        Accepted::Stored
    }

    fn append_ready(&mut self, bytes: &[u8], cfg: &StreamConfig) {
        self.next += bytes.len() as u64;
        let room = cfg
            .max_buffer
            .saturating_sub(self.ready.len() + self.out_of_order_bytes);
        if bytes.len() > room {
            // The parser is not keeping up (e.g. blocked waiting for the other side): drop
            // what does not fit and let the parser resync as after a gap.
            bump(&mut self.stats.overflows);
            self.stats.gap_bytes += (bytes.len() - room) as u64;
            bump(&mut self.stats.gaps);
            self.ready.extend_from_slice(&bytes[..room]);
            self.hole_condemned = true;
            return;
        }
        self.ready.extend_from_slice(bytes);
    }

    fn store_out_of_order(&mut self, start: u64, payload: &[u8], cfg: &StreamConfig) {
        // First copy wins: trim against neighbours, counting bytes that differ.
        let mut start = start;
        let mut data = payload;
        if let Some((&s, prev)) = self.out_of_order.range(..=start).next_back() {
            let prev_end = s + prev.len() as u64;
            if prev_end > start {
                let overlap = (prev_end - start).min(data.len() as u64) as usize;
                let at = (start - s) as usize;
                if prev[at..at + overlap] != data[..overlap] {
                    bump(&mut self.stats.conflicts);
                }
                data = &data[overlap..];
                start += overlap as u64;
            }
        }
        while !data.is_empty() {
            let end = start + data.len() as u64;
            let Some((&s, next)) = self.out_of_order.range(start..end).next() else {
                self.put_segment(start, data, cfg);
                break;
            };
            let head = (s - start) as usize;
            let overlap = (data.len() - head).min(next.len());
            let differs = next[..overlap] != data[head..head + overlap];
            if differs {
                bump(&mut self.stats.conflicts);
            }
            if head > 0 {
                self.put_segment(start, &data[..head], cfg);
            }
            data = &data[head + overlap..];
            start = s + overlap as u64;
        }
    }

    fn put_segment(&mut self, start: u64, data: &[u8], cfg: &StreamConfig) {
        if data.is_empty() {
            return;
        }
        if self.out_of_order.len() >= cfg.max_segments
            || self.ready.len() + self.out_of_order_bytes + data.len() > cfg.max_buffer
        {
            bump(&mut self.stats.overflows);
            self.hole_condemned = true;
            return;
        }
        self.out_of_order_bytes += data.len();
        self.out_of_order.insert(start, data.to_vec());
    }

    fn drain_out_of_order(&mut self, cfg: &StreamConfig) {
        while let Some(entry) = self.out_of_order.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let seg = entry.remove();
            self.out_of_order_bytes -= seg.len();
            let end = start + seg.len() as u64;
            if end > self.next {
                let skip = (self.next - start) as usize;
                self.append_ready(&seg[skip..], cfg);
            }
        }
    }

    /// Notes the peer's acknowledgment: when it covers the start of a waiting out-of-order
    /// segment, the hole before it was received by the peer but missed by the capture.
    pub fn on_peer_ack(&mut self, ack: u32) {
        let (Some(base), Some((&first, _))) = (self.base_seq, self.out_of_order.first_key_value())
        else {
            return;
        };
        if self.offset_of(base, ack) > first as i64 {
            self.hole_condemned = true;
        }
    }

    /// Whether a hole must be skipped (see [`Stream::skip_hole`]).
    pub fn hole_condemned(&self) -> bool {
        self.hole_condemned
    }

    /// Marks the hole as never to be filled (flow ending).
    pub fn condemn_hole(&mut self) {
        if !self.out_of_order.is_empty() {
            self.hole_condemned = true;
        }
    }

    /// Skips the hole before the first out-of-order segment: drops unconsumed ready bytes
    /// (a partial line or record that can no longer complete), counts the missing bytes, and
    /// makes the waiting segments ready. Returns the bytes lost (hole plus dropped).
    pub fn skip_hole(&mut self, cfg: &StreamConfig) -> u64 {
        self.hole_condemned = false;
        let dropped = self.ready.len() as u64;
        self.ready.clear();
        let Some((&first, _)) = self.out_of_order.first_key_value() else {
            return dropped;
        };
        let missing = first.saturating_sub(self.next);
        self.stats.gap_bytes += missing;
        bump(&mut self.stats.gaps);
        self.next = first;
        self.drain_out_of_order(cfg);
        missing + dropped
    }

    /// Bytes ready for the parser.
    pub fn ready(&self) -> &[u8] {
        &self.ready
    }

    /// Marks `n` ready bytes as consumed by the parser.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.ready.len());
        self.ready.drain(..n);
    }

    /// Drops all buffers; from now on the stream only counts.
    pub fn stop_buffering(&mut self) {
        self.counting_only = true;
        self.ready = Vec::new();
        self.out_of_order = BTreeMap::new();
        self.out_of_order_bytes = 0;
        self.hole_condemned = false;
    }

    /// Whether the stream has stopped buffering.
    pub fn is_counting_only(&self) -> bool {
        self.counting_only
    }

    /// Bytes held in buffers.
    pub fn buffered(&self) -> usize {
        self.ready.len() + self.out_of_order_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> StreamConfig {
        StreamConfig::default()
    }

    #[test]
    fn in_order_out_of_order_and_retransmission() {
        let mut s = Stream::default();
        s.on_syn(999);
        s.insert(1000, b"hello ", &cfg());
        s.insert(1011, b"!", &cfg());
        assert_eq!(s.ready(), b"hello ");
        s.insert(1006, b"world", &cfg());
        assert_eq!(s.ready(), b"hello world!");
        s.insert(1000, b"hello", &cfg());
        assert_eq!(s.stats.retransmissions, 1);
        s.consume(6);
        assert_eq!(s.ready(), b"world!");
    }

    /// A parser that consumes whole lines (up to the last `\n`), as the SMTP parser does.
    fn whole_lines(bytes: &[u8]) -> usize {
        bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
    }

    #[test]
    fn lending_gives_the_parser_what_buffering_gives_it() {
        // In order, a line split over segments, a retransmission, a segment past a hole,
        // the hole's filler, a segment overlapping what was read, one before the ISN.
        let segments: [(u32, &[u8]); 8] = [
            (1000, b"220 mx ESMTP\r\n"),
            (1014, b"250-mx\r\n250-PIPE"),
            (1030, b"LINING\r\n"),
            (1014, b"250-mx\r\n"),
            (1050, b"250 SIZE\r\n"),
            (1038, b"250-8BITMIME"),
            (1045, b"MIME\r\n250 SIZE\r\n250 X"),
            (990, b"0123456789220 mx"),
        ];
        let (mut copied, mut lent) = (Stream::default(), Stream::default());
        copied.on_syn(999);
        lent.on_syn(999);
        let (mut read_copied, mut read_lent) = (Vec::new(), Vec::new());
        let mut lent_count = 0;
        for (seq, data) in segments {
            copied.insert(seq, data, &cfg());
            let n = whole_lines(copied.ready());
            read_copied.extend_from_slice(&copied.ready()[..n]);
            copied.consume(n);

            match lent.insert_or_lend(seq, data, &cfg()) {
                Some(bytes) => {
                    lent_count += 1;
                    assert!(lent.ready().is_empty());
                    let n = whole_lines(bytes);
                    read_lent.extend_from_slice(&bytes[..n]);
                    lent.keep_unconsumed(&bytes[n..]);
                }
                None => {
                    let n = whole_lines(lent.ready());
                    read_lent.extend_from_slice(&lent.ready()[..n]);
                    lent.consume(n);
                }
            }
            assert_eq!(lent.ready(), copied.ready(), "after seq {seq}");
            assert_eq!(lent.stats, copied.stats, "after seq {seq}");
            assert_eq!(lent.next, copied.next, "after seq {seq}");
        }
        assert_eq!(read_lent, read_copied);
        // Lent: the first two segments and the one overlapping what was already read (the
        // buffers were empty each time); not lent: the one behind a partial line, the
        // segment past the hole and its filler.
        assert_eq!(lent_count, 3);
    }

    #[test]
    fn a_lent_segment_is_not_kept_once_the_stream_only_counts() {
        let mut s = Stream::default();
        s.on_syn(999);
        let bytes = s
            .insert_or_lend(1000, b"220 mx", &cfg())
            .map(<[u8]>::to_vec);
        assert_eq!(bytes.as_deref(), Some(&b"220 mx"[..]));
        s.stop_buffering();
        s.keep_unconsumed(b"220 mx");
        assert!(s.ready().is_empty());
        // Once counting, nothing is lent either.
        assert_eq!(s.insert_or_lend(1006, b"\r\n", &cfg()), None);
    }

    #[test]
    fn a_segment_over_the_buffer_cap_is_not_lent() {
        let small = StreamConfig {
            max_buffer: 4,
            ..StreamConfig::default()
        };
        let mut s = Stream::default();
        s.on_syn(999);
        assert_eq!(s.insert_or_lend(1000, b"220 mx", &small), None);
        assert_eq!(s.ready(), b"220 ");
        assert_eq!(s.stats.overflows, 1);
    }

    #[test]
    fn counters_stop_at_their_maximum() {
        // A peer can resend one segment 2^32 times: the counter saturates.
        let mut s = Stream::default();
        s.on_syn(999);
        s.insert(1000, b"hello", &cfg());
        s.stats.retransmissions = u32::MAX;
        s.insert(1000, b"hello", &cfg());
        assert_eq!(s.stats.retransmissions, u32::MAX);
        assert_eq!(s.ready(), b"hello");
    }

    #[test]
    fn overlap_first_copy_wins_and_conflict_counted() {
        let mut s = Stream::default();
        s.on_syn(0);
        s.insert(5, b"AAAA", &cfg());
        s.insert(7, b"XXYY", &cfg());
        assert_eq!(s.stats.conflicts, 1);
        s.insert(1, b"0123", &cfg());
        assert_eq!(s.ready(), b"0123AAAAYY");
    }

    #[test]
    fn first_copy_wins_over_a_later_in_order_copy() {
        let mut s = Stream::default();
        s.on_syn(0);
        s.insert(7, b"WORLD", &cfg()); // early tail (offsets 6..11)
        s.insert(1, b"hello_world", &cfg()); // in order, conflicting over the tail
        assert_eq!(s.ready(), b"hello_WORLD");
        assert_eq!(s.stats.conflicts, 1);
    }

    #[test]
    fn wraparound() {
        let mut s = Stream::default();
        s.on_syn(u32::MAX - 2);
        s.insert(u32::MAX - 1, b"ab", &cfg());
        s.insert(0, b"cd", &cfg());
        assert_eq!(s.ready(), b"abcd");
    }

    #[test]
    fn gap_skipped_when_acked() {
        let mut s = Stream::default();
        s.on_syn(0);
        s.insert(1, b"abc", &cfg());
        s.insert(10, b"xyz", &cfg());
        assert!(!s.hole_condemned());
        s.on_peer_ack(13);
        assert!(s.hole_condemned());
        s.consume(2);
        let lost = s.skip_hole(&cfg());
        assert_eq!(lost, 6 + 1);
        assert_eq!(s.stats.gap_bytes, 6);
        assert_eq!(s.ready(), b"xyz");
    }

    #[test]
    fn buffer_cap_is_respected() {
        let small = StreamConfig {
            max_buffer: 8,
            max_segments: 2,
        };
        let mut s = Stream::default();
        s.on_syn(0);
        s.insert(100, b"0123456789", &small);
        assert!(s.buffered() <= 8);
        assert!(s.stats.overflows > 0);
        s.insert(1, b"0123456789abcdef", &small);
        assert!(s.buffered() <= 8);
    }

    #[test]
    fn midstream_starts_at_first_segment() {
        let mut s = Stream::default();
        s.insert(5000, b"250 ok\r\n", &cfg());
        assert_eq!(s.ready(), b"250 ok\r\n");
    }
}
