//! The terminal report of a run: the questions a mail admin asks, answered from the records.
//!
//! [`Summary`] folds records one at a time (so it works on a stream of any length, holding
//! only per-peer aggregates), and [`Summary::render`] prints it with the run's counters.
//!
//! `mailtls report` ([`run`]) answers the same questions from recorded sessions (JSONL files
//! or the ClickHouse raw table, [`input`]), and optionally: the sessions and peers that would
//! fail under a minimum TLS version ([`minversion`]), a self-contained HTML page with SVG
//! charts ([`html`]), and RFC 8460 TLSRPT aggregate reports of outbound sessions ([`tlsrpt`]).

pub mod html;
pub mod input;
pub mod minversion;
pub mod peer_name;
pub mod tlsrpt;

use crate::cli::ReportArgs;
use crate::session::RecordContext;
use std::process::ExitCode;

use mailtls_parsers::registry::{cipher_suite, version_name, version_rank};
use mailtls_storage::record::Name;
use mailtls_storage::{SessionRecord, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::net::IpAddr;

/// Rank of TLS 1.2 in [`version_rank`] terms.
const TLS12_RANK: u8 = 5;

/// Whether version `code` is a better "best version" of a peer than `than`: a higher
/// [`version_rank`], and of two codes of one rank (TLS 1.3 and its drafts, TLS and DTLS) the
/// lower code, so a peer's best version does not depend on the order of its records.
pub(crate) fn better_version(code: u16, than: u16) -> bool {
    (version_rank(code), std::cmp::Reverse(code)) > (version_rank(than), std::cmp::Reverse(than))
}

/// The best version a record's client offered (code): the highest-ranked of its
/// supported_versions and its legacy_version; 0 without a ClientHello.
pub fn best_offered(r: &SessionRecord) -> u16 {
    if r.tls_client_version == 0 {
        return 0;
    }
    r.tls_client_versions
        .iter()
        .copied()
        .chain(std::iter::once(r.tls_client_version))
        .max_by_key(|v| version_rank(*v))
        .unwrap_or(0)
}

/// Most rows printed per table.
const TOP: usize = 15;

#[derive(Debug, Default, Clone)]
struct Peer {
    /// Sessions counted for the peer.
    sessions: u64,
    /// Its best version (see [`better_version`]), 0 while none.
    best_code: u16,
    /// The name it goes by (see [`peer_name`]).
    name: peer_name::PeerName,
}

impl Peer {
    /// Folds in the aggregate of the same peer's further sessions.
    fn absorb(&mut self, other: Peer) {
        self.sessions += other.sessions;
        if better_version(other.best_code, self.best_code) {
            self.best_code = other.best_code;
        }
        self.name.absorb(&other.name);
    }
}

/// Adds the counts of `from` into `into`, key by key.
fn add_counts<K: Ord>(into: &mut BTreeMap<K, u64>, from: BTreeMap<K, u64>) {
    for (k, n) in from {
        *into.entry(k).or_default() += n;
    }
}

/// [`add_counts`] for a peer table: a key new to a full table is left out, its count
/// joining `untracked` (see [`tracked_sorted`]).
fn add_tracked_counts<K: Ord>(
    into: &mut BTreeMap<K, u64>,
    from: BTreeMap<K, u64>,
    untracked: &mut u64,
) {
    for (k, n) in from {
        if let Some(m) = tracked_sorted(into, k, n, untracked) {
            *m += n;
        }
    }
}

/// Aggregates of a stream of records.
#[derive(Debug, Default)]
pub struct Summary {
    sessions: u64,
    by_mode: BTreeMap<&'static str, u64>,
    by_outcome: BTreeMap<&'static str, u64>,
    by_version: BTreeMap<Name, u64>,
    by_cipher: HashMap<u16, u64>,
    /// Clients by best version they ever offered (only sessions with a ClientHello).
    clients: HashMap<IpAddr, Peer>,
    /// Servers by best version they ever negotiated.
    servers: HashMap<IpAddr, Peer>,
    refusals: BTreeMap<(IpAddr, u16), u64>,
    auth_clear: BTreeMap<(IpAddr, IpAddr, Name), u64>,
    failed_by_alert: BTreeMap<String, u64>,
    /// Sessions of peers not tracked because their table was full ([`MAX_PEERS`]).
    untracked_peer_sessions: u64,
}

/// Most distinct peers (clients, servers, refusing servers, AUTH pairs) each table of the
/// terminal summary tracks: memory must not grow with the size of the capture (a 2 GB
/// capture of 650,000 distinct clients took 90 MB); sessions of further peers are still
/// counted everywhere else, and the report says how many were left out of the peer lists.
pub const MAX_PEERS: usize = 65_536;

/// The entry of `key` in `map`, unless the map is full and does not hold it yet; then the
/// key's `sessions` are counted in `untracked`.
fn tracked<'m, K: std::hash::Hash + Eq, V: Default>(
    map: &'m mut HashMap<K, V>,
    key: K,
    sessions: u64,
    untracked: &mut u64,
) -> Option<&'m mut V> {
    if map.len() >= MAX_PEERS && !map.contains_key(&key) {
        *untracked += sessions;
        return None;
    }
    Some(map.entry(key).or_default())
}

/// [`tracked`] for an ordered table.
fn tracked_sorted<'m, K: Ord, V: Default>(
    map: &'m mut BTreeMap<K, V>,
    key: K,
    sessions: u64,
    untracked: &mut u64,
) -> Option<&'m mut V> {
    if map.len() >= MAX_PEERS && !map.contains_key(&key) {
        *untracked += sessions;
        return None;
    }
    Some(map.entry(key).or_default())
}

impl Summary {
    /// Folds one record in.
    pub fn add(&mut self, r: &SessionRecord) {
        self.sessions += 1;
        *self.by_mode.entry(r.mode.as_str()).or_default() += 1;
        *self.by_outcome.entry(r.outcome.as_str()).or_default() += 1;
        if !r.tls_version.is_empty() {
            *self.by_version.entry(r.tls_version.clone()).or_default() += 1;
            *self.by_cipher.entry(r.tls_cipher_code).or_default() += 1;
        }
        if r.tls_client_version != 0 {
            let best = best_offered(r);
            if let Some(p) = tracked(
                &mut self.clients,
                r.client_ip,
                1,
                &mut self.untracked_peer_sessions,
            ) {
                p.sessions += 1;
                if better_version(best, p.best_code) {
                    p.best_code = best;
                }
                p.name.offer(&r.ehlo_host, r.ts_start);
            }
        }
        if r.tls_version_code != 0 {
            if let Some(p) = tracked(
                &mut self.servers,
                r.server_ip,
                1,
                &mut self.untracked_peer_sessions,
            ) {
                p.sessions += 1;
                if better_version(r.tls_version_code, p.best_code) {
                    p.best_code = r.tls_version_code;
                }
                p.name.offer(&r.smtp_banner_host, r.ts_start);
            }
        }
        if r.starttls_requested && r.starttls_reply != 0 && r.starttls_reply != 220 {
            let key = (r.server_ip, r.starttls_reply);
            if let Some(n) = tracked_sorted(
                &mut self.refusals,
                key,
                1,
                &mut self.untracked_peer_sessions,
            ) {
                *n += 1;
            }
        }
        if r.auth_cleartext {
            let key = (r.client_ip, r.server_ip, r.auth_cleartext_mech.clone());
            if let Some(n) = tracked_sorted(
                &mut self.auth_clear,
                key,
                1,
                &mut self.untracked_peer_sessions,
            ) {
                *n += 1;
            }
        }
        if r.outcome == mailtls_storage::Outcome::TlsFailed {
            let why = if r.tls_alert.is_empty() {
                "no alert (connection closed)".to_string()
            } else {
                format!("{} ({})", r.tls_alert, r.tls_alert_by)
            };
            *self.failed_by_alert.entry(why).or_default() += 1;
        }
    }

    /// Folds in `other`, a summary of further records: the result is the summary of both
    /// sets of records, as if they had been added one by one (every aggregate is a sum, a
    /// best version or a latest name, none depends on order). A peer `other` holds that is
    /// new here while a table is full is left out like a new peer in [`Summary::add`]: its
    /// sessions join the untracked count. Workers fold their own records and the sink stage
    /// merges the parts, so records never cross threads for the report.
    pub fn merge(&mut self, other: Summary) {
        self.sessions += other.sessions;
        self.untracked_peer_sessions += other.untracked_peer_sessions;
        add_counts(&mut self.by_mode, other.by_mode);
        add_counts(&mut self.by_outcome, other.by_outcome);
        add_counts(&mut self.by_version, other.by_version);
        add_counts(&mut self.failed_by_alert, other.failed_by_alert);
        for (code, n) in other.by_cipher {
            *self.by_cipher.entry(code).or_default() += n;
        }
        let untracked = &mut self.untracked_peer_sessions;
        for (table, from) in [
            (&mut self.clients, other.clients),
            (&mut self.servers, other.servers),
        ] {
            for (ip, peer) in from {
                if let Some(p) = tracked(table, ip, peer.sessions, untracked) {
                    p.absorb(peer);
                }
            }
        }
        add_tracked_counts(&mut self.refusals, other.refusals, untracked);
        add_tracked_counts(&mut self.auth_clear, other.auth_clear, untracked);
    }

    /// Sessions folded so far.
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// The report as text; `counters` are the run's `name: value` lines.
    pub fn render(&self, counters: &str) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "mailtls report: {} sessions", self.sessions);
        section(&mut o, "Sessions by mode");
        counts(
            &mut o,
            self.by_mode.iter().map(|(k, v)| (k.to_string(), *v)),
            self.sessions,
        );
        section(&mut o, "Sessions by outcome");
        counts(
            &mut o,
            self.by_outcome.iter().map(|(k, v)| (k.to_string(), *v)),
            self.sessions,
        );
        section(&mut o, "Negotiated TLS versions");
        let tls_total: u64 = self.by_version.values().sum();
        counts(
            &mut o,
            self.by_version.iter().map(|(k, v)| (k.to_string(), *v)),
            tls_total,
        );

        section(&mut o, "Top negotiated cipher suites");
        let mut ciphers: Vec<_> = self.by_cipher.iter().collect();
        ciphers.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (code, n) in ciphers.into_iter().take(TOP) {
            let (name, class) = cipher_suite(*code)
                .map(|c| (c.name, c.class.as_str()))
                .unwrap_or(("unknown", "unknown"));
            let _ = writeln!(o, "  {n:>8}  {name} (0x{code:04x}) [{class}]");
        }

        section(
            &mut o,
            "Clients whose best offered version is below TLS 1.2",
        );
        peers_below(&mut o, &self.clients, "client");
        section(
            &mut o,
            "Servers whose best negotiated version is below TLS 1.2",
        );
        peers_below(&mut o, &self.servers, "server");

        if self.untracked_peer_sessions > 0 {
            let _ = writeln!(
                o,
                "  (peer lists hold the first {MAX_PEERS} distinct peers each; {} sessions of \
                 further peers are counted above but not listed)",
                self.untracked_peer_sessions
            );
        }
        section(&mut o, "STARTTLS refusals (server, reply code)");
        if self.refusals.is_empty() {
            let _ = writeln!(o, "  none");
        }
        for ((ip, code), n) in self.refusals.iter().take(TOP) {
            let _ = writeln!(o, "  {n:>8}  {ip} replied {code}");
        }
        section(&mut o, "AUTH in clear text (client -> server, mechanism)");
        if self.auth_clear.is_empty() {
            let _ = writeln!(o, "  none");
        }
        for ((c, s, m), n) in self.auth_clear.iter().take(TOP) {
            let _ = writeln!(o, "  {n:>8}  {c} -> {s} AUTH {m}");
        }
        section(&mut o, "Failed TLS handshakes (first alert)");
        if self.failed_by_alert.is_empty() {
            let _ = writeln!(o, "  none");
        }
        counts(
            &mut o,
            self.failed_by_alert.iter().map(|(k, v)| (k.clone(), *v)),
            0,
        );

        section(&mut o, "Capture statistics");
        for line in counters.lines() {
            let _ = writeln!(o, "  {line}");
        }
        o
    }
}

/// `mailtls report`: reads the inputs once, folding every record into the requested views.
pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let parse_time = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<Timestamp>> {
        match v {
            None => Ok(None),
            Some(t) => Timestamp::parse_rfc3339(t)
                .map(Some)
                .ok_or_else(|| anyhow::anyhow!("{flag}: not an RFC 3339 time: {t:?}")),
        }
    };
    let window = input::Window {
        from: parse_time("--from", &args.from)?,
        to: parse_time("--to", &args.to)?,
    };
    if args.jsonl.is_empty() && args.clickhouse.is_none() {
        anyhow::bail!("no input: give JSONL files and/or --clickhouse URL");
    }
    let mut summary = Summary::default();
    let mut min = match &args.min_version {
        Some(v) => Some(minversion::MinVersion::new(v).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut html = args.html.as_ref().map(|_| html::HtmlReport::default());
    let mut rpt = args.tlsrpt.as_ref().map(|_| tlsrpt::Tlsrpt::default());
    let ctx = RecordContext {
        sensor: String::new(),
        local_nets: args.local_nets.clone(),
    };
    let mut fold = |mut r: SessionRecord| {
        if !ctx.local_nets.is_empty() {
            r.direction = ctx.direction(r.client_ip, r.server_ip);
        }
        summary.add(&r);
        if let Some(m) = &mut min {
            m.add(&r);
        }
        if let Some(h) = &mut html {
            h.add(&r);
        }
        if let Some(t) = &mut rpt {
            t.add(&r);
        }
    };
    let mut sources = Vec::new();
    for path in &args.jsonl {
        let n = input::read_jsonl(path, window, &mut fold).map_err(anyhow::Error::msg)?;
        sources.push(format!("{path}: {n} records"));
    }
    if let Some(url) = &args.clickhouse {
        let credentials = mailtls_storage::sink::clickhouse::Credentials::resolve(
            args.user.as_deref(),
            args.password.as_deref(),
            args.credentials.as_deref(),
            |k| std::env::var(k).ok(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let src = input::ClickhouseSource {
            url: url.clone(),
            database: args.database.clone(),
            table: args.table.clone(),
            credentials,
            ca_file: args.ca_file.clone(),
        };
        let n = src.read(window, &mut fold).map_err(anyhow::Error::msg)?;
        sources.push(format!(
            "{url} {}.{}: {n} records",
            args.database, args.table
        ));
    }
    let range = match (window.from, window.to) {
        (None, None) => String::new(),
        (f, t) => format!(
            "time range: {} .. {}",
            f.map_or("-".into(), Timestamp::to_rfc3339),
            t.map_or("-".into(), Timestamp::to_rfc3339)
        ),
    };
    let mut counters = sources.join("\n");
    if !range.is_empty() {
        counters.push('\n');
        counters.push_str(&range);
    }
    print!("{}", summary.render(&counters));
    if let Some(m) = &min {
        print!("{}", m.render());
    }
    if let (Some(h), Some(path)) = (&html, &args.html) {
        let mut source = sources.join("; ");
        if !range.is_empty() {
            source = format!("{source}; {range}");
        }
        std::fs::write(path, h.render(&source))
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        println!("\nHTML report written to {}", path.display());
    }
    if let (Some(t), Some(dir)) = (&rpt, &args.tlsrpt) {
        let paths = t
            .write(
                dir,
                &args.tlsrpt_org,
                &args.tlsrpt_contact,
                (window.from, window.to),
            )
            .map_err(anyhow::Error::msg)?;
        print!("{}", t.render(&paths));
    }
    Ok(ExitCode::SUCCESS)
}

fn section(o: &mut String, title: &str) {
    let _ = writeln!(o, "\n{title}");
}

fn counts(o: &mut String, rows: impl Iterator<Item = (String, u64)>, total: u64) {
    let mut rows: Vec<_> = rows.collect();
    if rows.is_empty() {
        let _ = writeln!(o, "  none");
    }
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (k, v) in rows {
        if total > 0 {
            let pct = v as f64 * 100.0 / total as f64;
            let _ = writeln!(o, "  {v:>8}  {pct:5.1}%  {k}");
        } else {
            let _ = writeln!(o, "  {v:>8}  {k}");
        }
    }
}

fn peers_below(o: &mut String, peers: &HashMap<IpAddr, Peer>, what: &str) {
    let mut below: Vec<_> = peers
        .iter()
        .filter(|(_, p)| version_rank(p.best_code) < TLS12_RANK)
        .collect();
    below.sort_by(|a, b| b.1.sessions.cmp(&a.1.sessions).then(a.0.cmp(b.0)));
    if below.is_empty() {
        let _ = writeln!(o, "  none");
    }
    let n = below.len();
    for (ip, p) in below.into_iter().take(TOP) {
        let best = version_name(p.best_code);
        let best = if best.is_empty() { "unknown" } else { best };
        let _ = writeln!(
            o,
            "  {:>8}  {ip} {} best {best}",
            p.sessions,
            p.name.or_dash()
        );
    }
    if n > TOP {
        let _ = writeln!(o, "  ... and {} more {what}s", n - TOP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_best_version_of_one_rank_does_not_depend_on_order() {
        // TLS 1.3 and its draft 28 share a rank, as TLS 1.2 and DTLS 1.2 do.
        for (a, b) in [(0x0304, 0x7f1c), (0x0303, 0xfefd)] {
            assert!(
                better_version(a, b) && !better_version(b, a),
                "{a:#x} {b:#x}"
            );
        }
        assert!(better_version(0x0303, 0x0302) && !better_version(0x0302, 0x0303));
        assert!(
            !better_version(0x0301, 0x0301),
            "a version is not better than itself"
        );
        assert!(better_version(0x0300, 0), "any known version beats none");
    }

    #[test]
    fn peer_tables_stop_growing_at_the_cap() {
        let mut s = Summary::default();
        let extra = 10u32;
        for i in 0..MAX_PEERS as u32 + extra {
            let r = SessionRecord {
                client_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                tls_client_version: 0x0301,
                ..SessionRecord::default()
            };
            s.add(&r);
        }
        assert_eq!(s.sessions, u64::from(MAX_PEERS as u32 + extra));
        assert_eq!(s.clients.len(), MAX_PEERS);
        assert_eq!(s.untracked_peer_sessions, u64::from(extra));
        // A tracked client keeps being counted.
        s.add(&SessionRecord {
            client_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000)),
            tls_client_version: 0x0301,
            ..SessionRecord::default()
        });
        assert_eq!(s.untracked_peer_sessions, u64::from(extra));
        assert!(s
            .render("")
            .contains("10 sessions of further peers are counted above but not listed"));
    }

    /// Records that touch every table: clients and servers seen under several names and
    /// versions, refusals, AUTH in clear, failed handshakes with and without an alert.
    fn varied_records() -> Vec<SessionRecord> {
        use mailtls_storage::{Mode, Outcome};
        let names = ["a.test", "", "b.test", "c.test"];
        (0..240u32)
            .map(|i| {
                let mut r = SessionRecord {
                    ts_start: Timestamp(i64::from(i % 17) * 1_000),
                    client_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i % 11)),
                    server_ip: IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i % 5)),
                    ehlo_host: names[(i % 4) as usize].to_string(),
                    smtp_banner_host: names[(i % 3) as usize].to_string(),
                    ..SessionRecord::default()
                };
                match i % 6 {
                    0 | 1 => {
                        r.mode = Mode::Starttls;
                        r.outcome = Outcome::Tls;
                        r.tls_client_version = 0x0303;
                        r.tls_client_versions = if i % 4 == 0 { vec![0x0304] } else { vec![] };
                        r.tls_version_code = [0x0301, 0x0303, 0x0304][(i % 3) as usize];
                        r.tls_version = version_name(r.tls_version_code).into();
                        if r.tls_version_code == 0x0301 {
                            // Servers only ever at TLS 1.0, listed with their name.
                            r.server_ip = IpAddr::V4(Ipv4Addr::from(0xc000_0300 + i / 6 % 2));
                        }
                        r.tls_cipher_code = [0x1301, 0xc02f, 0x000a][(i % 3) as usize];
                    }
                    2 => {
                        r.outcome = Outcome::TlsFailed;
                        r.tls_client_version = 0x0301;
                        // Clients only ever offering TLS 1.0, listed with their name.
                        r.client_ip = IpAddr::V4(Ipv4Addr::from(0x0a00_1000 + i / 6 % 3));
                        if i % 4 == 0 {
                            r.tls_alert = "handshake_failure".into();
                            r.tls_alert_by = "server".into();
                        }
                    }
                    3 => {
                        r.outcome = Outcome::StarttlsRefused;
                        r.starttls_requested = true;
                        r.starttls_reply = [454, 502][(i / 6 % 2) as usize];
                    }
                    4 => {
                        r.mode = Mode::Plaintext;
                        r.auth_cleartext = true;
                        r.auth_cleartext_mech = ["PLAIN", "LOGIN"][(i / 6 % 2) as usize].into();
                    }
                    _ => r.mode = Mode::Plaintext,
                }
                r
            })
            .collect()
    }

    #[test]
    fn merged_parts_equal_one_fold_of_all_records() {
        let records = varied_records();
        let mut whole = Summary::default();
        records.iter().for_each(|r| whole.add(r));
        let expected = whole.render("");
        assert!(expected.contains("replied 454") && expected.contains("AUTH PLAIN"));
        assert!(expected.contains("handshake_failure (server)"));
        assert!(expected.contains("10.0.16.0 ") && expected.contains("192.0.3.1 "));
        // Parts as workers make them: records dealt out round-robin, in runs, or unevenly.
        for parts in [1usize, 2, 3, 4, 7] {
            for dealt in [false, true] {
                let mut folded: Vec<Summary> = (0..parts).map(|_| Summary::default()).collect();
                for (i, r) in records.iter().enumerate() {
                    let part = if dealt {
                        i % parts
                    } else {
                        i * parts / records.len()
                    };
                    folded[part].add(r);
                }
                let mut merged = Summary::default();
                // Merged in reverse, so the later records' parts come first.
                for s in folded.into_iter().rev() {
                    merged.merge(s);
                }
                assert_eq!(merged.render(""), expected, "{parts} parts, dealt {dealt}");
            }
        }
    }

    #[test]
    fn a_merge_past_the_cap_counts_the_left_out_peers_sessions() {
        let client = |i: u32| SessionRecord {
            client_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            tls_client_version: 0x0301,
            ..SessionRecord::default()
        };
        let mut full = Summary::default();
        (0..MAX_PEERS as u32).for_each(|i| full.add(&client(i)));
        // A part with a tracked client (2 sessions) and two new ones (3 and 1 sessions).
        let mut part = Summary::default();
        for i in [0, 0, 1 << 20, 1 << 20, 1 << 20, (1 << 20) + 1] {
            part.add(&client(i));
        }
        full.merge(part);
        assert_eq!(full.clients.len(), MAX_PEERS);
        assert_eq!(full.untracked_peer_sessions, 4);
        assert_eq!(full.sessions, MAX_PEERS as u64 + 6);
        let first = full.clients.get(&client(0).client_ip).map(|p| p.sessions);
        assert_eq!(first, Some(3), "the tracked client's sessions are added");
    }
}
