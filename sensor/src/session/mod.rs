//! Session assembly: one TCP connection on a mail port, its two reassembled streams, and the
//! parsers they feed. The session decides which parser reads the bytes (SMTP, then TLS after
//! an accepted STARTTLS; TLS from the first byte for implicit TLS), hands the flow over on
//! STARTTLS, and stops buffering once nothing more is to be learned (handshake over, or
//! plaintext past the first message body). [`Session::finish`] turns it into a record.

mod record;

pub use record::RecordContext;

use crate::flow::Endpoint;
use crate::reassembly::{Stream, StreamConfig, StreamStats};
use mailtls_parsers::fingerprint::FingerprintCache;
use mailtls_parsers::smtp::{Phase, SmtpParser};
use mailtls_parsers::tls::{record as tls_record, CertCache, TlsParser};
use mailtls_parsers::Dir;
use mailtls_storage::record::EndReason;

/// A segment whose bytes the parsers read where they lie (see
/// [`Stream::insert_or_lend`]): for stream `dir` they stand in for its (empty) buffer while
/// the session processes the packet.
#[derive(Debug, Clone, Copy)]
struct Lent<'p> {
    /// Index of the stream the bytes belong to; 2 for none.
    dir: usize,
    /// The bytes not consumed yet.
    bytes: &'p [u8],
}

impl Lent<'static> {
    /// No lent segment: every stream reads its buffer.
    fn none() -> Self {
        Lent { dir: 2, bytes: &[] }
    }
}

/// The bytes ready for the parser of stream `d`.
fn ready_of<'a>(streams: &'a [Stream; 2], lent: Lent<'a>, d: usize) -> &'a [u8] {
    if lent.dir == d {
        lent.bytes
    } else {
        streams[d].ready()
    }
}

/// Marks `n` ready bytes of stream `d` as consumed.
fn consume(streams: &mut [Stream; 2], lent: &mut Lent<'_>, d: usize, n: usize) {
    if n == 0 {
        // Most steps: nothing was read (an empty `drain` is not free).
        return;
    }
    if lent.dir == d {
        lent.bytes = lent.bytes.get(n..).unwrap_or_default();
    } else {
        streams[d].consume(n);
    }
}

/// Which parser reads the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    /// No payload seen yet.
    Undecided,
    /// The SMTP dialogue.
    Smtp,
    /// TLS (after STARTTLS, or from the first byte).
    Tls,
    /// Nothing more to learn: only counting.
    Done,
}

/// Counters a session adds to its worker's totals when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionParseStats {
    /// SMTP lines from the server that were not replies.
    pub smtp_junk_lines: u64,
    /// SMTP lines over the length cap.
    pub smtp_overlong_lines: u64,
    /// Bytes the TLS parser skipped as not-a-record.
    pub tls_junk_bytes: u64,
    /// TLS handshake messages that did not parse.
    pub tls_bad_messages: u64,
    /// TLS handshake messages over the size cap.
    pub tls_oversized_messages: u64,
    /// Leaf certificates that did not parse.
    pub cert_errors: u64,
}

/// What the sessions of one worker share while parsing: the reassembly limits, and the
/// caches of certificate summaries (a server shows every client the same certificate) and
/// of fingerprints (a TLS stack sends the same hello lists every time).
pub struct Parsing<'a> {
    /// Per-direction reassembly limits.
    pub stream: &'a StreamConfig,
    /// Leaf-certificate summaries by DER.
    pub certs: &'a mut CertCache,
    /// JA3/JA4/JA3S by hello fields.
    pub fingerprints: &'a mut FingerprintCache,
}

/// One TCP connection being followed.
#[derive(Debug)]
pub struct Session {
    /// The side that opened the connection.
    pub client: Endpoint,
    /// The mail server side.
    pub server: Endpoint,
    /// Outermost VLAN id of the first packet.
    pub vlan: u16,
    /// Capture time (µs) of the first packet.
    pub first_ts: i64,
    /// Capture time (µs) of the latest packet.
    pub last_ts: i64,
    /// Whether the connection was already running when first seen (no SYN).
    pub midstream: bool,
    streams: [Stream; 2],
    packets: [u64; 2],
    bytes: [u64; 2],
    fin: [bool; 2],
    rst: bool,
    layer: Layer,
    implicit_tls: bool,
    smtp: SmtpParser,
    tls: Option<Box<TlsParser>>,
    /// A gap hit the server's stream while STARTTLS awaited its reply.
    server_gap_pending_starttls: bool,
    /// Sequence number of the client's SYN.
    syn_isn: Option<u32>,
    /// Capture time (µs) nothing more was left to learn (handshake over, or plaintext past
    /// the first message body).
    pub done_at: Option<i64>,
}

impl Session {
    /// Starts following a connection at capture time `ts`.
    pub fn new(client: Endpoint, server: Endpoint, vlan: u16, ts: i64, midstream: bool) -> Self {
        Session {
            client,
            server,
            vlan,
            first_ts: ts,
            last_ts: ts,
            midstream,
            streams: [Stream::default(), Stream::default()],
            packets: [0; 2],
            bytes: [0; 2],
            fin: [false; 2],
            rst: false,
            layer: Layer::Undecided,
            implicit_tls: false,
            smtp: SmtpParser::new(),
            tls: None,
            server_gap_pending_starttls: false,
            syn_isn: None,
            done_at: None,
        }
    }

    /// The direction of a packet sent by `src`.
    #[inline]
    pub fn dir_of(&self, src: Endpoint) -> Dir {
        if src == self.client {
            Dir::ToServer
        } else {
            Dir::ToClient
        }
    }

    /// Whether the connection is over (FIN both ways, or RST).
    pub fn is_closed(&self) -> bool {
        self.rst || (self.fin[0] && self.fin[1])
    }

    /// Whether payload is still being buffered (false once only counting).
    pub fn is_buffering(&self) -> bool {
        self.layer != Layer::Done
    }

    /// Bytes held in the reassembly buffers.
    pub fn buffered(&self) -> usize {
        self.streams[0].buffered() + self.streams[1].buffered()
    }

    /// Whether a SYN (without ACK) would start a new connection on this key: the old one is
    /// closed, or the SYN's sequence number is not the one this session started with.
    pub fn is_new_syn(&self, dir: Dir, syn_seq: u32) -> bool {
        if self.is_closed() {
            return true;
        }
        // A retransmitted SYN repeats the ISN; a reused port picks a new one.
        dir == Dir::ToServer
            && self.streams[0].started()
            && self.packets[0] > 0
            && self.syn_isn != Some(syn_seq)
    }

    /// Feeds one packet travelling in `dir`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_packet(
        &mut self,
        dir: Dir,
        seq: u32,
        ack: Option<u32>,
        syn: bool,
        fin: bool,
        rst: bool,
        payload: &[u8],
        ts: i64,
        env: &mut Parsing<'_>,
    ) {
        let d = dir.index();
        self.last_ts = self.last_ts.max(ts);
        self.packets[d] += 1;
        self.bytes[d] += payload.len() as u64;
        if syn {
            if dir == Dir::ToServer && self.syn_isn.is_none() {
                self.syn_isn = Some(seq);
            }
            self.streams[d].on_syn(seq);
        }
        if let Some(ack) = ack {
            self.streams[1 - d].on_peer_ack(ack);
        }
        let lent = self.streams[d].insert_or_lend(seq, payload, env.stream);
        self.fin[d] |= fin;
        self.rst |= rst;
        match lent {
            None => self.process(ts, env, &mut Lent::none()),
            Some(bytes) => {
                // The parsers read the segment where it lies; only what they leave of it
                // (a partial line or record) is copied into the stream's buffer.
                let mut lent = Lent { dir: d, bytes };
                self.process(ts, env, &mut lent);
                self.streams[d].keep_unconsumed(lent.bytes);
            }
        }
    }

    /// Runs the parsers over whatever is ready, skipping condemned holes, until nothing moves.
    fn process(&mut self, ts: i64, env: &mut Parsing<'_>, lent: &mut Lent<'_>) {
        for _ in 0..64 {
            let mut moved = false;
            for dir in [Dir::ToServer, Dir::ToClient] {
                moved |= self.step(dir, ts, env, lent);
            }
            if !moved {
                break;
            }
        }
    }

    /// One parsing step on one direction; returns whether anything was consumed or skipped.
    fn step(&mut self, dir: Dir, ts: i64, env: &mut Parsing<'_>, lent: &mut Lent<'_>) -> bool {
        let d = dir.index();
        if self.layer == Layer::Done {
            return false;
        }
        if self.layer == Layer::Undecided && !self.decide_layer(dir, *lent) {
            return self.maybe_skip_hole(dir, env.stream);
        }
        let ready = ready_of(&self.streams, *lent, d);
        // Most steps find nothing to read (a packet makes `process` step both directions
        // twice, and one of them has no bytes): every parser consumes nothing from nothing,
        // and the phase changes `after_parse` applies only follow a parse (each step that
        // parses applies its own), so with no hole to skip either the step does nothing.
        if ready.is_empty() && !self.streams[d].hole_condemned() {
            return false;
        }
        let used = if ready.is_empty() {
            0
        } else {
            match self.layer {
                Layer::Smtp if dir == Dir::ToServer && self.smtp.awaiting_starttls_reply() => {
                    if tls_record::looks_like_client_hello(ready)
                        && (self.server_gap_pending_starttls
                            || tls_record::looks_like_tls(ready_of(&self.streams, *lent, 1)))
                    {
                        // The 220 was lost, but TLS follows STARTTLS on both sides.
                        self.smtp.force_tls();
                        0
                    } else {
                        self.smtp.feed(dir, ready)
                    }
                }
                Layer::Smtp if dir == Dir::ToServer => {
                    // A ClientHello after a clear-text dialogue without an SMTP STARTTLS:
                    // another protocol's upgrade (IMAP, POP3, FTP, XMPP, whose last message
                    // may not end in a newline) or a client that starts TLS after the banner.
                    // The clear text before it is parsed; the binary bytes must never be read
                    // as command lines.
                    match tls_record::find_client_hello(ready) {
                        None => self.smtp.feed(dir, ready),
                        Some(at) => {
                            let used = self.smtp.feed(dir, &ready[..at]);
                            // After a refused STARTTLS the server stays in clear text (Postfix
                            // answers the ClientHello with "500 bad syntax"): not an upgrade.
                            if self.smtp.phase() == Phase::Dialogue
                                && !self.smtp.summary.starttls_requested
                            {
                                consume(&mut self.streams, lent, d, at);
                                self.upgrade_without_starttls(*lent);
                                return true;
                            }
                            used
                        }
                    }
                }
                Layer::Smtp => self.smtp.feed(dir, ready),
                Layer::Tls => match self.tls.as_mut() {
                    Some(tls) => tls.feed_cached(dir, ready, ts, env.certs),
                    None => 0,
                },
                Layer::Undecided | Layer::Done => 0,
            }
        };
        consume(&mut self.streams, lent, d, used);
        self.after_parse();
        let skipped = self.maybe_skip_hole(dir, env.stream);
        used > 0 || skipped
    }

    /// Applies phase changes of the parsers: STARTTLS hand-over, end of interest.
    fn after_parse(&mut self) {
        match self.layer {
            Layer::Smtp => match self.smtp.phase() {
                Phase::Tls => {
                    self.layer = Layer::Tls;
                    self.tls = Some(Box::default());
                }
                Phase::Finished => self.stop_buffering(),
                Phase::Dialogue => {}
            },
            Layer::Tls if self.tls.as_ref().is_some_and(|t| t.is_done()) => {
                self.stop_buffering();
            }
            _ => {}
        }
    }

    /// Switches to TLS on a ClientHello that no SMTP STARTTLS announced; whatever the server
    /// sent last in clear is skipped by the TLS parser's resync.
    fn upgrade_without_starttls(&mut self, lent: Lent<'_>) {
        self.layer = Layer::Tls;
        let mut tls = Box::<TlsParser>::default();
        let server = ready_of(&self.streams, lent, 1);
        if !server.is_empty() && !tls_record::looks_like_tls(server) {
            tls.gap(Dir::ToClient);
        }
        self.tls = Some(tls);
    }

    fn stop_buffering(&mut self) {
        self.done_at.get_or_insert(self.last_ts);
        self.layer = Layer::Done;
        self.streams[0].stop_buffering();
        self.streams[1].stop_buffering();
    }

    fn maybe_skip_hole(&mut self, dir: Dir, cfg: &StreamConfig) -> bool {
        let d = dir.index();
        if !self.streams[d].hole_condemned() {
            return false;
        }
        self.streams[d].skip_hole(cfg);
        match self.layer {
            Layer::Smtp => {
                self.smtp.gap(dir);
                if dir == Dir::ToClient && self.smtp.awaiting_starttls_reply() {
                    self.server_gap_pending_starttls = true;
                }
            }
            Layer::Tls => {
                if let Some(tls) = self.tls.as_mut() {
                    tls.gap(dir);
                }
            }
            Layer::Undecided => self.smtp.gap(dir),
            Layer::Done => {}
        }
        true
    }

    /// Chooses SMTP or TLS from the first bytes; false while there are too few to tell.
    fn decide_layer(&mut self, dir: Dir, lent: Lent<'_>) -> bool {
        let ready = ready_of(&self.streams, lent, dir.index());
        if ready.is_empty() {
            return false;
        }
        // A connection seen from its start opens TLS with a ClientHello; one picked up
        // midstream may already be inside TLS records of any type.
        let tls_like = match dir {
            Dir::ToServer if !self.midstream => tls_record::looks_like_client_hello(ready),
            _ => tls_record::looks_like_tls(ready),
        };
        let may_grow_into_tls = ready.len() < tls_record::HEADER_LEN
            && (ready[0] >= 0x80 || (20..=24).contains(&ready[0]));
        if may_grow_into_tls && !self.streams[dir.index()].hole_condemned() {
            return false;
        }
        if tls_like {
            self.layer = Layer::Tls;
            self.implicit_tls = true;
            self.tls = Some(Box::default());
        } else {
            self.layer = Layer::Smtp;
        }
        true
    }

    /// Flushes what is left (skipping holes that will now never fill) and builds the record.
    pub fn finish(
        mut self,
        reason: EndReason,
        env: &mut Parsing<'_>,
        ctx: &RecordContext,
    ) -> (mailtls_storage::SessionRecord, SessionParseStats) {
        for _ in 0..1024 {
            if self.layer == Layer::Done {
                break;
            }
            self.streams[0].condemn_hole();
            self.streams[1].condemn_hole();
            if !self.streams[0].hole_condemned() && !self.streams[1].hole_condemned() {
                // Bytes short of a whole line/record stay unparsed: nothing more will come.
                self.process(self.last_ts, env, &mut Lent::none());
                break;
            }
            self.process(self.last_ts, env, &mut Lent::none());
        }
        let reason = if reason == EndReason::InProgress {
            reason
        } else if self.rst {
            EndReason::Rst
        } else if self.fin[0] && self.fin[1] {
            EndReason::Fin
        } else {
            reason
        };
        let stats = self.parse_stats();
        (
            record::build(&mut self, reason, ctx, env.fingerprints),
            stats,
        )
    }

    fn parse_stats(&self) -> SessionParseStats {
        let s = &self.smtp.summary;
        let t = self.tls.as_ref().map(|t| t.stats).unwrap_or_default();
        SessionParseStats {
            smtp_junk_lines: u64::from(s.junk_lines),
            smtp_overlong_lines: u64::from(s.overlong_lines),
            tls_junk_bytes: t.junk_bytes,
            tls_bad_messages: t.bad_messages,
            tls_oversized_messages: t.oversized_messages,
            cert_errors: u64::from(self.tls.as_ref().is_some_and(|t| t.certificate_error)),
        }
    }

    /// Reassembly counters of both directions.
    pub fn stream_stats(&self) -> [StreamStats; 2] {
        [self.streams[0].stats, self.streams[1].stats]
    }
}
