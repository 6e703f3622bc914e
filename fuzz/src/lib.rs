//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! # The chunk format (targets `smtp` and `tls`)
//!
//! An input is a sequence of chunks, each `[ctrl: u8][len: u16 LE][len bytes]` (a short last
//! chunk takes what is left). `scripts/fuzz.sh seeds` writes the TCP payloads of real
//! captures in this format, one chunk per segment, so the seeds are real dialogues and the
//! fuzzer mutates them. Bits of `ctrl`:
//!
//! - bit 0: direction, 0 = client to server, 1 = server to client;
//! - bit 1: a gap in that direction before this chunk (the caller's buffer is dropped and
//!   the parser's `gap` is called, as the session does when reassembly skips a hole);
//! - bit 2: hold: append the bytes to the direction's buffer without calling `feed` (so a
//!   later chunk delivers several segments at once);
//! - bits 4-7: capture time advance before this chunk, in milliseconds.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

/// Whether `FUZZ_STRICT=1` is set. A target may steer around a known finding that is not
/// fixed yet unless this is set, so that a campaign goes on looking for new ones
/// (fuzz/CAMPAIGN.md; no finding is open at the moment).
pub fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var("FUZZ_STRICT").is_ok_and(|v| v == "1"))
}

/// One chunk of the chunk format.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The control byte.
    pub ctrl: u8,
    /// The bytes.
    pub data: &'a [u8],
}

impl Chunk<'_> {
    /// 0 = client to server, 1 = server to client.
    pub fn dir_index(&self) -> usize {
        usize::from(self.ctrl & 1)
    }
    /// A gap before this chunk.
    pub fn gap(&self) -> bool {
        self.ctrl & 2 != 0
    }
    /// Buffer without feeding.
    pub fn hold(&self) -> bool {
        self.ctrl & 4 != 0
    }
    /// Time advance in µs.
    pub fn advance_us(&self) -> i64 {
        i64::from(self.ctrl >> 4) * 1000
    }
}

/// Splits `data` into chunks (see the module documentation).
pub fn chunks(mut data: &[u8]) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    while let Some((&ctrl, rest)) = data.split_first() {
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => (rest.len(), &rest[rest.len()..]),
        };
        let len = len.min(rest.len());
        out.push(Chunk {
            ctrl,
            data: &rest[..len],
        });
        data = &rest[len..];
    }
    out
}

/// Encodes chunks (for tests and seed tools).
pub fn encode_chunks(chunks: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ctrl, data) in chunks {
        out.push(*ctrl);
        let len = u16::try_from(data.len()).expect("chunk too long");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// Link types the decoder knows, in the order the `pipeline` target's selector byte uses.
pub const LINK_TYPES: [i32; 10] = [1, 0, 108, 113, 276, 101, 12, 14, 228, 229];

/// A cursor over the fuzz input that never fails (missing bytes read as 0).
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// Starts at the beginning of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }
    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// One byte.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
    /// Little-endian u16.
    pub fn u16(&mut self) -> u16 {
        let b = self.take(2);
        let mut a = [0u8; 2];
        a[..b.len()].copy_from_slice(b);
        u16::from_le_bytes(a)
    }
    /// Little-endian u32.
    pub fn u32(&mut self) -> u32 {
        let b = self.take(4);
        let mut a = [0u8; 4];
        a[..b.len()].copy_from_slice(b);
        u32::from_le_bytes(a)
    }
    /// Little-endian u64.
    pub fn u64(&mut self) -> u64 {
        let b = self.take(8);
        let mut a = [0u8; 8];
        a[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(a)
    }
    /// The rest.
    pub fn rest(&mut self) -> &'a [u8] {
        let r = self.data;
        self.data = &[];
        r
    }
}

/// Capture-time steps (µs) a frame's control byte picks from: same instant, 1 µs, 1 ms,
/// 100 ms, 1 s (a tick), 11 s (past the tombstone linger), 301 s (past the idle timeout),
/// one day.
pub const TIME_STEPS: [u64; 8] = [
    0,
    1,
    1_000,
    100_000,
    1_000_000,
    11_000_000,
    301_000_000,
    86_400_000_000,
];

/// Builds a classic pcap file from the `pipeline` target's structured input (mode 1):
/// `[magic selector][link selector][link u16 if the selector is out of range]` then frames
/// `[ctrl][len u16 LE][bytes]`; ctrl bits 0-2 pick a [`TIME_STEPS`] advance, bit 3 marks the
/// frame truncated (original length larger than the captured bytes).
pub fn build_pcap(c: &mut Cursor<'_>) -> Vec<u8> {
    let magic_sel = c.u8();
    let link_sel = usize::from(c.u8());
    let link = match LINK_TYPES.get(link_sel) {
        Some(l) => *l as u32,
        None => u32::from(c.u16()),
    };
    let nanos = magic_sel & 1 != 0;
    let big_endian = magic_sel & 2 != 0;
    let mut out = Vec::new();
    let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    let put32 = |out: &mut Vec<u8>, v: u32| {
        if big_endian {
            out.extend_from_slice(&v.to_be_bytes())
        } else {
            out.extend_from_slice(&v.to_le_bytes())
        }
    };
    let put16 = |out: &mut Vec<u8>, v: u16| {
        if big_endian {
            out.extend_from_slice(&v.to_be_bytes())
        } else {
            out.extend_from_slice(&v.to_le_bytes())
        }
    };
    put32(&mut out, magic);
    put16(&mut out, 2);
    put16(&mut out, 4);
    put32(&mut out, 0);
    put32(&mut out, 0);
    put32(&mut out, 262_144);
    put32(&mut out, link);
    let unit: u64 = if nanos { 1000 } else { 1 };
    let mut ts_us: u64 = 1_700_000_000_000_000;
    while !c.is_empty() {
        let ctrl = c.u8();
        let len = usize::from(c.u16());
        let data = c.take(len);
        ts_us += TIME_STEPS[usize::from(ctrl & 7)];
        let sec = (ts_us / 1_000_000) as u32;
        let frac = ((ts_us % 1_000_000) * unit) as u32;
        let orig = if ctrl & 8 != 0 {
            data.len() as u32 + 40
        } else {
            data.len() as u32
        };
        put32(&mut out, sec);
        put32(&mut out, frac);
        put32(&mut out, data.len() as u32);
        put32(&mut out, orig);
        out.extend_from_slice(data);
    }
    out
}

/// A valid little-endian microsecond pcap global header for `link` (mode 2 of `pipeline`:
/// the records that follow are raw fuzz bytes).
pub fn pcap_global_header(link: u32, snaplen: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&snaplen.to_le_bytes());
    out.extend_from_slice(&link.to_le_bytes());
    out
}

fn pcapng_block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let pad = (4 - body.len() % 4) % 4;
    let total = (12 + body.len() + pad) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&[0u8; 4][..pad]);
    out.extend_from_slice(&total.to_le_bytes());
}

/// Builds a pcapng file (mode 3 of `pipeline`): a section header, one interface whose link
/// type, `if_tsresol` and `if_tsoffset` come from the input, then enhanced packet blocks.
/// Layout: `[flags][link selector][link u16 if out of range][tsresol][tsoffset i64 LE]`
/// then frames `[ctrl][len u16 LE][bytes]` (+ `[u64 timestamp]` when ctrl bit 7 is set,
/// else ctrl bits 0-2 pick a [`TIME_STEPS`] advance in interface units). The options and
/// absolute timestamps reach any capture time libpcap can hand out (finding T1 of
/// fuzz/CAMPAIGN.md).
pub fn build_pcapng(c: &mut Cursor<'_>) -> Vec<u8> {
    let flags = c.u8();
    let link_sel = usize::from(c.u8());
    let link = match LINK_TYPES.get(link_sel) {
        Some(l) => *l as u16,
        None => c.u16(),
    };
    let tsresol = c.u8();
    let tsoffset = c.u64();
    let mut out = Vec::new();
    // Section header: byte-order magic, version 1.0, section length unknown.
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    pcapng_block(&mut out, 0x0a0d_0d0a, &shb);
    // Interface description.
    let mut idb = Vec::new();
    idb.extend_from_slice(&link.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&262_144u32.to_le_bytes());
    if flags & 1 != 0 {
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[tsresol, 0, 0, 0]);
    }
    if flags & 2 != 0 {
        idb.extend_from_slice(&14u16.to_le_bytes());
        idb.extend_from_slice(&8u16.to_le_bytes());
        idb.extend_from_slice(&tsoffset.to_le_bytes());
    }
    if flags & 3 != 0 {
        idb.extend_from_slice(&[0u8; 4]); // opt_endofopt
    }
    pcapng_block(&mut out, 1, &idb);
    let mut ts: u64 = 1_700_000_000_000_000;
    while !c.is_empty() {
        let ctrl = c.u8();
        let len = usize::from(c.u16());
        let data = c.take(len);
        if ctrl & 0x80 != 0 {
            ts = c.u64();
        } else {
            ts = ts.wrapping_add(TIME_STEPS[usize::from(ctrl & 7)]);
        }
        let orig = if ctrl & 8 != 0 {
            data.len() as u32 + 40
        } else {
            data.len() as u32
        };
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&orig.to_le_bytes());
        epb.extend_from_slice(data);
        epb.extend_from_slice(&[0u8; 4][..(4 - data.len() % 4) % 4]);
        pcapng_block(&mut out, 6, &epb);
    }
    out
}

/// Writes `bytes` to `path` (replacing it).
pub fn write_file(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).expect("creating the capture file");
    f.write_all(bytes).expect("writing the capture file");
}
