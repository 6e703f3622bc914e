//! `SmtpParser::feed` on both directions, split at arbitrary points, with gaps.
//!
//! Input: the chunk format of `mailtls_fuzz` (one chunk per segment). The harness keeps a
//! per-direction buffer the way the session does (feed, drop what was consumed, keep the
//! rest for the next call) and checks the parser's contract after every call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtls_parsers::smtp::{
    Phase, SmtpParser, MAX_CAPABILITIES, MAX_HOST_LEN, MAX_LINE_LEN, MAX_PENDING_COMMANDS,
};
use mailtls_parsers::Dir;

const DIRS: [Dir; 2] = [Dir::ToServer, Dir::ToClient];

fuzz_target!(|data: &[u8]| {
    let mut p = SmtpParser::new();
    let mut buf: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for c in mailtls_fuzz::chunks(data) {
        let i = c.dir_index();
        let dir = DIRS[i];
        if c.gap() {
            buf[i].clear();
            p.gap(dir);
        }
        buf[i].extend_from_slice(c.data);
        if c.hold() {
            continue;
        }
        let before = p.phase();
        let used = p.feed(dir, &buf[i]);
        assert!(used <= buf[i].len(), "feed used {used} of {}", buf[i].len());
        if before != Phase::Dialogue {
            assert_eq!(used, 0, "bytes consumed after the dialogue ended");
        }
        buf[i].drain(..used);
        if dir == Dir::ToClient && p.phase() == Phase::Dialogue {
            // Server lines never wait on the client: only a partial line is left over.
            assert!(buf[i].len() < MAX_LINE_LEN, "{} bytes left", buf[i].len());
            assert!(!buf[i].contains(&b'\n'), "a whole line was left unconsumed");
        }
        // Feeding the rest again without new bytes consumes nothing more.
        if p.phase() == Phase::Dialogue && dir == Dir::ToClient {
            assert_eq!(p.feed(dir, &buf[i]), 0);
        }
        let s = &p.summary;
        assert!(s.capabilities.len() <= MAX_CAPABILITIES);
        assert!(s.auth_mechs.len() <= MAX_CAPABILITIES);
        assert!(s.banner_host.chars().count() <= MAX_HOST_LEN);
        assert!(s.ehlo_host.chars().count() <= MAX_HOST_LEN);
        assert!(s.dropped_commands as usize <= s.commands as usize);
        let _ = MAX_PENDING_COMMANDS;
        let _ = p.awaiting_starttls_reply();
        let _ = p.looks_like_smtp();
    }
    if p.phase() == Phase::Dialogue {
        p.force_tls();
        assert_eq!(p.phase(), Phase::Tls);
        assert_eq!(p.feed(Dir::ToServer, b"EHLO x\r\n"), 0);
    }
});
