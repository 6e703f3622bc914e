//! Replays the inputs kept in fuzz/regressions/{smtp,tls,certificate}/ (inputs that once
//! made a fuzz target fail, see fuzz/CAMPAIGN.md) through the parsers, the way the fuzz
//! targets drive them, so that they keep passing without cargo-fuzz. A new crash input goes
//! into the directory of its target; this test picks it up.

use mailtls_parsers::fingerprint::{ja3, ja3s, ja4, Transport};
use mailtls_parsers::smtp::SmtpParser;
use mailtls_parsers::tls::{CertSummary, TlsParser};
use mailtls_parsers::Dir;
use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    out.sort();
    out
}

/// The chunk format of fuzz/src/lib.rs: `[ctrl][len u16 LE][bytes]`...
fn chunks(mut data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let Some((&ctrl, rest)) = data.split_first() {
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => (rest.len(), &rest[rest.len()..]),
        };
        let len = len.min(rest.len());
        out.push((ctrl, &rest[..len]));
        data = &rest[len..];
    }
    out
}

const DIRS: [Dir; 2] = [Dir::ToServer, Dir::ToClient];

fn replay_smtp(data: &[u8]) {
    let mut p = SmtpParser::new();
    let mut buf: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for (ctrl, bytes) in chunks(data) {
        let i = usize::from(ctrl & 1);
        if ctrl & 2 != 0 {
            buf[i].clear();
            p.gap(DIRS[i]);
        }
        buf[i].extend_from_slice(bytes);
        if ctrl & 4 != 0 {
            continue;
        }
        let used = p.feed(DIRS[i], &buf[i]);
        assert!(used <= buf[i].len());
        buf[i].drain(..used);
    }
}

fn replay_tls(data: &[u8]) {
    let mut p = TlsParser::new();
    let mut buf: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut now = 1_700_000_000_000_000i64;
    for (ctrl, bytes) in chunks(data) {
        let i = usize::from(ctrl & 1);
        now += i64::from(ctrl >> 4) * 1000;
        if ctrl & 2 != 0 {
            buf[i].clear();
            p.gap(DIRS[i]);
        }
        buf[i].extend_from_slice(bytes);
        if ctrl & 4 != 0 {
            continue;
        }
        let used = p.feed(DIRS[i], &buf[i], now);
        assert!(used <= buf[i].len());
        buf[i].drain(..used);
        let _ = (p.is_resumed(), p.handshake_micros(), p.negotiated_version());
    }
    if let Some(ch) = &p.client_hello {
        let _ = ja3(ch);
        for t in [Transport::Tcp, Transport::Quic, Transport::Dtls] {
            let _ = ja4(ch, t);
        }
    }
    if let Some(sh) = &p.server_hello {
        let _ = ja3s(sh);
    }
}

#[test]
fn smtp_regression_inputs() {
    for (path, data) in inputs("smtp") {
        eprintln!("replaying {}", path.display());
        replay_smtp(&data);
    }
}

#[test]
fn tls_regression_inputs() {
    for (path, data) in inputs("tls") {
        eprintln!("replaying {}", path.display());
        replay_tls(&data);
    }
}

#[test]
fn certificate_regression_inputs() {
    for (path, data) in inputs("certificate") {
        eprintln!("replaying {}", path.display());
        let un = CertSummary::unparsed(&data);
        if let Ok(s) = CertSummary::from_der(&data) {
            assert_eq!(s.sha256, un.sha256);
        }
    }
}

/// The chunk format itself, as the seeds and the fuzz targets read it.
#[test]
fn chunk_format() {
    let data = [1u8, 3, 0, b'a', b'b', b'c', 0, 9, 0, b'x'];
    assert_eq!(chunks(&data), vec![(1, &b"abc"[..]), (0, &b"x"[..])]);
    replay_smtp(&data);
    replay_tls(&data);
}
