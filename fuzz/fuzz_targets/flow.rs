//! The worker side without threads or files: a `FlowTable` (flow table, sessions, TCP
//! reassembly, SMTP and TLS parsers, record building) fed arbitrary packets of a few
//! connections, with SYN/FIN/RST, retransmissions, reordering, idle expiry and a tiny table.
//!
//! Checks: no panic; after `drain` the table is empty, every flow gave exactly one record
//! and every record serialises to JSON.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mailtls_fuzz::TIME_STEPS;
use mailtls_sensor::flow::{Endpoint, FlowPacket, FlowTable, FlowTableConfig};
use mailtls_sensor::ports::PortSet;
use mailtls_sensor::reassembly::StreamConfig;
use mailtls_sensor::session::RecordContext;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

#[derive(Debug, Arbitrary)]
struct Packet {
    /// Connection (of 4) and direction.
    conn: u8,
    to_server: bool,
    flags: u8,
    /// 0..=191: in order; else `seq_rel` from the next expected sequence number.
    seq_mode: u8,
    seq_rel: i16,
    ack_rel: i8,
    /// Capture-time step, index into `TIME_STEPS`.
    step: u8,
    payload: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Packet(Packet),
    /// A reader tick.
    Expire,
    /// Capture time jumps to an arbitrary value (pcapng timestamps and offsets allow any
    /// value: finding T1 of fuzz/CAMPAIGN.md).
    TimeJump(i64),
}

#[derive(Debug, Arbitrary)]
struct Input {
    max_flows: u8,
    max_buffer: u16,
    /// 0: offline; else early emission after this many 100 ms.
    early_emit: u8,
    /// Per connection: server port choice and whether the client uses IPv6.
    ports: [u8; 4],
    ops: Vec<Op>,
}

const SERVER_PORTS: [u16; 4] = [25, 587, 465, 2525];

fuzz_target!(|input: Input| {
    let ports = Arc::new(PortSet::mail_default());
    let cfg = FlowTableConfig {
        max_flows: usize::from(input.max_flows % 8) + 1,
        idle_timeout_us: 300_000_000,
        linger_us: 10_000_000,
        // Live capture's early emission of finished-but-open sessions, or offline.
        early_emit_us: (input.early_emit != 0).then(|| i64::from(input.early_emit) * 100_000),
        stream: StreamConfig {
            max_buffer: usize::from(input.max_buffer).max(64),
            max_segments: 16,
        },
        ports: ports.clone(),
        context: Arc::new(RecordContext {
            sensor: "fuzz".into(),
            local_nets: vec!["192.0.2.0/24".parse().unwrap()],
        }),
    };
    let mut table = FlowTable::new(cfg);
    let mut records = Vec::new();
    let mut emit = |r: mailtls_storage::SessionRecord| records.push(r);
    let mut ts: i64 = 1_700_000_000_000_000;
    // Next sequence number per connection and direction.
    let mut next_seq = [[0x1000_0000u32, 0x2000_0000u32]; 4];
    for (i, n) in next_seq.iter_mut().enumerate() {
        n[0] = n[0].wrapping_add(i as u32 * 7919);
        n[1] = n[1].wrapping_mul(i as u32 + 3);
    }
    for op in input.ops.iter().take(256) {
        match op {
            Op::Packet(p) => {
                ts = ts.saturating_add(TIME_STEPS[usize::from(p.step & 7)] as i64);
                let c = usize::from(p.conn & 3);
                let sel = input.ports[c];
                let client_ip = if sel & 4 != 0 {
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, c as u16 + 1))
                } else {
                    IpAddr::V4(Ipv4Addr::new(198, 51, 100, c as u8 + 1))
                };
                let server_ip = if sel & 4 != 0 {
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 25))
                } else {
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25))
                };
                let client = Endpoint {
                    ip: client_ip,
                    port: 40_000 + c as u16,
                };
                let server = Endpoint {
                    ip: server_ip,
                    port: SERVER_PORTS[usize::from(sel & 3)],
                };
                let (src, dst, d) = if p.to_server {
                    (client, server, 0)
                } else {
                    (server, client, 1)
                };
                let expected = next_seq[c][d];
                let seq = if p.seq_mode < 192 {
                    expected
                } else {
                    expected.wrapping_add(p.seq_rel as i32 as u32)
                };
                let ack = next_seq[c][1 - d].wrapping_add(p.ack_rel as i32 as u32);
                let syn_fin = u32::from(p.flags & 0x03 != 0);
                let end = seq
                    .wrapping_add(p.payload.len() as u32)
                    .wrapping_add(syn_fin);
                if (end.wrapping_sub(expected) as i32) > 0 {
                    next_seq[c][d] = end;
                }
                let pkt = FlowPacket {
                    ts,
                    src,
                    dst,
                    seq,
                    ack,
                    flags: p.flags,
                    vlan: 0,
                    payload: &p.payload,
                };
                table.on_packet(&pkt, &mut emit);
            }
            Op::Expire => table.expire(ts, &mut emit),
            Op::TimeJump(t) => ts = *t,
        }
    }
    table.drain(&mut emit);
    assert!(table.is_empty());
    assert_eq!(
        table.stats.records, table.stats.flows,
        "one record per flow"
    );
    assert_eq!(records.len() as u64, table.stats.records);
    for r in &records {
        let json = serde_json::to_string(r).expect("record serialises");
        assert!(json.starts_with('{'));
    }
});
