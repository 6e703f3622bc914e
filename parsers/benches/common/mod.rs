//! Bench inputs cut from real captures at start-up, and an allocation counter.
//!
//! Nothing here is timed: captures are read with libpcap (the `pcap` crate), frames decoded
//! with `etherparse`, and each TCP connection's two directions laid out as contiguous
//! streams with the segment boundaries of the capture kept, so a bench can feed a parser
//! exactly the pieces the sensor would have handed it.

use mailtls_parsers::Dir;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The system allocator, counting calls while [`count_allocs`] runs (a relaxed load
/// otherwise, so timings are not disturbed).
pub struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` twice, the second time counting: returns the allocations (and reallocations) of
/// that second run and the bytes they asked for (so one-time initialisations, such as lazily
/// built registries, are not counted).
pub fn count_allocs<R>(f: impl Fn() -> R) -> (R, u64, u64) {
    drop(f());
    ALLOCS.store(0, Ordering::Relaxed);
    ALLOC_BYTES.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let r = f();
    COUNTING.store(false, Ordering::SeqCst);
    (
        r,
        ALLOCS.load(Ordering::Relaxed),
        ALLOC_BYTES.load(Ordering::Relaxed),
    )
}

/// A path relative to the workspace root.
pub fn workspace_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// One TCP connection as captured, both directions reassembled in order.
#[derive(Debug, Default)]
pub struct Conn {
    /// Client-to-server bytes (index 0) and server-to-client bytes (index 1).
    pub streams: [Vec<u8>; 2],
    /// Capture order of the segments that added bytes: direction and the stream length
    /// after the segment.
    pub chunks: Vec<(Dir, usize)>,
    /// Next expected sequence number per direction.
    next: [Option<u32>; 2],
}

impl Conn {
    /// Feeds `bytes` of the connection to `feed` the way the sensor's session does: segment by
    /// segment in capture order, each call offered everything of that direction not yet
    /// consumed. `feed` returns how many bytes it consumed; it may stop the walk by returning
    /// `None`. Chunks of `only` (when given) are the only ones offered. `start` and `end`
    /// bound the bytes offered per direction.
    pub fn replay(
        &self,
        start: [usize; 2],
        end: [usize; 2],
        only: Option<Dir>,
        mut feed: impl FnMut(Dir, &[u8]) -> Option<usize>,
    ) -> [usize; 2] {
        let mut used = start;
        for &(dir, upto) in &self.chunks {
            if only.is_some_and(|o| o != dir) {
                continue;
            }
            let i = dir.index();
            let upto = upto.min(end[i]);
            if upto <= used[i] {
                continue;
            }
            match feed(dir, &self.streams[i][used[i]..upto]) {
                Some(n) => used[i] += n,
                None => break,
            }
        }
        used
    }
}

/// Reads a capture and reassembles its TCP connections (in-order segments only; a capture
/// with holes keeps the bytes before the first hole of a direction).
pub fn load_conns(path: &Path) -> Result<Vec<Conn>, String> {
    let mut cap = pcap::Capture::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let link = cap.get_datalink().0;
    let mut conns: Vec<Conn> = Vec::new();
    let mut index: HashMap<[(IpAddr, u16); 2], usize> = HashMap::new();
    // Client endpoint of each connection, to tell directions apart.
    let mut clients: Vec<(IpAddr, u16)> = Vec::new();
    while let Ok(p) = cap.next_packet() {
        let sliced = match link {
            1 => etherparse::LaxSlicedPacket::from_ethernet(p.data).ok(),
            12 | 14 | 101 | 228 | 229 => etherparse::LaxSlicedPacket::from_ip(p.data).ok(),
            // BSD loopback: a 4-byte address family, then IP.
            0 | 108 => p
                .data
                .get(4..)
                .and_then(|ip| etherparse::LaxSlicedPacket::from_ip(ip).ok()),
            _ => return Err(format!("{}: link type {link} not handled", path.display())),
        };
        let Some(sliced) = sliced else { continue };
        let (src, dst) = match &sliced.net {
            Some(etherparse::LaxNetSlice::Ipv4(v4)) => (
                IpAddr::V4(v4.header().source_addr()),
                IpAddr::V4(v4.header().destination_addr()),
            ),
            Some(etherparse::LaxNetSlice::Ipv6(v6)) => (
                IpAddr::V6(v6.header().source_addr()),
                IpAddr::V6(v6.header().destination_addr()),
            ),
            _ => continue,
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = &sliced.transport else {
            continue;
        };
        let a = (src, tcp.source_port());
        let b = (dst, tcp.destination_port());
        let key = if a <= b { [a, b] } else { [b, a] };
        let idx = *index.entry(key).or_insert_with(|| {
            // The SYN's sender is the client; without one, the lower port is the server.
            let client = if tcp.syn() && !tcp.ack() {
                a
            } else if tcp.syn() || a.1 < b.1 {
                b
            } else {
                a
            };
            clients.push(client);
            conns.push(Conn::default());
            conns.len() - 1
        });
        let dir = if a == clients[idx] {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        let conn = &mut conns[idx];
        let i = dir.index();
        let seq = tcp.sequence_number();
        if tcp.syn() {
            conn.next[i] = Some(seq.wrapping_add(1));
            continue;
        }
        let payload = tcp.payload();
        if payload.is_empty() {
            continue;
        }
        let next = *conn.next[i].get_or_insert(seq);
        let ahead = seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            continue; // a hole: later bytes are not used
        }
        let overlap = ahead.unsigned_abs() as usize;
        if overlap >= payload.len() {
            continue; // retransmission
        }
        let fresh = &payload[overlap..];
        conn.streams[i].extend_from_slice(fresh);
        conn.next[i] = Some(next.wrapping_add(fresh.len() as u32));
        let len = conn.streams[i].len();
        conn.chunks.push((dir, len));
    }
    Ok(conns)
}

/// Reads the captures under `dir` (`.pcap`/`.pcapng`, sorted by name) that load.
pub fn load_dir(dir: &Path) -> Result<Vec<Conn>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in files {
        match load_conns(&f) {
            Ok(c) => all.extend(c),
            Err(e) => eprintln!("bench input skipped: {e}"),
        }
    }
    Ok(all)
}

/// TLS record content types.
pub const CHANGE_CIPHER_SPEC: u8 = 20;
/// Handshake record.
pub const HANDSHAKE: u8 = 22;

/// Splits `bytes` into TLS records: (content type, whole record) pairs, stopping at the first
/// thing that is not a record header or at a record cut short.
pub fn records(bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 5 {
        let ty = rest[0];
        if !(20..=24).contains(&ty) || rest[1] != 3 {
            break;
        }
        let len = 5 + usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let Some(rec) = rest.get(..len) else { break };
        out.push((ty, rec));
        rest = &rest[len..];
    }
    out
}

/// The plaintext handshake messages (4-byte header included) at the start of one direction's
/// TLS bytes: bodies of the handshake records before the first other record, split apart.
pub fn handshake_messages(tls: &[u8]) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    for (ty, rec) in records(tls) {
        if ty != HANDSHAKE {
            break;
        }
        buf.extend_from_slice(&rec[5..]);
    }
    let mut out = Vec::new();
    let mut rest = buf.as_slice();
    while rest.len() >= 4 {
        let len =
            4 + ((usize::from(rest[1]) << 16) | (usize::from(rest[2]) << 8) | usize::from(rest[3]));
        let Some(msg) = rest.get(..len) else { break };
        out.push(msg.to_vec());
        rest = &rest[len..];
    }
    out
}

/// Length of the handshake part of one direction's TLS bytes: every record up to and
/// including the one after the first ChangeCipherSpec (the encrypted Finished, or in TLS 1.3
/// the first encrypted handshake record), or up to the first application-data record when
/// there is no ChangeCipherSpec.
pub fn handshake_len(tls: &[u8]) -> usize {
    let mut len = 0;
    let mut after_ccs = false;
    for (ty, rec) in records(tls) {
        if ty == 23 && !after_ccs {
            break;
        }
        len += rec.len();
        if after_ccs {
            break;
        }
        if ty == CHANGE_CIPHER_SPEC {
            after_ccs = true;
        }
    }
    len
}
