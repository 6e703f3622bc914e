//! The flow table of one worker: sessions by [`FlowKey`], bounded in count, expired by
//! capture time. Each worker owns one table (its shard), so no lock is ever taken.
//!
//! A closed connection leaves a short-lived tombstone so that its trailing ACKs and
//! retransmissions do not start a phantom session; a SYN on a tombstone starts a new one.
//! Tombstones live in a map of their own: they outnumber running sessions twenty to one on a
//! busy link (10 s of linger against sessions of half a second), and in one map with the
//! sessions they made every packet's lookup a cache miss (perf: a tenth of a worker's time
//! in the probe's key comparison). The sessions' map stays small enough for the CPU's cache;
//! the tombstones' map is only looked up for packets of flows without a running session.

use super::{Endpoint, FlowKey};
use crate::ports::PortSet;
use crate::reassembly::StreamConfig;
use crate::session::{Parsing, RecordContext, Session};
use crate::stats::WorkerStats;
use mailtls_parsers::fingerprint::FingerprintCache;
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

/// Maps of the flow table. foldhash with a random per-process seed instead of std's SipHash:
/// the keys come from the wire, so the hash must be keyed (a sender must not be able to
/// build colliding flows), but a passive sensor answers nothing, so nobody can time its
/// table to recover the seed, which is what foldhash's "minimal DoS resistance" leaves
/// open. SipHash-1-3 was a tenth of a worker's time on all-mail traffic.
type FlowMap<V> = std::collections::HashMap<FlowKey, V, foldhash::fast::RandomState>;

/// A session already emitted: closed (lingering to absorb late packets) or, when `open`,
/// emitted early and still running (absorbing its packets until FIN/RST/idle).
#[derive(Debug, Clone, Copy)]
struct Tombstone {
    /// Capture time (µs) of its last packet.
    at: i64,
    open: bool,
}

/// Certificates each worker keeps summaries of (~2 KB of DER each): the servers a sensor
/// sees most (its own MX, the big providers) stay in it.
const CERT_CACHE_SIZE: usize = 256;

/// Client and server hellos each worker keeps fingerprints of: the TLS stacks a sensor sees
/// most (a few dozen in a day of an MX's traffic).
const FINGERPRINT_CACHE_SIZE: usize = 64;

/// A worker's shard of the flow table.
pub struct FlowTable {
    /// Running sessions.
    sessions: FlowMap<Box<Session>>,
    /// Sessions already emitted.
    tombstones: FlowMap<Tombstone>,
    cfg: FlowTableConfig,
    /// Certificate summaries and fingerprints shared by this worker's sessions.
    caches: Caches,
    /// Counters.
    pub stats: WorkerStats,
}

/// The parts of the table a session's packets and its end touch besides the maps: the
/// counters, the configuration, the certificate cache (built from the fields, so that it can
/// be used while an entry of the sessions' map is borrowed).
struct EndCtx<'t> {
    stats: &'t mut WorkerStats,
    cfg: &'t FlowTableConfig,
    caches: &'t mut Caches,
}

/// What the sessions of a worker share: summaries of certificates and fingerprints.
struct Caches {
    certs: CertCache,
    fingerprints: FingerprintCache,
}

impl<'t> EndCtx<'t> {
    fn new(stats: &'t mut WorkerStats, cfg: &'t FlowTableConfig, caches: &'t mut Caches) -> Self {
        EndCtx { stats, cfg, caches }
    }

    /// What a session needs to parse.
    fn parsing(&mut self) -> Parsing<'_> {
        Parsing {
            stream: &self.cfg.stream,
            certs: &mut self.caches.certs,
            fingerprints: &mut self.caches.fingerprints,
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
            certs: &mut self.caches.certs,
            fingerprints: &mut self.caches.fingerprints,
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
        fn with_room<V>(n: usize) -> FlowMap<V> {
            FlowMap::with_capacity_and_hasher(n, Default::default())
        }
        FlowTable {
            sessions: with_room(cfg.max_flows.min(1 << 10)),
            tombstones: with_room(cfg.max_flows.min(1 << 10)),
            cfg,
            caches: Caches {
                certs: CertCache::new(CERT_CACHE_SIZE),
                fingerprints: FingerprintCache::new(FINGERPRINT_CACHE_SIZE),
            },
            stats: WorkerStats::default(),
        }
    }

    /// Flows (sessions and tombstones) held now.
    pub fn len(&self) -> usize {
        self.sessions.len() + self.tombstones.len()
    }

    /// Whether the table holds no flow.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.tombstones.is_empty()
    }

    /// Handles one packet; finished sessions go to `emit`.
    ///
    /// A packet of a running session costs one lookup in the (small) sessions' map.
    #[inline]
    pub fn on_packet(&mut self, p: &FlowPacket<'_>, emit: &mut dyn FnMut(SessionRecord)) {
        let (key, _) = FlowKey::new(p.src, p.dst);
        self.on_packet_of(key, p, emit);
    }

    /// [`FlowTable::on_packet`] for a caller that has the packet's flow key already
    /// (`FlowKey::new(p.src, p.dst).0`: the pipeline's reader computes it to pick the worker).
    pub fn on_packet_of(
        &mut self,
        key: FlowKey,
        p: &FlowPacket<'_>,
        emit: &mut dyn FnMut(SessionRecord),
    ) {
        use crate::decode::flags::{ACK, FIN, RST, SYN};
        debug_assert_eq!(key, FlowKey::new(p.src, p.dst).0);
        let pure_syn = p.flags & (SYN | ACK) == SYN;
        if let Some(sess) = self.sessions.get_mut(&key) {
            let dir = sess.dir_of(p.src);
            let idle = p.ts.saturating_sub(sess.last_ts) > self.cfg.idle_timeout_us;
            if !((pure_syn && sess.is_new_syn(dir, p.seq)) || idle) {
                // The common case: a packet of a session in progress.
                let mut ctx = EndCtx::new(&mut self.stats, &self.cfg, &mut self.caches);
                if Self::feed(sess, dir, p, &mut ctx) {
                    self.close(key, p.ts, false, EndReason::Fin, emit);
                }
                return;
            }
            // A new connection on the same key (a new SYN, or after the idle timeout): the
            // old session ends here and the new one takes its place.
            let reason = if idle {
                EndReason::Idle
            } else {
                EndReason::CaptureEnd
            };
            let fresh = Box::new(Self::new_session(&self.cfg, p));
            let old = std::mem::replace(sess, fresh);
            self.stats.flows += 1;
            self.ctx().finish(*old, reason, emit);
            self.feed_new(key, p, emit);
            return;
        }
        if let Some(t) = self.tombstones.get_mut(&key) {
            let quiet_for = p.ts.saturating_sub(t.at);
            let expired = if t.open {
                quiet_for > self.cfg.idle_timeout_us
            } else {
                quiet_for > self.cfg.linger_us
            };
            if !(pure_syn || expired) {
                if t.open {
                    t.at = p.ts;
                    t.open = p.flags & (FIN | RST) == 0;
                }
                self.stats.late_packets += 1;
                return;
            }
            self.tombstones.remove(&key);
        }
        if self.len() >= self.cfg.max_flows {
            self.evict_oldest(emit);
        }
        let session = Self::new_session(&self.cfg, p);
        self.stats.flows += 1;
        self.sessions.insert(key, Box::new(session));
        self.feed_new(key, p, emit);
    }

    /// Feeds the first packet of the session just stored under `key`.
    fn feed_new(&mut self, key: FlowKey, p: &FlowPacket<'_>, emit: &mut dyn FnMut(SessionRecord)) {
        let Some(sess) = self.sessions.get_mut(&key) else {
            return;
        };
        let dir = sess.dir_of(p.src);
        let mut ctx = EndCtx::new(&mut self.stats, &self.cfg, &mut self.caches);
        if Self::feed(sess, dir, p, &mut ctx) {
            self.close(key, p.ts, false, EndReason::Fin, emit);
        }
    }

    /// The parts of the table that ending a session touches, for callers that hold no
    /// borrow of the maps (those that do build an [`EndCtx`] from the fields).
    fn ctx(&mut self) -> EndCtx<'_> {
        EndCtx::new(&mut self.stats, &self.cfg, &mut self.caches)
    }

    /// Ends the session under `key`, leaves a tombstone (`open`: emitted early, still
    /// running) dated `at`, and emits the record.
    fn close(
        &mut self,
        key: FlowKey,
        at: i64,
        open: bool,
        reason: EndReason,
        emit: &mut dyn FnMut(SessionRecord),
    ) {
        if let Some(sess) = self.sessions.remove(&key) {
            self.tombstones.insert(key, Tombstone { at, open });
            self.ctx().finish(*sess, reason, emit);
        }
    }

    /// Hands one packet to its session; true when the connection is over (the caller then
    /// closes it, once the session is no longer borrowed).
    fn feed(sess: &mut Session, dir: Dir, p: &FlowPacket<'_>, ctx: &mut EndCtx<'_>) -> bool {
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
            &mut ctx.parsing(),
        );
        sess.is_closed()
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

    /// Ends the session under `key` (if running) and emits its record.
    fn end(&mut self, key: FlowKey, reason: EndReason, emit: &mut dyn FnMut(SessionRecord)) {
        let Some(sess) = self.sessions.remove(&key) else {
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
        self.tombstones.retain(|_, t| {
            let limit = if t.open { idle } else { linger };
            now.saturating_sub(t.at) <= limit
        });
        let mut stale: Vec<FlowKey> = Vec::new();
        let mut ripe: Vec<FlowKey> = Vec::new();
        for (k, s) in &self.sessions {
            if now.saturating_sub(s.last_ts) > idle {
                stale.push(*k);
            } else if let (Some(delay), Some(done)) = (early, s.done_at) {
                if now.saturating_sub(done) > delay {
                    ripe.push(*k);
                }
            }
        }
        stale.sort_unstable_by_key(|k| (k.lo, k.hi));
        for k in stale {
            self.end(k, EndReason::Idle, emit);
        }
        ripe.sort_unstable_by_key(|k| (k.lo, k.hi));
        for k in ripe {
            let Some(last) = self.sessions.get(&k).map(|s| s.last_ts) else {
                continue;
            };
            self.close(k, last, true, EndReason::InProgress, emit);
        }
    }

    /// Ends every session (end of capture or shutdown).
    pub fn drain(&mut self, emit: &mut dyn FnMut(SessionRecord)) {
        let mut keys: Vec<FlowKey> = self.sessions.keys().copied().collect();
        keys.sort_unstable_by_key(|k| (k.lo, k.hi));
        for k in keys {
            self.end(k, EndReason::CaptureEnd, emit);
        }
        self.sessions.clear();
        self.tombstones.clear();
    }

    /// Frees room: drops tombstones, then ends the least recently seen eighth of sessions.
    fn evict_oldest(&mut self, emit: &mut dyn FnMut(SessionRecord)) {
        self.stats.table_full += 1;
        self.tombstones.clear();
        if self.sessions.len() < self.cfg.max_flows {
            return;
        }
        let mut ages: Vec<(i64, FlowKey)> =
            self.sessions.iter().map(|(k, s)| (s.last_ts, *k)).collect();
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

    #[test]
    fn a_hole_with_nothing_ready_before_it_is_skipped() {
        // The server's EHLO reply loses its second segment exactly at a line boundary, so
        // when the client acknowledges past the hole the server's stream has nothing ready:
        // the hole must still be skipped and counted (a step with nothing to read calls no
        // parser, but still checks for a hole).
        let mut t = FlowTable::new(cfg(100));
        let (c, s) = (ep("198.51.100.7", 50000), ep("192.0.2.1", 25));
        let mut out = Vec::new();
        let mut send = |t: &mut FlowTable, p: FlowPacket<'_>| t.on_packet(&p, &mut |r| out.push(r));
        send(&mut t, pkt(0, c, s, 1, SYN, b""));
        send(&mut t, pkt(1, s, c, 500, SYN | ACK, b""));
        let banner = b"220 mx.example ESMTP\r\n";
        send(&mut t, pkt(2, s, c, 501, ACK, banner));
        send(&mut t, pkt(3, c, s, 2, ACK, b"EHLO c.example\r\n"));
        let first = b"250-mx.example\r\n";
        let lost = b"250-PIPELINING\r\n";
        let after = b"250-SIZE 10240000\r\n250 STARTTLS\r\n";
        let at = 501 + banner.len() as u32;
        send(&mut t, pkt(4, s, c, at, ACK, first));
        let after_seq = at + (first.len() + lost.len()) as u32;
        send(&mut t, pkt(5, s, c, after_seq, ACK, after));
        let mut acked = pkt(6, c, s, 18, ACK, b"");
        acked.ack = after_seq + after.len() as u32;
        send(&mut t, acked);
        // Skipped when acknowledged, not only when the session ends: what followed the hole
        // has been read, nothing is left in the buffers.
        let held: usize = t.sessions.values().map(|s| s.buffered()).sum();
        assert_eq!(held, 0, "the hole was skipped when acknowledged");
        t.drain(&mut |r| out.push(r));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].gap_bytes, lost.len() as u64, "the hole was skipped");
        assert_eq!(out[0].smtp_banner_host, "mx.example");
    }
}
