//! benchgen: builds large benchmark captures, deterministically, out of real flows.
//!
//! ```sh
//! cargo run --release -p mailtls-sensor --example benchgen -- \
//!     --mix mixed --size 1G --seed 1 -o /tmp/mixed.pcap
//! cargo run --release -p mailtls-sensor --example benchgen -- --mix mail --size 200M -o /tmp/mail.pcap
//! ```
//!
//! Templates:
//! - **mail**: every TCP flow with a port in 25/587/465 of the `--mail` captures (default
//!   `../shared/corpus/peers/mailpeers-2026.pcap`, else the repo's
//!   `samples/mailpeers-sample.pcap`): real Postfix / OpenSSL / swaks sessions (STARTTLS,
//!   implicit TLS, plaintext, refusals, TLS 1.0-1.3).
//! - **bulk**: every TCP and UDP flow with no port in 25/587/465 of the `--bulk` captures
//!   (default: [`DEFAULT_BULK`], Ethernet captures of `../shared/corpus/public`).
//!
//! Only IPv4 packets that are not fragments are used (IPv6, tunnels and other protocols of the
//! template captures are skipped and counted). Ethernet frames (with their VLAN tags) are
//! copied as they are; other link types get a synthetic Ethernet header. A flow is split when
//! a new SYN follows a FIN/RST of the same 5-tuple. Gaps inside a template flow are kept
//! (capped at `--max-gap`); mail templates, recorded on loopback, get a network round trip
//! (`--mail-rtt-ms`: half of it before every packet that turns the direction) to look like
//! sessions over the Internet.
//!
//! Generation: flow copies start at random times (a Poisson process) at the rate that gives
//! `--link-mbps` on average (default 1000 for the mixed capture, 100 for the all-mail one:
//! ~4,500 new sessions a second). The next flow is a mail template while the mail packets (written, or to come from the
//! mail copies in progress) are below `--mail-percent` of the packets (always with
//! `--mix mail`), else a bulk one; the template is
//! picked at random: a capture first (each capture is a class of traffic with an equal share of
//! the flows: with the default list, bulk packets average ~830 bytes, like an Internet link),
//! then one of its flows. Every copy gets a client address of its own in 10.0.0.0/8 and a server
//! from a pool (mail: 198.18.0.0/16, bulk: 198.19.0.0/16; RFC 2544 benchmark space), so that
//! every copy is a distinct 5-tuple; ports are kept. The IPv4 header checksum is recomputed and
//! the TCP/UDP checksum is updated incrementally (RFC 1624; a template checksum that was wrong,
//! e.g. offloaded, stays wrong; a zero UDP checksum stays zero). Packets of all copies are
//! merged by timestamp (starting 2026-01-05T00:00:00Z, microseconds) and written as a classic
//! pcap file (Ethernet link type) until the next record would pass `--size`; flows still open
//! at that point end there, as in any capture.
//!
//! The output depends only on the templates and the options (`--seed`): same inputs, same
//! bytes. The PRNG is a splitmix64 written here.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::error::Error;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, ValueEnum};

type Res<T> = Result<T, Box<dyn Error>>;

/// The ports of mail sessions (mailtls' defaults).
const MAIL_PORTS: [u16; 3] = [25, 587, 465];

/// Default bulk templates, relative to `../shared/corpus/public`. Ethernet captures, picked for
/// big flows of the kinds a mail server's link also carries, and for their size (the corpus
/// holds mostly small test captures):
/// - `mercury/capture2.pcap`: 2.2 MB of real mixed traffic, ~440 TCP/UDP flows: HTTPS with
///   TLS 1.0-1.3, HTTP, DNS, heavy loss/retransmission (its SMTP flows on 25 are not taken);
/// - `ja4/tls3.pcapng`: a browser's TLS 1.3 and QUIC downloads (avg 790-byte packets);
/// - `ja4/tls-handshake.pcapng`: 64 short HTTPS connections and QUIC, many SNIs;
/// - `zeek/tls/ssl.v3.pcap`: long HTTPS transfers (SSLv3), full-size segments;
/// - `zeek/tls/tls-fragmented-handshake.pcap`: one TLS flow with a 10,000-SAN certificate;
/// - `ndpi/tls_certificate_too_long.pcap`: DNS, HTTP and TLS of a desktop;
/// - `mercury/top_100_fingerprints.pcap`: 100 TLS connections of 100 different clients.
const DEFAULT_BULK: [&str; 7] = [
    "mercury/capture2.pcap",
    "ja4/tls3.pcapng",
    "ja4/tls-handshake.pcapng",
    "zeek/tls/ssl.v3.pcap",
    "zeek/tls/tls-fragmented-handshake.pcap",
    "ndpi/tls_certificate_too_long.pcap",
    "mercury/top_100_fingerprints.pcap",
];

/// First timestamp of the output: 2026-01-05T00:00:00Z, in microseconds.
const BASE_US: u64 = 1_767_571_200 * 1_000_000;

/// Snap length written in the pcap file header.
const SNAPLEN: u32 = 262_144;

/// The output is written in chunks of this size.
const OUT_CHUNK: usize = 4 << 20;

/// What the capture is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mix {
    /// `--mail-percent` of the packets from mail sessions, the rest bulk TCP/UDP.
    Mixed,
    /// Mail sessions only.
    Mail,
}

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "benchgen",
    about = "Build a large benchmark capture from real mail and bulk flows (deterministic)"
)]
struct Args {
    /// Output pcap file.
    #[arg(short, long)]
    out: PathBuf,
    /// Mixed traffic or mail sessions only.
    #[arg(long, value_enum, default_value = "mixed")]
    mix: Mix,
    /// Size of the output file: bytes, or with K/M/G (powers of 1000) or KiB/MiB/GiB.
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    size: u64,
    /// Seed of the PRNG (template choice, addresses, start times).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// With --mix mixed: share of the packets that belong to mail sessions, percent.
    #[arg(long, default_value_t = 5.0)]
    mail_percent: f64,
    /// Capture(s) whose TCP flows on 25/587/465 are the mail templates. Repeatable.
    #[arg(long = "mail")]
    mail: Vec<PathBuf>,
    /// Capture(s) whose TCP/UDP flows off the mail ports are the bulk templates. Repeatable;
    /// replaces the default list.
    #[arg(long = "bulk")]
    bulk: Vec<PathBuf>,
    /// Mean bit rate of the capture (frames, in capture time), Mbit/s: flow copies start at
    /// random (Poisson) at the rate that gives it. Default: 1000 with --mix mixed, 100 with
    /// --mix mail.
    #[arg(long)]
    link_mbps: Option<f64>,
    /// Round-trip time added to mail templates, milliseconds: half of it before every packet
    /// that turns the direction (the templates were recorded on loopback, with no delay).
    #[arg(long, default_value_t = 40.0)]
    mail_rtt_ms: f64,
    /// Longest gap kept between two packets of a template flow, seconds.
    #[arg(long, default_value_t = 30.0)]
    max_gap: f64,
    /// Print the template flows and exit.
    #[arg(long)]
    list_templates: bool,
    /// No summary on stderr.
    #[arg(short, long)]
    quiet: bool,
}

/// Parses `123`, `200M`, `1G`, `1.5GB`, `512MiB`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("bad size unit in {s:?}")),
    };
    let v = n * mult;
    if !(v.is_finite() && v >= 1024.0) {
        return Err(format!("size {s:?} must be at least 1024 bytes"));
    }
    Ok(v as u64)
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, good enough to pick templates.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Exponentially distributed with mean 1.
    fn exponential(&mut self) -> f64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        -(1.0 - u).ln()
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// One packet of a template flow.
struct TPkt {
    /// Microseconds since the flow's first packet (gaps capped, mail stretched).
    rel_us: u64,
    /// Sent by the client (the side that is not the server).
    from_client: bool,
    /// Length on the wire (pcap `len`).
    wire_len: u32,
    /// The Ethernet frame as captured: `arena[start..start + len]`.
    start: usize,
    len: u32,
    /// Offset of the IPv4 header in the frame.
    ip_off: u16,
    /// IPv4 header length, bytes.
    ihl: u8,
    /// Offset of the TCP/UDP checksum in the frame, when captured and in use.
    l4_csum: Option<u16>,
    /// The checksum is UDP's (0 means "none" and stays 0).
    udp: bool,
}

/// One template flow.
struct Template {
    /// Index of the capture it comes from.
    source: usize,
    mail: bool,
    proto: u8,
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
    pkts: Vec<TPkt>,
    /// Bytes it adds to the output (record headers included).
    out_bytes: u64,
    /// Last absolute timestamp seen, µs.
    last_ts: i64,
    /// A FIN or RST was seen (a later SYN starts a new template).
    closed: bool,
}

/// All templates and the bytes of their frames.
#[derive(Default)]
struct Templates {
    arena: Vec<u8>,
    flows: Vec<Template>,
    sources: Vec<PathBuf>,
}

/// What a template capture held besides usable flows.
#[derive(Default)]
struct LoadStats {
    packets: u64,
    used: u64,
    not_ipv4: u64,
    fragments: u64,
    not_tcp_udp: u64,
    wrong_ports: u64,
    truncated: u64,
}

/// Where an IPv4 packet starts in a frame of this link type; `None`: not IPv4 (or too short).
/// `true`: the frame is Ethernet and is kept as it is.
fn ipv4_offset(linktype: i32, data: &[u8]) -> Option<(usize, bool)> {
    let be16 = |o: usize| -> Option<u16> {
        let b = data.get(o..o + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    };
    match linktype {
        // Ethernet, up to two VLAN tags.
        1 => {
            let mut off = 12;
            for _ in 0..3 {
                match be16(off)? {
                    0x8100 | 0x88a8 => off += 4,
                    0x0800 => return Some((off + 2, true)),
                    _ => return None,
                }
            }
            None
        }
        // BSD loopback (host or network byte order), AF_INET = 2.
        0 | 108 => {
            let f = data.get(0..4)?;
            let fam_le = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
            let fam_be = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
            (fam_le == 2 || fam_be == 2).then_some((4, false))
        }
        // Raw IP.
        12 | 14 | 101 => Some((0, false)),
        // Linux cooked v1 / v2.
        113 => (be16(14)? == 0x0800).then_some((16, false)),
        276 => (be16(0)? == 0x0800).then_some((20, false)),
        _ => None,
    }
}

/// Protocol and the two endpoints, lower first: both directions of a flow.
type FlowKey = (u8, [u8; 4], u16, [u8; 4], u16);

fn flow_key(proto: u8, a: ([u8; 4], u16), b: ([u8; 4], u16)) -> FlowKey {
    if a <= b {
        (proto, a.0, a.1, b.0, b.1)
    } else {
        (proto, b.0, b.1, a.0, a.1)
    }
}

impl Templates {
    /// Adds the flows of one capture: the mail flows (`mail`) or the bulk flows.
    fn load(&mut self, path: &Path, mail: bool, max_gap_us: u64, rtt_us: u64) -> Res<LoadStats> {
        let mut cap = pcap::Capture::from_file(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let linktype = cap.get_datalink().0;
        if !matches!(linktype, 0 | 1 | 12 | 14 | 101 | 108 | 113 | 276) {
            return Err(format!("{}: unsupported link type {linktype}", path.display()).into());
        }
        let source = self.sources.len();
        self.sources.push(path.to_path_buf());
        let mut st = LoadStats::default();
        let mut index: HashMap<FlowKey, usize> = HashMap::new();
        loop {
            let p = match cap.next_packet() {
                Ok(p) => p,
                Err(pcap::Error::NoMorePackets) => break,
                Err(e) => return Err(format!("reading {}: {e}", path.display()).into()),
            };
            st.packets += 1;
            let data = p.data;
            #[allow(clippy::useless_conversion)]
            let ts = i64::from(p.header.ts.tv_sec)
                .saturating_mul(1_000_000)
                .saturating_add(i64::from(p.header.ts.tv_usec));
            let Some((ip, is_eth)) = ipv4_offset(linktype, data) else {
                st.not_ipv4 += 1;
                continue;
            };
            let Some(&vihl) = data.get(ip) else {
                st.truncated += 1;
                continue;
            };
            if vihl >> 4 != 4 {
                st.not_ipv4 += 1;
                continue;
            }
            let ihl = usize::from(vihl & 0x0f) * 4;
            let Some(iph) = data.get(ip..ip + ihl).filter(|_| ihl >= 20) else {
                st.truncated += 1;
                continue;
            };
            if u16::from_be_bytes([iph[6], iph[7]]) & 0x3fff != 0 {
                st.fragments += 1;
                continue;
            }
            let proto = iph[9];
            if proto != 6 && proto != 17 {
                st.not_tcp_udp += 1;
                continue;
            }
            let l4 = ip + ihl;
            let Some(ports) = data.get(l4..l4 + 4) else {
                st.truncated += 1;
                continue;
            };
            let src = (
                [iph[12], iph[13], iph[14], iph[15]],
                u16::from_be_bytes([ports[0], ports[1]]),
            );
            let dst = (
                [iph[16], iph[17], iph[18], iph[19]],
                u16::from_be_bytes([ports[2], ports[3]]),
            );
            let on_mail_port = MAIL_PORTS.contains(&src.1) || MAIL_PORTS.contains(&dst.1);
            let keep = if mail {
                proto == 6 && on_mail_port
            } else {
                !on_mail_port
            };
            if !keep {
                st.wrong_ports += 1;
                continue;
            }
            let tcp_flags = if proto == 6 {
                data.get(l4 + 13).copied()
            } else {
                None
            };
            let syn_only = tcp_flags.is_some_and(|f| f & 0x12 == 0x02);
            let fin_rst = tcp_flags.is_some_and(|f| f & 0x05 != 0);

            let key = flow_key(proto, src, dst);
            let idx = match index.get(&key) {
                Some(&i) if !(self.flows[i].closed && syn_only) => i,
                _ => {
                    // The server: the side on a mail port, else the first packet's destination.
                    let server = if mail && !MAIL_PORTS.contains(&dst.1) {
                        src
                    } else {
                        dst
                    };
                    let client = if server == dst { src } else { dst };
                    self.flows.push(Template {
                        source,
                        mail,
                        proto,
                        client,
                        server,
                        pkts: Vec::new(),
                        out_bytes: 0,
                        last_ts: ts,
                        closed: false,
                    });
                    index.insert(key, self.flows.len() - 1);
                    self.flows.len() - 1
                }
            };
            let t = &mut self.flows[idx];
            let gap = u64::try_from(ts.saturating_sub(t.last_ts))
                .unwrap_or(0)
                .min(max_gap_us);
            let from_client = src == t.client;
            let rel_us = t.pkts.last().map_or(0, |q| {
                let turn = mail && q.from_client != from_client;
                q.rel_us + gap + if turn { rtt_us / 2 } else { 0 }
            });
            t.last_ts = t.last_ts.max(ts);
            t.closed |= fin_rst;

            // The frame, as Ethernet.
            let start = self.arena.len();
            let ip_off = if is_eth {
                self.arena.extend_from_slice(data);
                ip
            } else {
                let (c, s) = ([0x02, 0, 0, 0, 0, 0x01], [0x02, 0, 0, 0, 0, 0x02]);
                let (dmac, smac) = if src == t.client { (s, c) } else { (c, s) };
                self.arena.extend_from_slice(&dmac);
                self.arena.extend_from_slice(&smac);
                self.arena.extend_from_slice(&[0x08, 0x00]);
                self.arena
                    .extend_from_slice(data.get(ip..).unwrap_or_default());
                14
            };
            let len = self.arena.len() - start;
            let l4_off = ip_off + ihl;
            let (csum_at, udp) = if proto == 6 {
                (l4_off + 16, false)
            } else {
                (l4_off + 6, true)
            };
            let l4_csum = (csum_at + 2 <= len).then_some(csum_at as u16);
            let wire_len = if is_eth {
                p.header.len
            } else {
                (p.header.len.saturating_sub(ip as u32) + 14).max(len as u32)
            };
            t.out_bytes += 16 + len as u64;
            t.pkts.push(TPkt {
                rel_us,
                from_client,
                wire_len,
                start,
                len: len as u32,
                ip_off: ip_off as u16,
                ihl: ihl as u8,
                l4_csum,
                udp,
            });
            st.used += 1;
        }
        Ok(st)
    }
}

/// Folds a ones'-complement sum to 16 bits.
fn fold(mut x: u64) -> u16 {
    while x >> 16 != 0 {
        x = (x & 0xffff) + (x >> 16);
    }
    x as u16
}

fn sum_words(b: &[u8]) -> u64 {
    b.chunks(2)
        .map(|w| u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum()
}

/// One copy of a template in progress.
#[derive(Clone, Copy)]
struct FlowCopy {
    tmpl: u32,
    next: u32,
    start_us: u64,
    client_ip: [u8; 4],
    server_ip: [u8; 4],
    /// RFC 1624 addend for the TCP/UDP checksum: Σ~old + Σnew over the address words.
    csum_add: u64,
}

/// Counters of the output.
#[derive(Default)]
struct OutStats {
    packets: u64,
    bytes: u64,
    mail_packets: u64,
    mail_copies: u64,
    bulk_copies: u64,
    last_us: u64,
    /// Most copies in progress at once.
    max_active: usize,
    /// Copies in progress when the size was reached.
    active_at_end: usize,
}

/// The generator: templates, PRNG, schedule.
struct Gen<'a> {
    t: &'a Templates,
    /// Mail template indices, per capture.
    mail_idx: Vec<Vec<u32>>,
    /// Bulk template indices, per capture.
    bulk_idx: Vec<Vec<u32>>,
    rng: SplitMix64,
    mix: Mix,
    mail_share: f64,
    copies: u64,
    /// Packets of the mail copies started so far.
    sched_mail: u64,
}

impl Gen<'_> {
    /// Mean frame bytes of a copy, with mail and bulk copies in the proportion that gives
    /// `mail_share` of the packets, templates weighted like [`Gen::spawn`] picks them.
    fn mean_copy_bytes(&self) -> f64 {
        // Mean (packets, frame bytes) of a copy from one of these lists of templates.
        let mean = |by_source: &[Vec<u32>]| -> (f64, f64) {
            let n = by_source.len().max(1) as f64;
            by_source.iter().fold((0.0, 0.0), |(p, b), list| {
                let (lp, lb) = list.iter().fold((0.0, 0.0), |(p, b), &i| {
                    let f = &self.t.flows[i as usize];
                    let pk = f.pkts.len() as f64;
                    (p + pk, b + f.out_bytes as f64 - 16.0 * pk)
                });
                let m = list.len().max(1) as f64;
                (p + lp / m / n, b + lb / m / n)
            })
        };
        let (pm, bm) = mean(&self.mail_idx);
        let (pb, bb) = mean(&self.bulk_idx);
        let f = match self.mix {
            Mix::Mail => 1.0,
            Mix::Mixed if self.bulk_idx.is_empty() => 1.0,
            Mix::Mixed if self.mail_idx.is_empty() || self.mail_share <= 0.0 => 0.0,
            Mix::Mixed => {
                let m = self.mail_share / pm;
                m / (m + (1.0 - self.mail_share) / pb)
            }
        };
        (f * bm + (1.0 - f) * bb).max(1.0)
    }

    /// Starts a copy of a template at `at_us` (capture time, µs from the start).
    fn spawn(&mut self, at_us: u64, st: &mut OutStats) -> FlowCopy {
        let mail = match self.mix {
            Mix::Mail => true,
            // Mail packets written or still to come vs all packets written plus those mail
            // packets: the bulk packets still to come are left out, as long flows (whose
            // packets come slowly) would bias the share.
            Mix::Mixed => {
                let pending_mail = self.sched_mail - st.mail_packets;
                self.bulk_idx.is_empty()
                    || (self.sched_mail as f64)
                        < self.mail_share * (st.packets + pending_mail) as f64
            }
        };
        // A capture first, then one of its flows: every capture is a class of traffic with an
        // equal share of the flows, whatever its number of flows.
        let by_source = if mail { &self.mail_idx } else { &self.bulk_idx };
        let list = &by_source[self.rng.below(by_source.len() as u64) as usize];
        let tmpl = list[self.rng.below(list.len() as u64) as usize];
        let t = &self.t.flows[tmpl as usize];
        let n = self.copies;
        self.copies += 1;
        let npk = t.pkts.len() as u64;
        if mail {
            self.sched_mail += npk;
            st.mail_copies += 1;
        } else {
            st.bulk_copies += 1;
        }
        // A bijection of the low 24 bits: every copy (up to 2^24 per epoch) has its own client.
        let c = (n & 0xff_ffff).wrapping_mul(0x5B_D1E9).wrapping_add(0x1234) & 0xff_ffff;
        let client_ip = [10, (c >> 16) as u8, (c >> 8) as u8, c as u8];
        let epoch = n >> 24;
        let server_ip = if mail {
            let s = (epoch * 256 + self.rng.below(256)) & 0xffff;
            [198, 18, (s >> 8) as u8, s as u8]
        } else {
            let s = (epoch * 4096 + self.rng.below(4096)) & 0xffff;
            [198, 19, (s >> 8) as u8, s as u8]
        };
        let not_old: u64 = 4 * 0xffff - sum_words(&t.client.0) - sum_words(&t.server.0);
        let new = sum_words(&client_ip) + sum_words(&server_ip);
        FlowCopy {
            tmpl,
            next: 0,
            start_us: at_us,
            client_ip,
            server_ip,
            csum_add: not_old + new,
        }
    }

    /// Appends the record of the copy's next packet to `out`.
    fn emit(&self, c: &FlowCopy, out: &mut Vec<u8>, st: &mut OutStats) {
        let t = &self.t.flows[c.tmpl as usize];
        let p = &t.pkts[c.next as usize];
        let ts = BASE_US + c.start_us + p.rel_us;
        st.last_us = st.last_us.max(c.start_us + p.rel_us);
        out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&p.len.to_le_bytes());
        out.extend_from_slice(&p.wire_len.to_le_bytes());
        let f0 = out.len();
        out.extend_from_slice(&self.t.arena[p.start..p.start + p.len as usize]);
        let frame = &mut out[f0..];
        let ip = usize::from(p.ip_off);
        let (src, dst) = if p.from_client {
            (c.client_ip, c.server_ip)
        } else {
            (c.server_ip, c.client_ip)
        };
        frame[ip + 12..ip + 16].copy_from_slice(&src);
        frame[ip + 16..ip + 20].copy_from_slice(&dst);
        frame[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
        let hsum = !fold(sum_words(&frame[ip..ip + usize::from(p.ihl)]));
        frame[ip + 10..ip + 12].copy_from_slice(&hsum.to_be_bytes());
        if let Some(at) = p.l4_csum {
            let at = usize::from(at);
            let old = u16::from_be_bytes([frame[at], frame[at + 1]]);
            if !(p.udp && old == 0) {
                let mut new = !fold(u64::from(!old) + c.csum_add);
                if p.udp && new == 0 {
                    new = 0xffff;
                }
                frame[at..at + 2].copy_from_slice(&new.to_be_bytes());
            }
        }
        st.packets += 1;
        st.bytes += 16 + u64::from(p.len);
        if t.mail {
            st.mail_packets += 1;
        }
    }
}

/// The repository's root (the sensor crate's parent).
fn repo_dir() -> PathBuf {
    let sensor = Path::new(env!("CARGO_MANIFEST_DIR"));
    sensor.parent().unwrap_or(sensor).to_path_buf()
}

fn default_mail() -> PathBuf {
    let repo = repo_dir();
    let shared = repo.parent().unwrap_or(&repo).join("shared");
    let peers = shared.join("corpus/peers/mailpeers-2026.pcap");
    if peers.exists() {
        peers
    } else {
        repo.join("samples/mailpeers-sample.pcap")
    }
}

fn default_bulk() -> Vec<PathBuf> {
    let repo = repo_dir();
    let public = repo.parent().unwrap_or(&repo).join("shared/corpus/public");
    DEFAULT_BULK
        .iter()
        .map(|f| public.join(f))
        .filter(|p| p.exists())
        .collect()
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("benchgen: {e}");
        std::process::exit(1);
    }
}

fn run(mut a: Args) -> Res<()> {
    let t0 = Instant::now();
    if a.mail.is_empty() {
        a.mail.push(default_mail());
    }
    if a.bulk.is_empty() && a.mix == Mix::Mixed {
        a.bulk = default_bulk();
    }
    if a.mix == Mix::Mail {
        a.bulk.clear();
    }
    let link_mbps = a.link_mbps.unwrap_or(match a.mix {
        Mix::Mixed => 1000.0,
        Mix::Mail => 100.0,
    });
    if !(link_mbps.is_finite() && link_mbps > 0.0) {
        return Err("--link-mbps must be positive".into());
    }
    if !(0.0..=100.0).contains(&a.mail_percent) {
        return Err("--mail-percent must be within 0..100".into());
    }
    let max_gap_us = (a.max_gap.max(0.0) * 1e6) as u64;
    let rtt_us = (a.mail_rtt_ms.max(0.0) * 1e3) as u64;
    let mut t = Templates::default();
    for (paths, mail) in [(&a.mail, true), (&a.bulk, false)] {
        for p in paths.iter() {
            let s = t.load(p, mail, max_gap_us, rtt_us)?;
            if !a.quiet {
                eprintln!(
                    "benchgen: {} {}: {} packets, {} used; skipped: {} not IPv4, {} fragments, {} not TCP/UDP, {} {}, {} truncated",
                    if mail { "mail" } else { "bulk" },
                    p.display(),
                    s.packets,
                    s.used,
                    s.not_ipv4,
                    s.fragments,
                    s.not_tcp_udp,
                    s.wrong_ports,
                    if mail { "off the mail ports" } else { "on mail ports" },
                    s.truncated
                );
            }
        }
    }
    let by_source = |mail: bool| -> Vec<Vec<u32>> {
        (0..t.sources.len())
            .map(|src| {
                (0..t.flows.len() as u32)
                    .filter(|&i| {
                        let f = &t.flows[i as usize];
                        f.mail == mail && f.source == src
                    })
                    .collect::<Vec<u32>>()
            })
            .filter(|v| !v.is_empty())
            .collect()
    };
    let mail_idx = by_source(true);
    let bulk_idx = by_source(false);
    if a.list_templates {
        for f in &t.flows {
            let ip =
                |e: &([u8; 4], u16)| format!("{}.{}.{}.{}:{}", e.0[0], e.0[1], e.0[2], e.0[3], e.1);
            println!(
                "{}\t{}\t{}\t{} -> {}\t{} pkts\t{} bytes\t{:.3} s",
                t.sources[f.source].display(),
                if f.mail { "mail" } else { "bulk" },
                if f.proto == 6 { "tcp" } else { "udp" },
                ip(&f.client),
                ip(&f.server),
                f.pkts.len(),
                f.out_bytes,
                f.pkts.last().map_or(0, |p| p.rel_us) as f64 / 1e6
            );
        }
        return Ok(());
    }
    if mail_idx.is_empty() && (a.mix == Mix::Mail || a.mail_percent > 0.0) {
        return Err("no mail flow (TCP on 25/587/465) in the mail captures".into());
    }
    if bulk_idx.is_empty() && a.mix == Mix::Mixed && a.mail_percent < 100.0 {
        return Err("no bulk flow in the bulk captures".into());
    }

    let mut g = Gen {
        t: &t,
        mail_idx,
        bulk_idx,
        rng: SplitMix64(a.seed ^ 0x6D61_696C_746C_7321),
        mix: a.mix,
        mail_share: a.mail_percent / 100.0,
        copies: 0,
        sched_mail: 0,
    };
    let mut st = OutStats::default();
    // Copies start at random (exponential gaps) at the rate that gives `link_mbps` on average.
    let per_us = link_mbps / 8.0 / g.mean_copy_bytes();
    let mut next_start: f64 = 0.0;
    let mut slots: Vec<FlowCopy> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let mut file =
        File::create(&a.out).map_err(|e| format!("cannot create {}: {e}", a.out.display()))?;
    let mut out: Vec<u8> = Vec::with_capacity(OUT_CHUNK + 300_000);
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&SNAPLEN.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut written: u64 = 0;
    loop {
        let start_at = next_start as u64;
        let Some(&Reverse((now, slot))) = heap.peek().filter(|r| r.0 .0 < start_at) else {
            // The next copy starts before the next packet of the copies in progress.
            let c = g.spawn(start_at, &mut st);
            let slot = match free.pop() {
                Some(f) => {
                    slots[f as usize] = c;
                    f
                }
                None => {
                    slots.push(c);
                    (slots.len() - 1) as u32
                }
            };
            st.max_active = st.max_active.max(slots.len() - free.len());
            heap.push(Reverse((start_at, slot)));
            next_start += g.rng.exponential() / per_us;
            continue;
        };
        heap.pop();
        let s = slot as usize;
        let c = slots[s];
        let tf = &t.flows[c.tmpl as usize];
        let rec = 16 + u64::from(tf.pkts[c.next as usize].len);
        if written + out.len() as u64 + rec > a.size {
            break;
        }
        g.emit(&c, &mut out, &mut st);
        if out.len() >= OUT_CHUNK {
            file.write_all(&out)?;
            written += out.len() as u64;
            out.clear();
        }
        let next = c.next + 1;
        if (next as usize) < tf.pkts.len() {
            slots[s].next = next;
            heap.push(Reverse((c.start_us + tf.pkts[next as usize].rel_us, slot)));
        } else {
            free.push(slot);
        }
        debug_assert!(now <= start_at);
    }
    st.active_at_end = slots.len() - free.len();
    file.write_all(&out)?;
    written += out.len() as u64;
    file.flush()?;
    if !a.quiet {
        let secs = t0.elapsed().as_secs_f64();
        eprintln!(
            "benchgen: wrote {} ({} bytes, {} packets, avg {:.0} bytes/packet) in {:.2} s",
            a.out.display(),
            written,
            st.packets,
            st.bytes as f64 / st.packets.max(1) as f64 - 16.0,
            secs
        );
        eprintln!(
            "benchgen: mail packets {:.2} %, flow copies: {} mail, {} bulk, at most {} at once ({} open at the end); {:.1} s of capture time ({:.0} pps, {:.0} Mbps in capture time)",
            100.0 * st.mail_packets as f64 / st.packets.max(1) as f64,
            st.mail_copies,
            st.bulk_copies,
            st.max_active,
            st.active_at_end,
            st.last_us as f64 / 1e6,
            st.packets as f64 / (st.last_us.max(1) as f64 / 1e6),
            (st.bytes - 16 * st.packets) as f64 * 8.0 / (st.last_us.max(1) as f64)
        );
    }
    Ok(())
}
