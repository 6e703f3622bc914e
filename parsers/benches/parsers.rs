//! Micro-benchmarks of the hot parsers on real bytes (issue 6, item 2).
//!
//! Inputs are cut at start-up from `samples/mailpeers-sample.pcap` (always in the repository)
//! and, for ClientHello and certificate variety, from the public captures under
//! `../shared/corpus/public/ja4` when that directory exists (skipped with a message when not).
//! See docs/MICROBENCH.md for what each bench measures and the figures on the reference
//! machine.

mod common;

use common::{count_allocs, handshake_len, handshake_messages, load_conns, load_dir, Conn};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mailtls_parsers::fingerprint::{ja3, ja3s, ja4, md5_hex, Transport};
use mailtls_parsers::smtp::{Phase, SmtpParser};
use mailtls_parsers::tls::hello::parse_server_hello;
use mailtls_parsers::tls::{CertSummary, ClientHello, TlsParser};
use mailtls_parsers::Dir;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static ALLOC: common::CountingAlloc = common::CountingAlloc;

/// Where the SMTP dialogue of a connection ends and TLS begins.
struct Dialogue<'a> {
    conn: &'a Conn,
    /// Bytes the SMTP parser consumed per direction (the dialogue), which is also where TLS
    /// starts after an accepted STARTTLS.
    used: [usize; 2],
    /// Whether the dialogue ended in STARTTLS accepted.
    tls: bool,
}

/// One direction of one TLS handshake: the connection, the direction, and the byte range.
struct Flight<'a> {
    conn: &'a Conn,
    dir: Dir,
    start: usize,
    end: usize,
}

/// Feeds a connection's SMTP dialogue to a fresh parser, segment by segment, until the
/// parser leaves the dialogue phase.
fn run_smtp(conn: &Conn) -> (SmtpParser, [usize; 2]) {
    let mut p = SmtpParser::new();
    let ends = [conn.streams[0].len(), conn.streams[1].len()];
    let used = conn.replay([0, 0], ends, None, |dir, bytes| {
        (p.phase() == Phase::Dialogue).then(|| p.feed(dir, bytes))
    });
    (p, used)
}

/// Feeds one direction of a handshake to a fresh TLS parser, segment by segment.
fn run_tls(f: &Flight<'_>) -> TlsParser {
    let mut p = TlsParser::new();
    let mut start = [0; 2];
    let mut end = [0; 2];
    start[f.dir.index()] = f.start;
    end[f.dir.index()] = f.end;
    f.conn.replay(start, end, Some(f.dir), |dir, bytes| {
        Some(p.feed(dir, bytes, 1))
    });
    p
}

/// Parses a ClientHello handshake message as the TLS parser does.
fn parse_client_hello(msg: &[u8]) -> Option<ClientHello> {
    match tls_parser::parse_tls_message_handshake(msg) {
        Ok((
            _,
            tls_parser::TlsMessage::Handshake(tls_parser::TlsMessageHandshake::ClientHello(ch)),
        )) => Some(ClientHello::from_parsed(&ch)),
        _ => None,
    }
}

/// The leaf certificate of a Certificate handshake message.
fn leaf_certificate(msg: &[u8]) -> Option<Vec<u8>> {
    match tls_parser::parse_tls_message_handshake(msg) {
        Ok((
            _,
            tls_parser::TlsMessage::Handshake(tls_parser::TlsMessageHandshake::Certificate(c)),
        )) => c.cert_chain.first().map(|c| c.data.to_vec()),
        _ => None,
    }
}

/// The three fingerprints the sensor computes per ClientHello.
fn fingerprints(ch: &ClientHello) -> (String, String, String) {
    let s = ja3(ch);
    let h = md5_hex(&s);
    (s, h, ja4(ch, Transport::Tcp))
}

/// What the benches run on.
#[derive(Default)]
struct Hellos {
    /// Distinct ClientHello messages (by JA3 and JA4), 4-byte header included.
    client: Vec<Vec<u8>>,
    /// Distinct ServerHello messages (by JA3S and version).
    server: Vec<Vec<u8>>,
    /// Distinct leaf certificates (DER).
    certs: Vec<Vec<u8>>,
}

/// Collects distinct hellos and leaf certificates from connections; `tls_start` says where
/// TLS starts in each direction (`None`: no TLS).
fn collect_hellos(conns: &[(&Conn, [usize; 2])]) -> Hellos {
    let mut out = Hellos::default();
    let (mut seen_ch, mut seen_sh, mut seen_cert) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for (conn, start) in conns {
        for msg in handshake_messages(&conn.streams[0][start[0]..]) {
            if msg[0] != 1 {
                continue;
            }
            if let Some(ch) = parse_client_hello(&msg) {
                if seen_ch.insert((ja3(&ch), ja4(&ch, Transport::Tcp))) {
                    out.client.push(msg);
                }
            }
        }
        for msg in handshake_messages(&conn.streams[1][start[1]..]) {
            match msg[0] {
                2 => {
                    if let Some(sh) = parse_server_hello(&msg) {
                        if seen_sh.insert((ja3s(&sh), sh.version)) {
                            out.server.push(msg);
                        }
                    }
                }
                11 => {
                    if let Some(der) = leaf_certificate(&msg) {
                        if seen_cert.insert(Sha256::digest(&der).to_vec()) {
                            out.certs.push(der);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Where TLS starts in a connection: after an accepted STARTTLS, or at byte 0 when the
/// client's first byte is a handshake record.
fn tls_start(conn: &Conn) -> Option<[usize; 2]> {
    if conn.streams[0].first() == Some(&22) {
        return Some([0, 0]);
    }
    let (p, used) = run_smtp(conn);
    (p.phase() == Phase::Tls).then_some(used)
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

fn benches(c: &mut Criterion) {
    let sample = common::workspace_path("samples/mailpeers-sample.pcap");
    let mail = load_conns(&sample).unwrap_or_else(|e| panic!("bench input: {e}"));
    let public_dir = common::workspace_path("../shared/corpus/public/ja4");
    let public = if public_dir.is_dir() {
        load_dir(&public_dir).unwrap_or_else(|e| {
            eprintln!("bench input skipped: {e}");
            Vec::new()
        })
    } else {
        eprintln!(
            "bench input skipped: {} not present (public ClientHellos and certificates)",
            public_dir.display()
        );
        Vec::new()
    };

    // The SMTP dialogues of the sample, and where their TLS starts.
    let dialogues: Vec<Dialogue<'_>> = mail
        .iter()
        .filter_map(|conn| {
            let (p, used) = run_smtp(conn);
            p.looks_like_smtp().then_some(Dialogue {
                conn,
                used,
                tls: p.phase() == Phase::Tls,
            })
        })
        .collect();
    let mail_tls: Vec<(&Conn, [usize; 2])> = mail
        .iter()
        .filter_map(|c| tls_start(c).map(|s| (c, s)))
        .collect();
    let public_tls: Vec<(&Conn, [usize; 2])> = public
        .iter()
        .filter_map(|c| tls_start(c).map(|s| (c, s)))
        .collect();
    let mail_hellos = collect_hellos(&mail_tls);
    let public_hellos = collect_hellos(&public_tls);
    let flights: [Vec<Flight<'_>>; 2] = [Dir::ToServer, Dir::ToClient].map(|dir| {
        mail_tls
            .iter()
            .map(|(conn, start)| {
                let i = dir.index();
                let len = handshake_len(&conn.streams[i][start[i]..]);
                Flight {
                    conn,
                    dir,
                    start: start[i],
                    end: start[i] + len,
                }
            })
            .filter(|f| f.end > f.start)
            .collect()
    });

    let smtp_bytes: usize = dialogues.iter().map(|d| d.used[0] + d.used[1]).sum();
    let smtp_lines: usize = dialogues
        .iter()
        .map(|d| {
            (0..2)
                .map(|i| {
                    d.conn.streams[i][..d.used[i]]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                })
                .sum::<usize>()
        })
        .sum();
    eprintln!(
        "inputs: {} SMTP dialogues ({} with STARTTLS accepted; {} bytes, {} lines); \
         {} TLS sessions ({} client flights, {} bytes; {} server flights, {} bytes); \
         mail: {} distinct ClientHellos, {} ServerHellos, {} certificates; \
         public: {} ClientHellos, {} ServerHellos, {} certificates",
        dialogues.len(),
        dialogues.iter().filter(|d| d.tls).count(),
        smtp_bytes,
        smtp_lines,
        mail_tls.len(),
        flights[0].len(),
        flights[0].iter().map(|f| f.end - f.start).sum::<usize>(),
        flights[1].len(),
        flights[1].iter().map(|f| f.end - f.start).sum::<usize>(),
        mail_hellos.client.len(),
        mail_hellos.server.len(),
        mail_hellos.certs.len(),
        public_hellos.client.len(),
        public_hellos.server.len(),
        public_hellos.certs.len(),
    );
    assert!(
        !dialogues.is_empty()
            && !mail_hellos.client.is_empty()
            && !mail_hellos.server.is_empty()
            && !mail_hellos.certs.is_empty(),
        "the sample capture yielded no input"
    );

    // What the TLS parser makes of the flights: a check that they are whole handshakes.
    let hellos_seen = flights[0]
        .iter()
        .filter(|f| run_tls(f).client_hello.is_some())
        .count();
    let (server_seen, certs_seen) = flights[1].iter().fold((0, 0), |(s, c), f| {
        let p = run_tls(f);
        (
            s + usize::from(p.server_hello.is_some()),
            c + usize::from(p.certificate.is_some()),
        )
    });
    eprintln!(
        "TLS parser on the flights: {hellos_seen}/{} ClientHellos, {server_seen}/{} \
         ServerHellos, {certs_seen} leaf certificates summarised",
        flights[0].len(),
        flights[1].len()
    );

    alloc_census(&mail_hellos, &dialogues, &flights);

    // (a) ClientHello parse and fingerprints.
    let mut g = c.benchmark_group("client_hello");
    for (name, set) in [("mail", &mail_hellos), ("public", &public_hellos)] {
        if set.client.is_empty() {
            continue;
        }
        let parsed: Vec<ClientHello> = set
            .client
            .iter()
            .filter_map(|m| parse_client_hello(m))
            .collect();
        g.throughput(Throughput::Elements(set.client.len() as u64));
        g.bench_function(BenchmarkId::new("parse", name), |b| {
            b.iter(|| {
                for m in &set.client {
                    black_box(parse_client_hello(black_box(m)));
                }
            })
        });
        g.bench_function(BenchmarkId::new("ja3+md5", name), |b| {
            b.iter(|| {
                for ch in &parsed {
                    black_box(md5_hex(&ja3(black_box(ch))));
                }
            })
        });
        g.bench_function(BenchmarkId::new("ja4", name), |b| {
            b.iter(|| {
                for ch in &parsed {
                    black_box(ja4(black_box(ch), Transport::Tcp));
                }
            })
        });
        g.bench_function(BenchmarkId::new("parse+ja3+ja4", name), |b| {
            b.iter(|| {
                for m in &set.client {
                    if let Some(ch) = parse_client_hello(black_box(m)) {
                        black_box(fingerprints(&ch));
                    }
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("server_hello");
    g.throughput(Throughput::Elements(mail_hellos.server.len() as u64));
    g.bench_function(BenchmarkId::new("parse+ja3s", "mail"), |b| {
        b.iter(|| {
            for m in &mail_hellos.server {
                if let Some(sh) = parse_server_hello(black_box(m)) {
                    black_box(md5_hex(&ja3s(&sh)));
                }
            }
        })
    });
    g.finish();

    // (b) Certificate summary.
    let mut g = c.benchmark_group("certificate");
    for (name, set) in [("mail", &mail_hellos), ("public", &public_hellos)] {
        if set.certs.is_empty() {
            continue;
        }
        g.throughput(Throughput::Elements(set.certs.len() as u64));
        g.bench_function(BenchmarkId::new("summary", name), |b| {
            b.iter(|| {
                for der in &set.certs {
                    black_box(CertSummary::from_der(black_box(der)).ok());
                }
            })
        });
        g.bench_function(BenchmarkId::new("sha256_hex_only", name), |b| {
            b.iter(|| {
                for der in &set.certs {
                    black_box(hex::encode(Sha256::digest(black_box(der))));
                }
            })
        });
    }
    g.finish();

    // (c) SMTP dialogues, both directions, segment by segment.
    let mut g = c.benchmark_group("smtp_dialogue");
    let run_all = || {
        for d in &dialogues {
            black_box(run_smtp(black_box(d.conn)));
        }
    };
    g.throughput(Throughput::Bytes(smtp_bytes as u64));
    g.bench_function(BenchmarkId::new("bytes", "mail"), |b| b.iter(run_all));
    g.throughput(Throughput::Elements(smtp_lines as u64));
    g.bench_function(BenchmarkId::new("lines", "mail"), |b| b.iter(run_all));
    g.finish();

    // (d) The whole TLS parser, one direction of a handshake at a time.
    let mut g = c.benchmark_group("tls_parser");
    for (name, set) in [("to_server", &flights[0]), ("to_client", &flights[1])] {
        let bytes: usize = set.iter().map(|f| f.end - f.start).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(BenchmarkId::new("handshake_bytes", name), |b| {
            b.iter(|| {
                for f in set {
                    black_box(run_tls(black_box(f)));
                }
            })
        });
    }
    g.finish();
}

/// Prints how many allocations each operation makes (once, outside any timing).
fn alloc_census(hellos: &Hellos, dialogues: &[Dialogue<'_>], flights: &[Vec<Flight<'_>>; 2]) {
    let per = |n: u64, d: usize| n as f64 / d.max(1) as f64;
    let n = hellos.client.len();
    let (_, a, bytes) = count_allocs(|| {
        for m in &hellos.client {
            black_box(parse_client_hello(m));
        }
    });
    eprintln!(
        "allocations: ClientHello parse {:.1}/hello ({:.0} B)",
        per(a, n),
        per(bytes, n)
    );
    let parsed: Vec<ClientHello> = hellos
        .client
        .iter()
        .filter_map(|m| parse_client_hello(m))
        .collect();
    let (_, a, bytes) = count_allocs(|| {
        for ch in &parsed {
            black_box(md5_hex(&ja3(ch)));
        }
    });
    eprintln!(
        "allocations: JA3+MD5 {:.1}/hello ({:.0} B)",
        per(a, n),
        per(bytes, n)
    );
    let (_, a, bytes) = count_allocs(|| {
        for ch in &parsed {
            black_box(ja4(ch, Transport::Tcp));
        }
    });
    eprintln!(
        "allocations: JA4 {:.1}/hello ({:.0} B)",
        per(a, n),
        per(bytes, n)
    );
    let (_, a, _) = count_allocs(|| {
        for m in &hellos.server {
            black_box(parse_server_hello(m).map(|sh| md5_hex(&ja3s(&sh))));
        }
    });
    eprintln!(
        "allocations: ServerHello parse+JA3S {:.1}/hello",
        per(a, hellos.server.len())
    );
    let (_, a, bytes) = count_allocs(|| {
        for der in &hellos.certs {
            black_box(CertSummary::from_der(der).ok());
        }
    });
    eprintln!(
        "allocations: certificate summary {:.1}/certificate ({:.0} B)",
        per(a, hellos.certs.len()),
        per(bytes, hellos.certs.len())
    );
    let (_, a, bytes) = count_allocs(|| {
        for d in dialogues {
            black_box(run_smtp(d.conn));
        }
    });
    eprintln!(
        "allocations: SMTP dialogue {:.1}/dialogue ({:.0} B)",
        per(a, dialogues.len()),
        per(bytes, dialogues.len())
    );
    for (name, set) in [("to_server", &flights[0]), ("to_client", &flights[1])] {
        let (_, a, bytes) = count_allocs(|| {
            for f in set {
                black_box(run_tls(f));
            }
        });
        eprintln!(
            "allocations: TLS parser {name} {:.1}/handshake ({:.0} B)",
            per(a, set.len()),
            per(bytes, set.len())
        );
    }
}

criterion_group! {
    name = parsers;
    config = config();
    targets = benches
}
criterion_main!(parsers);
