//! Where `mailtls report` gets its records: JSONL files (as `read`/`capture --jsonl` write
//! them) and the raw ClickHouse table.
//!
//! ClickHouse is read over plain HTTP (`http://host:8123`) with one
//! `SELECT * FROM db.table WHERE ts_start ... FORMAT JSONEachRow` query (after a look at
//! `system.columns` to tell a legacy table, with `ts_start Int64` microseconds and
//! `FixedString(16)` addresses, from a modern one), sent by a minimal blocking HTTP/1.0
//! client. `https://` is not supported for report input (put a
//! local TLS-terminating proxy in front, or export JSONL with `clickhouse-client`). Rows are
//! normalised to the JSONL form before they are deserialised: IPv4-mapped IPv6 addresses
//! (`::ffff:1.2.3.4`) become IPv4, `DateTime64` text (`2026-11-22 21:45:14.123456`) becomes
//! RFC 3339, and `0`/`1` become booleans where the record has a boolean (legacy servers
//! store `Bool` as `UInt8`).

use mailtls_storage::sink::clickhouse::Credentials;
use mailtls_storage::{SessionRecord, Timestamp};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Time window applied to every input (inclusive); `None` is unbounded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// Earliest `ts_start`.
    pub from: Option<Timestamp>,
    /// Latest `ts_start`.
    pub to: Option<Timestamp>,
}

impl Window {
    /// Whether a record's start lies in the window.
    pub fn contains(&self, ts: Timestamp) -> bool {
        self.from.is_none_or(|f| ts >= f) && self.to.is_none_or(|t| ts <= t)
    }
}

/// Reads one JSONL file (or stdin for "-"), calling `f` for every record in the window.
/// Blank lines are skipped; a line that is not a record is an error naming the line.
pub fn read_jsonl(
    path: &str,
    window: Window,
    f: &mut dyn FnMut(SessionRecord),
) -> Result<u64, String> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
        Box::new(BufReader::new(file))
    };
    let mut n = 0;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{path}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: SessionRecord = serde_json::from_str(&line)
            .map_err(|e| format!("{path}:{}: not a session record: {e}", i + 1))?;
        if window.contains(r.ts_start) {
            n += 1;
            f(r);
        }
    }
    Ok(n)
}

/// Where and how to query ClickHouse.
#[derive(Debug, Clone)]
pub struct ClickhouseSource {
    /// `http://host:port` (a path after the port is ignored).
    pub url: String,
    /// Database of the raw table.
    pub database: String,
    /// Raw session table.
    pub table: String,
    /// User and password (sent as X-ClickHouse-User / X-ClickHouse-Key).
    pub credentials: Credentials,
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn ch_time(ts: Timestamp) -> String {
    // toDateTime64('2026-11-22 21:45:14.123456', 6, 'UTC')
    let t = ts.to_rfc3339();
    format!(
        "toDateTime64('{}', 6, 'UTC')",
        t.trim_end_matches('Z').replace('T', " ")
    )
}

impl ClickhouseSource {
    /// The query for a window on a modern server.
    pub fn query(&self, window: Window) -> Result<String, String> {
        self.query_for(window, false)
    }

    /// The query for a window; `legacy`: ts_start is Int64 microseconds. IP columns (IPv6
    /// or FixedString(16)) are also fetched as text (`*_ip_text`).
    pub fn query_for(&self, window: Window, legacy: bool) -> Result<String, String> {
        if !is_identifier(&self.database) || !is_identifier(&self.table) {
            return Err("--clickhouse-database/--clickhouse-table: letters, digits, _ only".into());
        }
        let bound = |ts: Timestamp| {
            if legacy {
                ts.micros().to_string()
            } else {
                ch_time(ts)
            }
        };
        let mut conds = Vec::new();
        if let Some(f) = window.from {
            conds.push(format!("ts_start >= {}", bound(f)));
        }
        if let Some(t) = window.to {
            conds.push(format!("ts_start <= {}", bound(t)));
        }
        let cond = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        Ok(format!(
            "SELECT *, IPv6NumToString(client_ip) AS client_ip_text, \
             IPv6NumToString(server_ip) AS server_ip_text FROM {}.{}{cond} \
             ORDER BY ts_start FORMAT JSONEachRow",
            self.database, self.table
        ))
    }

    /// Sends one query over HTTP; returns the response body.
    fn post(&self, query: &str) -> Result<String, String> {
        let rest = self.url.strip_prefix("http://").ok_or_else(|| {
            "--clickhouse: report input supports http:// URLs only (not https)".to_string()
        })?;
        let hostport = rest.split('/').next().unwrap_or_default();
        let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
            hostport.to_string()
        } else {
            format!("{hostport}:8123")
        };
        let host = hostport
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&hostport);
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| format!("--clickhouse {hostport}: {e}"))?
            .next()
            .ok_or_else(|| format!("--clickhouse {hostport}: no address"))?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("connecting to {hostport}: {e}"))?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(300)));
        let mut req = format!(
            "POST /?output_format_json_quote_64bit_integers=0 HTTP/1.0\r\nHost: {host}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
            query.len()
        );
        if let Some(u) = &self.credentials.user {
            req.push_str(&format!("X-ClickHouse-User: {u}\r\n"));
        }
        if let Some(p) = &self.credentials.password {
            req.push_str(&format!("X-ClickHouse-Key: {p}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(query);
        s.write_all(req.as_bytes())
            .map_err(|e| format!("sending query to {hostport}: {e}"))?;
        let mut resp = Vec::new();
        (&mut s)
            .take(MAX_RESPONSE_BYTES + 1)
            .read_to_end(&mut resp)
            .map_err(|e| format!("reading from {hostport}: {e}"))?;
        if resp.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(format!(
                "ClickHouse answer from {hostport} is larger than {} GiB; narrow the time window",
                MAX_RESPONSE_BYTES >> 30
            ));
        }
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("ClickHouse: malformed HTTP response")?;
        let head = String::from_utf8_lossy(&resp[..split]).to_string();
        let mut body = resp[split + 4..].to_vec();
        let status = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("");
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        if status != "200" {
            return Err(format!(
                "ClickHouse answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Runs the query and calls `f` for every record.
    pub fn read(&self, window: Window, f: &mut dyn FnMut(SessionRecord)) -> Result<u64, String> {
        // Legacy servers (before 23.8) store ts_start as Int64 microseconds, modern ones as
        // DateTime64(6): ask which, to filter the window on the server.
        let kind = self.post(&format!(
            "SELECT type FROM system.columns WHERE database = '{}' AND table = '{}' AND name = 'ts_start' FORMAT TabSeparated",
            self.database, self.table
        ))?;
        let legacy = kind.trim() == "Int64";
        let query = self.query_for(window, legacy)?;
        let text = self.post(&query)?;
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value =
                serde_json::from_str(line).map_err(|e| format!("ClickHouse row {}: {e}", i + 1))?;
            let r = row_to_record(v).map_err(|e| format!("ClickHouse row {}: {e}", i + 1))?;
            if window.contains(r.ts_start) {
                n += 1;
                f(r);
            }
        }
        Ok(n)
    }
}

/// Decodes an HTTP/1.1 chunked body; stops at the last chunk or at the first malformed or
/// truncated one. The sizes come from the server (or whoever is on the path): all arithmetic
/// is checked, so a size like `ffffffffffffffff` ends the body instead of a panic.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        let start = eol + 2;
        let Some(chunk) = start
            .checked_add(size)
            .filter(|_| size > 0)
            .and_then(|end| b.get(start..end))
        else {
            break;
        };
        out.extend_from_slice(chunk);
        b = b.get(start + size + 2..).unwrap_or_default();
    }
    out
}

/// Largest ClickHouse answer `report` reads into memory (a bound against a server, or
/// something on the path, that never stops sending).
const MAX_RESPONSE_BYTES: u64 = 4 << 30;

const BOOL_FIELDS: &[&str] = &[
    "starttls_offered",
    "starttls_requested",
    "auth_cleartext",
    "tls_fallback_scsv",
    "tls_hello_retry",
    "tls_resumed",
    "tls_established",
    "cert_self_signed",
    "midstream",
];
const TIME_FIELDS: &[&str] = &["ts_start", "ts_end", "cert_not_before", "cert_not_after"];
const IP_FIELDS: &[&str] = &["client_ip", "server_ip"];

/// Maps one JSONEachRow object of the raw table to a record (see the module doc).
pub fn row_to_record(mut v: Value) -> Result<SessionRecord, String> {
    let obj = v.as_object_mut().ok_or("not a JSON object")?;
    for k in BOOL_FIELDS {
        if let Some(x) = obj.get_mut(*k) {
            if let Some(n) = x.as_u64() {
                *x = Value::Bool(n != 0);
            }
        }
    }
    for k in TIME_FIELDS {
        if let Some(x) = obj.get_mut(*k) {
            if let Some(t) = x.as_str() {
                *x = Value::String(ch_time_to_rfc3339(t));
            } else if let Some(n) = x.as_i64() {
                *x = Value::String(Timestamp(n).to_rfc3339());
            }
        }
    }
    for k in IP_FIELDS {
        if let Some(text) = obj.remove(&format!("{k}_text")) {
            obj.insert((*k).to_string(), text);
        }
        if let Some(x) = obj.get_mut(*k) {
            if let Some(ip) = x.as_str().and_then(|t| t.parse::<IpAddr>().ok()) {
                *x = Value::String(ip.to_canonical().to_string());
            }
        }
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// `2026-11-22 21:45:14.123456` (UTC) to `2026-11-22T21:45:14.123456Z`; RFC 3339 unchanged.
fn ch_time_to_rfc3339(t: &str) -> String {
    if t.len() >= 19 && t.as_bytes()[10] == b' ' {
        format!("{}T{}Z", &t[..10], &t[11..])
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunk_joins_chunks_up_to_the_last() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n";
        assert_eq!(dechunk(body), b"Wikipedia");
    }

    #[test]
    fn dechunk_stops_at_a_truncated_or_lying_chunk() {
        assert_eq!(dechunk(b"4\r\nWiki\r\n9\r\nped"), b"Wiki");
        assert_eq!(dechunk(b"4\r\nWiki"), b"Wiki");
        assert_eq!(dechunk(b"zz\r\nWiki\r\n"), b"");
        // Sizes that overflow `usize` arithmetic end the body (they used to panic).
        for size in ["ffffffffffffffff", "fffffffffffffffe", "fffffffffffffff0"] {
            let body = format!("{size}\r\nxxxxxxxxxxxxxxxxxxxxxxxx");
            assert_eq!(dechunk(body.as_bytes()), b"");
            let body = format!("2\r\nok\r\n{size}\r\nxx");
            assert_eq!(dechunk(body.as_bytes()), b"ok");
        }
    }

    #[test]
    fn clickhouse_row_maps_to_record() {
        let row = serde_json::json!({
            "ts_start": "2026-11-22 21:45:14.123456",
            "client_ip": "::ffff:127.0.1.8",
            "server_ip": "2001:db8::1",
            "starttls_offered": 1,
            "tls_established": true,
            "cert_not_after": null,
            "direction": "outbound",
            "outcome": "tls",
            "session_id": 42,
            "batch_id": "x"
        });
        let r = row_to_record(row).unwrap();
        assert_eq!(r.ts_start.to_rfc3339(), "2026-11-22T21:45:14.123456Z");
        assert_eq!(r.client_ip.to_string(), "127.0.1.8");
        assert_eq!(r.server_ip.to_string(), "2001:db8::1");
        assert_eq!(r.starttls_offered, Some(true));
        assert!(r.tls_established);
    }

    #[test]
    fn query_has_window_and_rejects_bad_names() {
        let src = ClickhouseSource {
            url: "http://localhost:8123".into(),
            database: "mailtls".into(),
            table: "sessions".into(),
            credentials: Credentials::default(),
        };
        let w = Window {
            from: Timestamp::parse_rfc3339("2026-11-22T00:00:00Z"),
            to: None,
        };
        let q = src.query(w).unwrap();
        assert!(q.contains("ts_start >= toDateTime64('2026-11-22 00:00:00.000000', 6, 'UTC')"));
        let bad = ClickhouseSource {
            table: "x; DROP".into(),
            ..src
        };
        assert!(bad.query(w).is_err());
    }

    #[test]
    fn chunked_body() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
