//! Regression tests for what the fuzz targets found (fuzz/CAMPAIGN.md). Each test names its
//! finding; the fuzz inputs themselves are in fuzz/regressions/TARGET/. A test marked
//! `#[ignore]` reproduces a finding that is not fixed yet: remove the mark with the fix.
//! Run them all with `cargo test -p mailtls-sensor --test fuzz_regressions -- --include-ignored`
//! (in a debug build, where arithmetic overflow panics).

use mailtls_sensor::flow::{Endpoint, FlowPacket, FlowTable, FlowTableConfig};
use mailtls_sensor::pipeline::{run_offline, Delivery, PipelineConfig, SinkMsg};
use mailtls_sensor::ports::PortSet;
use mailtls_sensor::reassembly::{Stream, StreamConfig};
use mailtls_sensor::session::RecordContext;
use mailtls_storage::SessionRecord;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

fn table_config(workers: usize) -> FlowTableConfig {
    FlowTableConfig {
        max_flows: (1_000_000 / workers).max(16),
        idle_timeout_us: 300_000_000,
        linger_us: 10_000_000,
        early_emit_us: None,
        stream: StreamConfig::default(),
        ports: Arc::new(PortSet::mail_default()),
        context: Arc::new(RecordContext::default()),
    }
}

fn pipeline_config(workers: usize) -> PipelineConfig {
    let table = table_config(workers);
    PipelineConfig {
        workers,
        ports: table.ports.clone(),
        table,
        batch_packets: 256,
        tick_us: 1_000_000,
        stats_interval: Duration::from_secs(3600),
        delivery: Delivery::Records,
    }
}

/// Runs the pipeline over `capture` (written to a temporary file); returns the records.
fn run_capture(name: &str, capture: &[u8], workers: usize) -> Vec<SessionRecord> {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "mailtls-fuzz-regression-{}-{name}.pcapng",
        std::process::id()
    ));
    std::fs::write(&path, capture).unwrap();
    let mut records = Vec::new();
    let sink = |m: SinkMsg| {
        if let SinkMsg::Records(rs) = m {
            records.extend(rs);
        }
    };
    let stop = AtomicBool::new(false);
    let (stats, _, warnings) = run_offline(
        std::slice::from_ref(&path),
        &pipeline_config(workers),
        sink,
        None,
        &stop,
    );
    let _ = std::fs::remove_file(&path);
    assert!(
        warnings.iter().all(|w| !w.contains("panicked")),
        "{warnings:?}"
    );
    assert_eq!(stats.workers.records, stats.workers.flows);
    assert_eq!(records.len() as u64, stats.workers.records);
    records
}

/// A pcapng block: type, total length, body (padded to 4), total length.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let pad = (4 - body.len() % 4) % 4;
    let total = (12 + body.len() + pad) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&[0u8; 4][..pad]);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

/// A pcapng of raw-IP frames whose interface counts time in whole seconds (`if_tsresol` 0),
/// each frame with the given 64-bit timestamp.
fn pcapng_seconds(frames: &[(u64, &[u8])]) -> Vec<u8> {
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut idb = Vec::new();
    idb.extend_from_slice(&101u16.to_le_bytes()); // LINKTYPE_RAW
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&262_144u32.to_le_bytes());
    idb.extend_from_slice(&[9, 0, 1, 0, 0, 0, 0, 0]); // if_tsresol = 10^0
    idb.extend_from_slice(&[0, 0, 0, 0]);
    let mut out = block(0x0a0d_0d0a, &shb);
    out.extend(block(1, &idb));
    for (ts, data) in frames {
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*ts as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        out.extend(block(6, &epb));
    }
    out
}

/// IPv4 TCP SYN 192.0.2.1:40000 -> 192.0.2.25:25.
const SYN: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0x40, 0x06, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x01,
    0xc0, 0x00, 0x02, 0x19, 0x9c, 0x40, 0x00, 0x19, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x50, 0x02, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
];

/// T1 (targets `pipeline` and `flow`): pcapng timestamps are 64-bit with a resolution (and
/// offset) of the file's choosing, so libpcap hands out `tv_sec` anywhere in i64; the capture
/// layer saturates `tv_sec * 10^6` to i64::MAX/MIN, and then `Reader::maybe_tick`
/// (`ts + tick_us`) overflows: a panic in debug builds, wrapped time in release builds.
/// fuzz/regressions/pipeline/t1-*.bin are the fuzz inputs.
#[test]

fn t1_pcapng_timestamp_at_the_end_of_time() {
    // 2^62 s after the epoch: tv_sec * 10^6 saturates to i64::MAX.
    let cap = pcapng_seconds(&[(1 << 62, &SYN)]);
    for workers in [1, 2] {
        let recs = run_capture("t1a", &cap, workers);
        assert_eq!(recs.len(), 1);
    }
}

/// T1, second form: two packets of one flow, one at +2^62 s and one at -2^63 s (tv_sec is
/// signed): every difference of capture times overflows.
#[test]

fn t1_pcapng_timestamps_at_both_ends() {
    let cap = pcapng_seconds(&[(1 << 62, &SYN), (1 << 63, &SYN)]);
    for workers in [1, 2] {
        let recs = run_capture("t1b", &cap, workers);
        assert!(!recs.is_empty());
    }
}

/// T1 in the flow table itself (target `flow`): `p.ts - sess.last_ts` overflows.
#[test]

fn t1_flow_table_capture_times_at_both_ends() {
    let mut table = FlowTable::new(table_config(1));
    let client = Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        port: 40_000,
    };
    let server = Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25)),
        port: 25,
    };
    let mut records = Vec::new();
    for (ts, src, dst) in [(i64::MAX, client, server), (i64::MIN, server, client)] {
        let p = FlowPacket {
            ts,
            src,
            dst,
            seq: 1,
            ack: 2,
            flags: 0x10,
            vlan: 0,
            payload: b"220 mx ESMTP\r\n",
        };
        table.on_packet(&p, &mut |r| records.push(r));
    }
    table.expire(i64::MIN, &mut |r| records.push(r));
    table.drain(&mut |r| records.push(r));
    assert_eq!(records.len() as u64, table.stats.flows);
}

/// Bytes for sequence numbers `seq..seq + len`, byte k being `(seq + k) mod 251`, so that a
/// byte in the wrong place shows.
fn seg(seq: u32, len: u32) -> Vec<u8> {
    (0..len)
        .map(|k| (seq.wrapping_add(k) % 251) as u8)
        .collect()
}

/// R1 (target `reassembly`): a segment that starts before stream offset 0 (a stream picked
/// up midstream, whose first captured segment was not its earliest one) is clamped to offset
/// 0 instead of being trimmed, so bytes from before offset 0 are handed to the parser as if
/// they came later. fuzz/regressions/reassembly/r1-*.bin is the fuzz input (SYN variant).
#[test]

fn r1_segment_straddling_offset_zero_midstream() {
    let cfg = StreamConfig::default();
    let mut s = Stream::default();
    // Midstream: the first segment seen fixes offset 0 at sequence number 1000.
    s.insert(1000, &seg(1000, 3), &cfg);
    assert_eq!(s.ready(), &seg(1000, 3)[..]);
    // A segment captured later that started earlier: 990..1010.
    s.insert(990, &seg(990, 20), &cfg);
    assert_eq!(
        s.ready(),
        &seg(1000, 10)[..],
        "offsets 0..10 must hold sequence numbers 1000..1010"
    );
}

/// R1, SYN variant (the fuzz input): offset 0 is ISN + 1, and a segment covers ISN - 244..ISN + 11.
#[test]

fn r1_segment_straddling_offset_zero_after_syn() {
    let cfg = StreamConfig::default();
    let mut s = Stream::default();
    let base: u32 = 3_755_933_699;
    s.on_syn(base.wrapping_sub(1));
    let start = base.wrapping_sub(245);
    s.insert(start, &seg(start, 255), &cfg);
    assert_eq!(s.ready(), &seg(base, 10)[..]);
}

/// R2 (target `reassembly`, found against the working tree of 2026-11-22 22:58, gone with
/// the "first copy wins over a later in-order copy" change to `Stream::insert`): an in-order
/// segment that overflowed the buffer was truncated, and out-of-order segments drained right
/// after it were appended behind the truncated bytes, handing the parser a splice of two
/// distant parts of the stream. fuzz/regressions/reassembly/r2-*.bin is the fuzz input.
#[test]
fn r2_overflow_never_splices_distant_bytes() {
    let cfg = StreamConfig {
        max_buffer: 256,
        max_segments: 1,
    };
    let base: u32 = 6_094_851;
    let mut s = Stream::default();
    s.on_syn(base - 1);
    s.insert(base + 96, &seg(base + 96, 255), &cfg);
    s.insert(base, &seg(base, 255), &cfg);
    let ready = s.ready().to_vec();
    assert!(s.buffered() <= cfg.max_buffer);
    assert_eq!(
        ready,
        seg(base, ready.len() as u32),
        "ready bytes must be stream offsets 0.. without a hidden hole"
    );
}
