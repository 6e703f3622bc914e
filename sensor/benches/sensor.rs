//! Micro-benchmarks of the sensor's per-packet hot paths on real frames (issue 6, item 2):
//! the reader's decode and flow hash, and the worker's flow table.
//!
//! Inputs: `samples/mailpeers-sample.pcap` (always in the repository; every frame is mail)
//! and `../shared/corpus/public/mercury/capture2.pcap` (a public capture of mixed bulk
//! traffic: HTTP, TLS, IRC, DNS, DHCP, ...), skipped with a message when absent. See
//! docs/MICROBENCH.md for what each bench measures and the figures on the reference machine.

mod common;

use common::{count_allocs, Frames};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mailtls_sensor::decode::decode;
use mailtls_sensor::flow::{Endpoint, FlowKey, FlowPacket, FlowTable, FlowTableConfig};
use mailtls_sensor::ports::PortSet;
use mailtls_sensor::reassembly::StreamConfig;
use mailtls_sensor::session::RecordContext;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOC: common::CountingAlloc = common::CountingAlloc;

/// Decode only; returns how many frames yielded a TCP packet. The whole result goes through
/// `black_box`, so the compiler cannot skip building the fields nobody reads here.
fn decode_all(frames: &Frames) -> u64 {
    let mut tcp = 0;
    for (_, f) in frames.iter() {
        if black_box(decode(frames.link, black_box(f))).packet.is_ok() {
            tcp += 1;
        }
    }
    tcp
}

/// Decode, then the symmetric flow key and hash of every TCP packet.
fn decode_hash_all(frames: &Frames) -> u64 {
    let mut acc = 0u64;
    for (_, f) in frames.iter() {
        if let Ok(t) = decode(frames.link, black_box(f)).packet {
            let (key, _) = FlowKey::new(
                Endpoint {
                    ip: t.src,
                    port: t.sport,
                },
                Endpoint {
                    ip: t.dst,
                    port: t.dport,
                },
            );
            acc ^= key.symmetric_hash();
        }
    }
    acc
}

/// The reader's path without counters and batching: decode, drop unwatched ports, key and
/// hash the watched packets into a shard index (2 workers).
fn reader_path(frames: &Frames, ports: &PortSet) -> [u64; 2] {
    let mut shards = [0u64; 2];
    for (_, f) in frames.iter() {
        let Ok(t) = decode(frames.link, black_box(f)).packet else {
            continue;
        };
        if !ports.matches(t.sport, t.dport) {
            continue;
        }
        let (key, _) = FlowKey::new(
            Endpoint {
                ip: t.src,
                port: t.sport,
            },
            Endpoint {
                ip: t.dst,
                port: t.dport,
            },
        );
        shards[(key.symmetric_hash() % 2) as usize] += 1;
    }
    shards
}

/// A watched packet decoded ahead of time, payload owned.
struct OwnedPacket {
    ts: i64,
    src: Endpoint,
    dst: Endpoint,
    seq: u32,
    ack: u32,
    flags: u8,
    vlan: u16,
    payload: Vec<u8>,
}

impl OwnedPacket {
    fn as_flow_packet(&self) -> FlowPacket<'_> {
        FlowPacket {
            ts: self.ts,
            src: self.src,
            dst: self.dst,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            vlan: self.vlan,
            payload: &self.payload,
        }
    }
}

/// The watched packets of a capture, decoded.
fn watched_packets(frames: &Frames, ports: &PortSet) -> Vec<OwnedPacket> {
    frames
        .iter()
        .filter_map(|(ts, f)| {
            let t = decode(frames.link, f).packet.ok()?;
            ports.matches(t.sport, t.dport).then(|| OwnedPacket {
                ts,
                src: Endpoint {
                    ip: t.src,
                    port: t.sport,
                },
                dst: Endpoint {
                    ip: t.dst,
                    port: t.dport,
                },
                seq: t.seq,
                ack: t.ack,
                flags: t.flags,
                vlan: t.vlan,
                payload: t.payload.to_vec(),
            })
        })
        .collect()
}

/// A flow table as `mailtls read` configures one of two workers with the default options.
fn table_config() -> FlowTableConfig {
    FlowTableConfig {
        max_flows: 1_000_000 / 2,
        idle_timeout_us: 300_000_000,
        linger_us: 10_000_000,
        early_emit_us: None,
        stream: StreamConfig::default(),
        ports: Arc::new(PortSet::mail_default()),
        context: Arc::new(RecordContext {
            sensor: "bench".into(),
            local_nets: Vec::new(),
        }),
    }
}

/// Every packet through the table, then the end of capture; returns the records emitted.
fn run_table(table: &mut FlowTable, packets: &[OwnedPacket]) -> u64 {
    let mut records = 0u64;
    let mut emit = |r| {
        black_box(r);
        records += 1;
    };
    for p in packets {
        table.on_packet(&p.as_flow_packet(), &mut emit);
    }
    table.drain(&mut emit);
    records
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

fn benches(c: &mut Criterion) {
    let ports = PortSet::mail_default();
    let mail = Frames::load(&common::workspace_path("samples/mailpeers-sample.pcap"))
        .unwrap_or_else(|e| panic!("bench input: {e}"));
    let bulk = Frames::load_optional(&common::workspace_path(
        "../shared/corpus/public/mercury/capture2.pcap",
    ));
    let inputs: Vec<(&str, &Frames)> = std::iter::once(("mailpeers", &mail))
        .chain(bulk.as_ref().map(|b| ("public_bulk", b)))
        .collect();
    for (name, frames) in &inputs {
        let tcp = decode_all(frames);
        let watched = reader_path(frames, &ports);
        let (_, allocs, _) = count_allocs(|| decode_hash_all(frames));
        eprintln!(
            "input {name}: {} frames, {} bytes, {tcp} TCP, {} on mail ports; \
             allocations in decode+hash of all frames: {allocs}",
            frames.len(),
            frames.data.len(),
            watched[0] + watched[1],
        );
    }

    let mut g = c.benchmark_group("reader_per_packet");
    for (name, frames) in &inputs {
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| decode_all(frames))
        });
        g.bench_function(BenchmarkId::new("decode+key+hash", name), |b| {
            b.iter(|| decode_hash_all(frames))
        });
        g.bench_function(BenchmarkId::new("decode+filter+hash", name), |b| {
            b.iter(|| reader_path(frames, &ports))
        });
    }
    g.finish();

    let packets = watched_packets(&mail, &ports);
    let mut table = FlowTable::new(table_config());
    let (records, allocs, bytes) = count_allocs(|| run_table(&mut table, &packets));
    eprintln!(
        "flow table, mailpeers: {} packets, {records} records; allocations {allocs} \
         ({:.1}/packet, {:.0}/record, {} B in all)",
        packets.len(),
        allocs as f64 / packets.len() as f64,
        allocs as f64 / records.max(1) as f64,
        bytes
    );
    let mut g = c.benchmark_group("flow_table");
    g.throughput(Throughput::Elements(packets.len() as u64));
    g.bench_function(BenchmarkId::new("on_packet+drain", "mailpeers"), |b| {
        // One table for every iteration (drain leaves it empty with its capacity), as a
        // worker's table is in a long run.
        b.iter(|| run_table(&mut table, black_box(&packets)))
    });
    g.finish();
}

criterion_group! {
    name = sensor;
    config = config();
    targets = benches
}
criterion_main!(sensor);
