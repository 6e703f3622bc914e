//! The flow table of one worker: sessions by [`FlowKey`], bounded in count, expired by
//! capture time. Each worker owns one table (its shard), so no lock is ever taken.
//!
//! A closed connection leaves a short-lived tombstone so that its trailing ACKs and
//! retransmissions do not start a phantom session; a SYN on a tombstone starts a new one.

use super::{Endpoint, FlowKey};
use crate::ports::PortSet;
use crate::reassembly::StreamConfig;
use crate::session::{RecordContext, Session};
use crate::stats::WorkerStats;
use mailtls_parsers::Dir;
use mailtls_storage::record::EndReason;
use mailtls_storage::SessionRecord;
use std::collections::HashMap;
use std::sync::Arc;

/// Limits and timeouts of a flow table.
#[derive(Debug, Clone)]
pub struct FlowTableConfig {
    /// Most flows (sessions plus tombstones) held; beyond it the least recently seen eighth
    /// is evicted (and emitted).
    pub max_flows: usize,
    /// A session with no packet for this long (µs of capture time) is ended.
    pub idle_timeout_us: i64,
    /// How long (µs) a closed connection's tombstone absorbs late packets.
    pub linger_us: i64,
    /// Live capture: a session with nothing more to learn that is still open this long (µs)
    /// after that point is emitted early (`end_reason: in_progress`); `None` offline.
    pub early_emit_us: Option<i64>,
    /// Per-direction reassembly limits.
    pub stream: StreamConfig,
    /// Watched server ports (to tell client from server without a SYN).
    pub ports: Arc<PortSet>,
    /// Sensor name and local networks for records.
    pub context: Arc<RecordContext>,
}

/// One packet as the worker sees it (decoded by the reader).
#[derive(Debug, Clone, Copy)]
pub struct FlowPacket<'a> {
    /// Capture time, µs.
    pub ts: i64,
    /// Source endpoint.
    pub src: Endpoint,
    /// Destination endpoint.
    pub dst: Endpoint,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP acknowledgment number.
    pub ack: u32,
    /// TCP flags.
    pub flags: u8,
    /// Outer VLAN id.
    pub vlan: u16,
    /// TCP payload.
    pub payload: &'a [u8],
}

enum Entry {
    Active(Box<Session>),
    /// A session already emitted: closed (lingering to absorb late packets) or, when
    /// `open`, emitted early and still running (absorbing its packets until FIN/RST/idle).
    Closed {
        at: i64,
        open: bool,
    },
}

/// A worker's shard of the flow table.
pub struct FlowTable {
    map: HashMap<FlowKey, Entry>,
    cfg: FlowTableConfig,
    /// Counters.
    pub stats: WorkerStats,
}

impl FlowTable {
    /// An empty table.
    pub fn new(cfg: FlowTableConfig) -> Self {
        FlowTable {
            map: HashMap::with_capacity(cfg.max_flows.min(1 << 16)),
            cfg,
            stats: WorkerStats::default(),
        }
    }

    /// Flows (sessions and tombstones) held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table holds no flow.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Handles one packet; finished sessions go to `emit`.
    pub fn on_packet(&mut self, p: &FlowPacket<'_>, emit: &mut dyn FnMut(SessionRecord)) {
        use crate::decode::flags::{ACK, FIN, RST, SYN};
        let (key, _) = FlowKey::new(p.src, p.dst);
        let pure_syn = p.flags & (SYN | ACK) == SYN;
        let start_new;
        match self.map.get_mut(&key) {
            Some(Entry::Active(sess)) => {
                let dir = if p.src == sess.client {
                    Dir::ToServer
                } else {
                    Dir::ToClient
                };
                let idle = p.ts.saturating_sub(sess.last_ts) > self.cfg.idle_timeout_us;
                if !((pure_syn && sess.is_new_syn(dir, p.seq)) || idle) {
                    // The common case: a packet of a session in progress, one lookup.
                    Self::feed(sess, dir, p, &self.cfg.stream);
                    if sess.is_closed() {
                        self.end(key, EndReason::Fin, emit);
                        self.map.insert(
                            key,
                            Entry::Closed {
                                at: p.ts,
                                open: false,
                            },
                        );
                    }
                    return;
                }
                {
                    let reason = if idle {
                        EndReason::Idle
                    } else {
                        EndReason::CaptureEnd
                    };
                    self.end(key, reason, emit);
                    start_new = true;
                }
            }
            Some(Entry::Closed { at, open }) => {
                let quiet_for = p.ts.saturating_sub(*at);
                let expired = if *open {
                    quiet_for > self.cfg.idle_timeout_us
                } else {
                    quiet_for > self.cfg.linger_us
                };
                if pure_syn || expired {
                    self.map.remove(&key);
                    start_new = true;
                } else {
                    if *open {
                        *at = p.ts;
                        *open = p.flags & (FIN | RST) == 0;
                    }
                    self.stats.late_packets += 1;
                    return;
                }
            }
            None => start_new = true,
        }
        if start_new {
            if self.map.len() >= self.cfg.max_flows {
                self.evict_oldest(emit);
            }
            let session = self.new_session(p);
            self.stats.flows += 1;
            self.map.insert(key, Entry::Active(Box::new(session)));
        }
        let Some(Entry::Active(sess)) = self.map.get_mut(&key) else {
            return;
        };
        let dir = if p.src == sess.client {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        Self::feed(sess, dir, p, &self.cfg.stream);
        if sess.is_closed() {
            let at = p.ts;
            self.end(key, EndReason::Fin, emit);
            self.map.insert(key, Entry::Closed { at, open: false });
        }
    }

    /// Hands one packet to its session.
    fn feed(sess: &mut Session, dir: Dir, p: &FlowPacket<'_>, cfg: &StreamConfig) {
        use crate::decode::flags::{ACK, FIN, RST, SYN};
        let ack = (p.flags & ACK != 0).then_some(p.ack);
        sess.on_packet(
            dir,
            p.seq,
            ack,
            p.flags & SYN != 0,
            p.flags & FIN != 0,
            p.flags & RST != 0,
            p.payload,
            p.ts,
            cfg,
        );
    }

    fn new_session(&self, p: &FlowPacket<'_>) -> Session {
        use crate::decode::flags::{ACK, SYN};
        let (client, server, midstream) = if p.flags & SYN != 0 {
            if p.flags & ACK == 0 {
                (p.src, p.dst, false)
            } else {
                (p.dst, p.src, false)
            }
        } else {
            let (c, s) = self.cfg.ports.guess_client_server(p.src, p.dst);
            (c, s, true)
        };
        Session::new(client, server, p.vlan, p.ts, midstream)
    }

    /// Ends the session under `key` (if active) and emits its record.
    fn end(&mut self, key: FlowKey, reason: EndReason, emit: &mut dyn FnMut(SessionRecord)) {
        let Some(Entry::Active(sess)) = self.map.remove(&key) else {
            return;
        };
        match reason {
            EndReason::Idle => self.stats.idle_closed += 1,
            EndReason::Evicted => self.stats.evicted += 1,
            _ => {}
        }
        let streams = sess.stream_stats();
        let (record, parse) = sess.finish(reason, &self.cfg.stream, &self.cfg.context);
        self.stats.add_session(&streams, &parse);
        self.stats.records += 1;
        emit(record);
    }

    /// Ends sessions idle for longer than the timeout at capture time `now`, and forgets
    /// tombstones older than the linger time.
    pub fn expire(&mut self, now: i64, emit: &mut dyn FnMut(SessionRecord)) {
        let idle = self.cfg.idle_timeout_us;
        let linger = self.cfg.linger_us;
        let early = self.cfg.early_emit_us;
        let mut stale: Vec<FlowKey> = Vec::new();
        let mut ripe: Vec<FlowKey> = Vec::new();
        self.map.retain(|k, e| match e {
            Entry::Active(s) => {
                if now.saturating_sub(s.last_ts) > idle {
                    stale.push(*k);
                } else if let (Some(delay), Some(done)) = (early, s.done_at) {
                    if now.saturating_sub(done) > delay {
                        ripe.push(*k);
                    }
                }
                true
            }
            Entry::Closed { at, open: false } => now.saturating_sub(*at) <= linger,
            Entry::Closed { at, open: true } => now.saturating_sub(*at) <= idle,
        });
        stale.sort_unstable_by_key(|k| (k.lo, k.hi));
        for k in stale {
            self.end(k, EndReason::Idle, emit);
        }
        ripe.sort_unstable_by_key(|k| (k.lo, k.hi));
        for k in ripe {
            let last = match self.map.get(&k) {
                Some(Entry::Active(s)) => s.last_ts,
                _ => continue,
            };
            self.end(k, EndReason::InProgress, emit);
            self.map.insert(
                k,
                Entry::Closed {
                    at: last,
                    open: true,
                },
            );
        }
    }

    /// Ends every session (end of capture or shutdown).
    pub fn drain(&mut self, emit: &mut dyn FnMut(SessionRecord)) {
        let mut keys: Vec<FlowKey> = self
            .map
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Active(_)))
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable_by_key(|k| (k.lo, k.hi));
        for k in keys {
            self.end(k, EndReason::CaptureEnd, emit);
        }
        self.map.clear();
    }

    /// Frees room: drops tombstones, then ends the least recently seen eighth of sessions.
    fn evict_oldest(&mut self, emit: &mut dyn FnMut(SessionRecord)) {
        self.stats.table_full += 1;
        self.map.retain(|_, e| matches!(e, Entry::Active(_)));
        if self.map.len() < self.cfg.max_flows {
            return;
        }
        let mut ages: Vec<(i64, FlowKey)> = self
            .map
            .iter()
            .filter_map(|(k, e)| match e {
                Entry::Active(s) => Some((s.last_ts, *k)),
                Entry::Closed { .. } => None,
            })
            .collect();
        let n = (ages.len() / 8).max(1);
        if ages.len() > n {
            ages.select_nth_unstable_by_key(n, |(t, k)| (*t, k.lo, k.hi));
        }
        ages.truncate(n);
        for (_, k) in ages {
            self.end(k, EndReason::Evicted, emit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::flags::{ACK, FIN, SYN};
    use mailtls_storage::record::Mode;

    fn cfg(max_flows: usize) -> FlowTableConfig {
        FlowTableConfig {
            max_flows,
            idle_timeout_us: 300_000_000,
            linger_us: 10_000_000,
            early_emit_us: None,
            stream: StreamConfig::default(),
            ports: Arc::new(PortSet::mail_default()),
            context: Arc::new(RecordContext::default()),
        }
    }

    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
        }
    }

    fn pkt<'a>(
        ts: i64,
        src: Endpoint,
        dst: Endpoint,
        seq: u32,
        flags: u8,
        payload: &'a [u8],
    ) -> FlowPacket<'a> {
        FlowPacket {
            ts,
            src,
            dst,
            seq,
            ack: 0,
            flags,
            vlan: 0,
            payload,
        }
    }

    #[test]
    fn syn_flood_stays_under_the_cap_and_counts_evictions() {
        let mut t = FlowTable::new(cfg(1000));
        let mut records = 0u64;
        let server = ep("192.0.2.1", 25);
        for i in 0..20_000u32 {
            let client = Endpoint {
                ip: std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)),
                port: 40000,
            };
            t.on_packet(&pkt(i64::from(i), client, server, i, SYN, b""), &mut |_| {
                records += 1
            });
            assert!(t.len() <= 1000);
        }
        assert!(t.stats.evicted >= 19_000);
        t.drain(&mut |_| records += 1);
        assert_eq!(records, 20_000, "every flow is emitted exactly once");
    }

    #[test]
    fn idle_sessions_expire_and_late_packets_are_absorbed() {
        let mut t = FlowTable::new(cfg(100));
        let (c, s) = (ep("198.51.100.7", 50000), ep("192.0.2.1", 25));
        let mut out = Vec::new();
        t.on_packet(&pkt(0, c, s, 1, SYN, b""), &mut |r| out.push(r));
        t.on_packet(&pkt(1, s, c, 500, SYN | ACK, b""), &mut |r| out.push(r));
        t.on_packet(
            &pkt(2, s, c, 501, ACK, b"220 mx.example ESMTP\r\n"),
            &mut |r| out.push(r),
        );
        t.expire(100_000_000, &mut |r| out.push(r));
        assert!(out.is_empty());
        t.expire(400_000_000, &mut |r| out.push(r));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].smtp_banner_host, "mx.example");
        assert_eq!(out[0].mode, Mode::Plaintext);

        // A closed connection: trailing ACKs do not make a second record.
        let c2 = ep("198.51.100.8", 50001);
        t.on_packet(&pkt(500_000_000, c2, s, 1, SYN, b""), &mut |r| out.push(r));
        t.on_packet(&pkt(500_000_001, c2, s, 2, FIN | ACK, b""), &mut |r| {
            out.push(r)
        });
        t.on_packet(&pkt(500_000_002, s, c2, 9, FIN | ACK, b""), &mut |r| {
            out.push(r)
        });
        t.on_packet(&pkt(500_000_003, c2, s, 3, ACK, b""), &mut |r| out.push(r));
        assert_eq!(out.len(), 2);
        assert_eq!(t.stats.late_packets, 1);
        t.drain(&mut |r| out.push(r));
        assert_eq!(out.len(), 2);
    }
}
