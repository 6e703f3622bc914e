//! Where `mailtls report` gets its records: JSONL files (as `read`/`capture --jsonl` write
//! them) and the raw ClickHouse table.
//!
//! ClickHouse is read with one `SELECT * FROM db.table WHERE ts_start ... FORMAT
//! JSONEachRow` query (after a look at `system.columns` to tell a legacy table, with
//! `ts_start Int64` microseconds and `FixedString(16)` addresses, from a modern one), over the
//! ClickHouse sink's client (the `clickhouse` crate: http or https, credentials, a CA file),
//! the answer taken line by line as it streams in. Rows are
//! normalised to the JSONL form before they are deserialised: IPv4-mapped IPv6 addresses
//! (`::ffff:1.2.3.4`) become IPv4, `DateTime64` text (`2026-11-22 21:45:14.123456`) becomes
//! RFC 3339, and `0`/`1` become booleans where the record has a boolean (legacy servers
//! store `Bool` as `UInt8`).

use mailtls_storage::sink::clickhouse::{read, ClickhouseConfig, Credentials};
use mailtls_storage::{SessionRecord, Timestamp};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::PathBuf;
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
    /// User and password.
    pub credentials: Credentials,
    /// Extra PEM CA certificates trusted for https.
    pub ca_file: Option<PathBuf>,
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

    fn client_config(&self) -> ClickhouseConfig {
        let mut cfg = ClickhouseConfig::new(self.url.clone());
        cfg.credentials = self.credentials.clone();
        cfg.ca_file = self.ca_file.clone();
        cfg
    }

    /// Runs `sql` and calls `on_line` for every line of the answer.
    fn run_query(
        &self,
        sql: &str,
        format: &str,
        on_line: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        // Integers as JSON numbers (UInt64 would otherwise be quoted).
        let settings = [("output_format_json_quote_64bit_integers", "0")];
        read::query_lines_blocking(
            &self.client_config(),
            sql,
            format,
            &settings,
            QUERY_TIMEOUT,
            on_line,
        )
        .map_err(|e| e.to_string())
    }

    /// Runs the query and calls `f` for every record.
    pub fn read(&self, window: Window, f: &mut dyn FnMut(SessionRecord)) -> Result<u64, String> {
        // Legacy servers (before 23.8) store ts_start as Int64 microseconds, modern ones as
        // DateTime64(6): ask which, to filter the window on the server.
        let mut kind = String::new();
        self.run_query(
            &format!(
                "SELECT type FROM system.columns WHERE database = '{}' AND table = '{}' AND name = 'ts_start' FORMAT TabSeparated",
                self.database, self.table
            ),
            "TabSeparated",
            &mut |line| {
                kind.push_str(&String::from_utf8_lossy(line));
                Ok(())
            },
        )?;
        let legacy = kind.trim() == "Int64";
        let query = self.query_for(window, legacy)?;
        let mut n = 0;
        let mut row = 0;
        self.run_query(&query, "JSONEachRow", &mut |line| {
            row += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            // Binary columns (IPv6, FixedString) come as raw bytes inside JSON strings: made
            // valid UTF-8 first (their text forms, `*_ip_text`, are what is used).
            let v: Value = serde_json::from_str(&String::from_utf8_lossy(line))
                .map_err(|e| format!("ClickHouse row {row}: {e}"))?;
            let r = row_to_record(v).map_err(|e| format!("ClickHouse row {row}: {e}"))?;
            if window.contains(r.ts_start) {
                n += 1;
                f(r);
            }
            Ok(())
        })?;
        Ok(n)
    }
}

/// Longest wait for the next bytes of an answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(300);

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
            ca_file: None,
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
}
