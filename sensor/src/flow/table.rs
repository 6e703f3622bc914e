//! The flow table of one worker: sessions by [`FlowKey`], bounded in count, expired by
//! capture time. Each worker owns one table (its shard), so no lock is ever taken.
//!
//! A closed connection leaves a short-lived tombstone so that its trailing ACKs and
//! retransmissions do not start a phantom session; a SYN on a tombstone starts a new one.

use super::{Endpoint, FlowKey};
use crate::ports::PortSet;
use crate::reassembly::StreamConfig;
use crate::session::{Parsing, RecordContext, Session};
use crate::stats::WorkerStats;
use mailtls_parsers::tls::CertCache;
use mailtls_parsers::Dir;
use mailtls_storage::record::EndReason;
use mailtls_storage::SessionRecord;
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

/// The flow table's map. foldhash with a random per-process seed instead of std's
/// SipHash: the keys come from the wire, so the hash must be keyed (a sender must not be
/// able to build colliding flows), but a passive sensor answers nothing, so nobody can time
/// its table to recover the seed, which is what foldhash's "minimal DoS resistance" leaves
/// open. SipHash-1-3 was a tenth of a worker's time on all-mail traffic.
type FlowMap = std::collections::HashMap<FlowKey, Entry, foldhash::fast::RandomState>;

enum Entry {
    Active(Box<Session>),
    /// A session already emitted: closed (lingering to absorb late packets) or, when
    /// `open`, emitted early and still running (absorbing its packets until FIN/RST/idle).
    Closed {
        at: i64,
        open: bool,
    },
}

/// Certificates each worker keeps summaries of (~2 KB of DER each): the servers a sensor
/// sees most (its own MX, the big providers) stay in it.
const CERT_CACHE_SIZE: usize = 256;

/// A worker's shard of the flow table.
pub struct FlowTable {
    map: FlowMap,
    cfg: FlowTableConfig,
    /// Leaf-certificate summaries shared by this worker's sessions.
    certs: CertCache,
    /// Counters.
    pub stats: WorkerStats,
}

/// The parts of the table a session's packets and its end touch besides the map: the
/// counters, the configuration, the certificate cache (built from the fields, so that it can
/// be used while a slot of the map is borrowed).
struct EndCtx<'t> {
    stats: &'t mut WorkerStats,
    cfg: &'t FlowTableConfig,
    certs: &'t mut CertCache,
}

impl EndCtx<'_> {
    /// What a session needs to parse.
    fn parsing(&mut self) -> Parsing<'_> {
        Parsing {
            stream: &self.cfg.stream,
            certs: self.certs,
        }
    }

    /// Turns a finished session into its record, counts it, and emits it.
    fn finish(&mut self, sess: Session, reason: EndReason, emit: &mut dyn FnMut(SessionRecord)) {
        match reason {
            EndReason::Idle => self.stats.idle_closed += 1,
            EndReason::Evicted => self.stats.evicted += 1,
            _ => {}
        }
        let streams = sess.stream_stats();
        let mut env = Parsing {
            stream: &self.cfg.stream,
            certs: self.certs,
        };
        let (record, parse) = sess.finish(reason, &mut env, &self.cfg.context);
        self.stats.add_session(&streams, &parse);
        self.stats.records += 1;
        emit(record);
    }
}

impl FlowTable {
    /// An empty table.
    pub fn new(cfg: FlowTableConfig) -> Self {
        FlowTable {
            map: FlowMap::with_capacity_and_hasher(
                cfg.max_flows.min(1 << 10),
                foldhash::fast::RandomState::default(),
            ),
            cfg,
            certs: CertCache::new(CERT_CACHE_SIZE),
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
    ///
    /// A packet of a running session costs one lookup; a session that closes is replaced
    /// by its tombstone in place (no second lookup, no remove and insert).
    pub fn on_packet(&mut self, p: &FlowPacket<'_>, emit: &mut dyn FnMut(SessionRecord)) {
        use crate::decode::flags::{ACK, FIN, RST, SYN};
        let (key, _) = FlowKey::new(p.src, p.dst);
        let pure_syn = p.flags & (SYN | ACK) == SYN;
        if let Some(slot) = self.map.get_mut(&key) {
            let reason = match slot {
                Entry::Active(sess) => {
                    let dir = sess.dir_of(p.src);
                    let idle = p.ts.saturating_sub(sess.last_ts) > self.cfg.idle_timeout_us;
                    if !((pure_syn && sess.is_new_syn(dir, p.seq)) || idle) {
                        // The common case: a packet of a session in progress.
                        let mut ctx = EndCtx {
                            stats: &mut self.stats,
                            cfg: &self.cfg,
                            certs: &mut self.certs,
                        };
                        Self::feed(sess, dir, p, &mut ctx.parsing());
                        if sess.is_closed() {
                            Self::close(slot, p.ts, false, EndReason::Fin, &mut ctx, emit);
                        }
                        return;
                    }
                    // A new connection on the same key (a new SYN, or after the idle
                    // timeout): the old session ends here and the new one takes its slot.
                    Some(if idle {
                        EndReason::Idle
                    } else {
                        EndReason::CaptureEnd
                    })
                }
                Entry::Closed { at, open } => {
                    let quiet_for = p.ts.saturating_sub(*at);
                    let expired = if *open {
                        quiet_for > self.cfg.idle_timeout_us
                    } else {
                        quiet_for > self.cfg.linger_us
                    };
                    if !(pure_syn || expired) {
                        if *open {
                            *at = p.ts;
                            *open = p.flags & (FIN | RST) == 0;
                        }
                        self.stats.late_packets += 1;
                        return;
                    }
                    None
                }
            };
            let fresh = Entry::Active(Box::new(Self::new_session(&self.cfg, p)));
            let old = std::mem::replace(slot, fresh);
            self.stats.flows += 1;
            let mut ctx = EndCtx {
                stats: &mut self.stats,
                cfg: &self.cfg,
                certs: &mut self.certs,
            };
            if let (Entry::Active(old), Some(reason)) = (old, reason) {
                ctx.finish(*old, reason, emit);
            }
            let Entry::Active(sess) = slot else {
                return;
            };
            let dir = sess.dir_of(p.src);
            Self::feed(sess, dir, p, &mut ctx.parsing());
            if sess.is_closed() {
                Self::close(slot, p.ts, false, EndReason::Fin, &mut ctx, emit);
            }
            return;
        }
        if self.map.len() >= self.cfg.max_flows {
            self.evict_oldest(emit);
        }
        let session = Self::new_session(&self.cfg, p);
        self.stats.flows += 1;
        let slot = self
            .map
            .entry(key)
            .or_insert(Entry::Active(Box::new(session)));
        let Entry::Active(sess) = slot else {
            return;
        };
        let dir = sess.dir_of(p.src);
        let mut ctx = EndCtx {
            stats: &mut self.stats,
            cfg: &self.cfg,
            certs: &mut self.certs,
        };
        Self::feed(sess, dir, p, &mut ctx.parsing());
        if sess.is_closed() {
            Self::close(slot, p.ts, false, EndReason::Fin, &mut ctx, emit);
        }
    }

    /// The parts of the table that ending a session touches, for callers that hold no
    /// borrow of the map (those that do build an [`EndCtx`] from the two fields).
    fn ctx(&mut self) -> EndCtx<'_> {
        EndCtx {
            stats: &mut self.stats,
            cfg: &self.cfg,
            certs: &mut self.certs,
        }
    }

    /// Replaces the active session in `slot` by a tombstone (`open`: emitted early, still
    /// running) dated `at` and emits its record.
    fn close(
        slot: &mut Entry,
        at: i64,
        open: bool,
        reason: EndReason,
        ctx: &mut EndCtx<'_>,
        emit: &mut dyn FnMut(SessionRecord),
    ) {
        if let Entry::Active(sess) = std::mem::replace(slot, Entry::Closed { at, open }) {
            ctx.finish(*sess, reason, emit);
        }
    }

    /// Hands one packet to its session.
    fn feed(sess: &mut Session, dir: Dir, p: &FlowPacket<'_>, env: &mut Parsing<'_>) {
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
            env,
        );
    }

    fn new_session(cfg: &FlowTableConfig, p: &FlowPacket<'_>) -> Session {
        use crate::decode::flags::{ACK, SYN};
        let (client, server, midstream) = if p.flags & SYN != 0 {
            if p.flags & ACK == 0 {
                (p.src, p.dst, false)
            } else {
                (p.dst, p.src, false)
            }
        } else {
            let (c, s) = cfg.ports.guess_client_server(p.src, p.dst);
            (c, s, true)
        };
        Session::new(client, server, p.vlan, p.ts, midstream)
    }

    /// Ends the session under `key` (if active) and emits its record.
    fn end(&mut self, key: FlowKey, reason: EndReason, emit: &mut dyn FnMut(SessionRecord)) {
        let Some(Entry::Active(sess)) = self.map.remove(&key) else {
            return;
        };
        self.ctx().finish(*sess, reason, emit);
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
            if let Some(slot) = self.map.get_mut(&k) {
                let mut ctx = EndCtx {
                    stats: &mut self.stats,
                    cfg: &self.cfg,
                    certs: &mut self.certs,
                };
                Self::close(slot, last, true, EndReason::InProgress, &mut ctx, emit);
            }
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
