//! RowBinary encoding of [`SessionRecord`] and [`SensorStatsRow`], in the column order of
//! [`crate::schema::SESSION_COLUMNS`] and [`crate::schema::SENSOR_STATS_COLUMNS`].
//!
//! The wire format is the same for both server generations (see [`crate::schema`]):
//! integers little-endian, strings as LEB128 length + bytes, arrays as LEB128 count +
//! elements, `Nullable` as a 0/1 null flag + value, addresses as 16 bytes in network order
//! (IPv4 mapped to `::ffff:a.b.c.d`), microsecond timestamps as Int64.

use crate::record::EndReason;
use crate::stats::SensorStatsRow;
use crate::{SessionRecord, Timestamp};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The wire version of the column lists above; stored with each spooled batch so that a
/// later mailtls knows which INSERT column list the bytes belong to.
pub const WIRE_VERSION: u16 = 1;

/// A stable 64-bit key of a session: the first 8 bytes (little-endian) of SHA-256 over
/// sensor, client address and port, server address and port, and `ts_start`. The same
/// session read twice (a capture read again after a crash) gets the same key.
pub fn session_id(r: &SessionRecord) -> u64 {
    let mut h = Sha256::new();
    h.update((r.sensor.len() as u64).to_le_bytes());
    h.update(r.sensor.as_bytes());
    h.update(ip16(r.client_ip));
    h.update(r.client_port.to_le_bytes());
    h.update(ip16(r.server_ip));
    h.update(r.server_port.to_le_bytes());
    h.update(r.ts_start.micros().to_le_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// An address as ClickHouse's IPv6 / FixedString(16): IPv4 becomes `::ffff:a.b.c.d`.
pub fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The snake_case name of an [`EndReason`], as in the JSON record.
pub fn end_reason_str(reason: EndReason) -> &'static str {
    reason.as_str()
}

#[inline]
fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[inline]
fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[inline]
fn boolean(out: &mut Vec<u8>, b: bool) {
    out.push(u8::from(b));
}

#[inline]
fn micros(out: &mut Vec<u8>, t: Timestamp) {
    out.extend_from_slice(&t.micros().to_le_bytes());
}

fn nullable_micros(out: &mut Vec<u8>, t: Option<Timestamp>) {
    match t {
        None => out.push(1),
        Some(t) => {
            out.push(0);
            micros(out, t);
        }
    }
}

fn arr_u16(out: &mut Vec<u8>, v: &[u16]) {
    varint(out, v.len() as u64);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

fn arr_u8(out: &mut Vec<u8>, v: &[u8]) {
    varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

fn arr_str<S: AsRef<str>>(out: &mut Vec<u8>, v: &[S]) {
    varint(out, v.len() as u64);
    for s in v {
        string(out, s.as_ref());
    }
}

/// Appends one `sessions` row: the record's fields, then `session_id` and `batch_id`.
pub fn encode_session(out: &mut Vec<u8>, r: &SessionRecord, session_id: u64, batch_id: &str) {
    micros(out, r.ts_start);
    micros(out, r.ts_end);
    string(out, &r.sensor);
    out.extend_from_slice(&ip16(r.client_ip));
    out.extend_from_slice(&r.client_port.to_le_bytes());
    out.extend_from_slice(&ip16(r.server_ip));
    out.extend_from_slice(&r.server_port.to_le_bytes());
    out.extend_from_slice(&r.vlan.to_le_bytes());
    string(out, r.direction.as_str());
    string(out, r.mode.as_str());
    string(out, &r.smtp_banner_host);
    string(out, &r.ehlo_host);
    string(out, &r.helo_verb);
    arr_str(out, &r.smtp_capabilities);
    match r.starttls_offered {
        None => out.push(1),
        Some(b) => {
            out.push(0);
            boolean(out, b);
        }
    }
    boolean(out, r.starttls_requested);
    out.extend_from_slice(&r.starttls_reply.to_le_bytes());
    arr_str(out, &r.auth_mechs);
    boolean(out, r.auth_cleartext);
    string(out, &r.auth_cleartext_mech);
    out.extend_from_slice(&r.plaintext_mail_tx.to_le_bytes());
    out.extend_from_slice(&r.plaintext_rcpt.to_le_bytes());
    out.extend_from_slice(&r.tls_client_version.to_le_bytes());
    arr_u16(out, &r.tls_client_versions);
    arr_u16(out, &r.tls_client_ciphers);
    arr_u16(out, &r.tls_client_extensions);
    arr_u16(out, &r.tls_client_groups);
    arr_u16(out, &r.tls_client_sigalgs);
    arr_u8(out, &r.tls_client_point_formats);
    string(out, &r.tls_client_max_version);
    string(out, &r.tls_sni);
    arr_str(out, &r.tls_alpn);
    boolean(out, r.tls_fallback_scsv);
    string(out, &r.ja3);
    string(out, &r.ja3_hash);
    string(out, &r.ja3s);
    string(out, &r.ja3s_hash);
    string(out, &r.ja4);
    string(out, &r.tls_version);
    out.extend_from_slice(&r.tls_version_code.to_le_bytes());
    string(out, &r.tls_cipher);
    out.extend_from_slice(&r.tls_cipher_code.to_le_bytes());
    string(out, &r.tls_cipher_class);
    arr_u16(out, &r.tls_server_extensions);
    boolean(out, r.tls_hello_retry);
    boolean(out, r.tls_resumed);
    boolean(out, r.tls_established);
    string(out, &r.tls_alert);
    string(out, &r.tls_alert_by);
    string(out, &r.cert_subject_cn);
    arr_str(out, &r.cert_sans);
    string(out, &r.cert_issuer);
    nullable_micros(out, r.cert_not_before);
    nullable_micros(out, r.cert_not_after);
    string(out, &r.cert_key_alg);
    out.extend_from_slice(&r.cert_key_bits.to_le_bytes());
    string(out, &r.cert_sig_alg);
    string(out, &r.cert_sha256);
    boolean(out, r.cert_self_signed);
    out.extend_from_slice(&r.cert_chain_len.to_le_bytes());
    string(out, r.outcome.as_str());
    out.extend_from_slice(&r.bytes_c2s.to_le_bytes());
    out.extend_from_slice(&r.bytes_s2c.to_le_bytes());
    out.extend_from_slice(&r.packets_c2s.to_le_bytes());
    out.extend_from_slice(&r.packets_s2c.to_le_bytes());
    out.extend_from_slice(&r.gap_bytes.to_le_bytes());
    out.extend_from_slice(&r.tcp_conflicts.to_le_bytes());
    boolean(out, r.midstream);
    string(out, end_reason_str(r.end_reason));
    out.extend_from_slice(&r.tls_handshake_us.to_le_bytes());
    out.extend_from_slice(&session_id.to_le_bytes());
    string(out, batch_id);
}

/// Appends one `sensor_stats` row, then `batch_id`.
pub fn encode_stats(out: &mut Vec<u8>, s: &SensorStatsRow, batch_id: &str) {
    out.extend_from_slice(&s.ts.to_le_bytes());
    string(out, &s.sensor);
    out.extend_from_slice(&s.interval_ms.to_le_bytes());
    for v in [
        s.packets,
        s.bytes,
        s.kernel_drops,
        s.kernel_if_drops,
        s.own_drops,
        s.active_flows,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&s.worker_queue_depth.to_le_bytes());
    out.extend_from_slice(&s.sink_queue_depth.to_le_bytes());
    for v in [
        s.parse_errors,
        s.records,
        s.rows_written,
        s.rows_spooled,
        s.rows_dropped,
        s.batches_retried,
        s.spool_bytes,
        s.insert_latency_p50_us,
        s.insert_latency_p90_us,
        s.insert_latency_p99_us,
        s.insert_latency_max_us,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    string(out, batch_id);
}

/// Reads one RowBinary row of `columns` starting at `*pos` and returns it as a JSON object
/// in the record's JSON conventions (timestamps RFC 3339 with µs, addresses as text with
/// IPv4-mapped addresses shown as IPv4, booleans as `true`/`false`). `None` when the bytes
/// end early or are malformed. For tests and tools that read rows back
/// (`SELECT <columns> FROM ... FORMAT RowBinary`).
pub fn decode_row_json(
    bytes: &[u8],
    pos: &mut usize,
    columns: &[crate::schema::Column],
) -> Option<serde_json::Map<String, serde_json::Value>> {
    use crate::schema::ColumnType as T;
    use serde_json::Value;
    fn take<'a>(bytes: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
        let s = bytes.get(*pos..pos.checked_add(n)?)?;
        *pos += n;
        Some(s)
    }
    fn uleb(bytes: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *take(bytes, pos, 1)?.first()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn int<const N: usize>(bytes: &[u8], pos: &mut usize) -> Option<[u8; N]> {
        take(bytes, pos, N)?.try_into().ok()
    }
    fn text(bytes: &[u8], pos: &mut usize) -> Option<Value> {
        let n = usize::try_from(uleb(bytes, pos)?).ok()?;
        Some(Value::String(
            String::from_utf8_lossy(take(bytes, pos, n)?).into_owned(),
        ))
    }
    fn micros(bytes: &[u8], pos: &mut usize) -> Option<Value> {
        let v = i64::from_le_bytes(int::<8>(bytes, pos)?);
        Some(Value::String(Timestamp(v).to_rfc3339()))
    }
    let mut row = serde_json::Map::new();
    for c in columns {
        let v = match c.ty {
            T::Micros => micros(bytes, pos)?,
            T::NullableMicros => match *take(bytes, pos, 1)?.first()? {
                1 => Value::Null,
                _ => micros(bytes, pos)?,
            },
            T::Seconds => Value::from(u32::from_le_bytes(int::<4>(bytes, pos)?)),
            T::Str | T::LowCardStr => text(bytes, pos)?,
            T::Ip => {
                let octets: [u8; 16] = int::<16>(bytes, pos)?;
                let v6 = std::net::Ipv6Addr::from(octets);
                let ip = match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                };
                Value::String(ip.to_string())
            }
            T::U8 => Value::from(*take(bytes, pos, 1)?.first()?),
            T::U16 => Value::from(u16::from_le_bytes(int::<2>(bytes, pos)?)),
            T::U32 => Value::from(u32::from_le_bytes(int::<4>(bytes, pos)?)),
            T::U64 => Value::from(u64::from_le_bytes(int::<8>(bytes, pos)?)),
            T::Bool => Value::Bool(*take(bytes, pos, 1)?.first()? != 0),
            T::NullableBool => match *take(bytes, pos, 1)?.first()? {
                1 => Value::Null,
                _ => Value::Bool(*take(bytes, pos, 1)?.first()? != 0),
            },
            T::ArrU8 => {
                let n = usize::try_from(uleb(bytes, pos)?).ok()?;
                Value::Array(
                    take(bytes, pos, n)?
                        .iter()
                        .map(|&b| Value::from(b))
                        .collect(),
                )
            }
            T::ArrU16 => {
                let n = usize::try_from(uleb(bytes, pos)?).ok()?;
                let mut items = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    items.push(Value::from(u16::from_le_bytes(int::<2>(bytes, pos)?)));
                }
                Value::Array(items)
            }
            T::ArrStr | T::ArrLowCardStr => {
                let n = usize::try_from(uleb(bytes, pos)?).ok()?;
                let mut items = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    items.push(text(bytes, pos)?);
                }
                Value::Array(items)
            }
        };
        row.insert(c.name.to_string(), v);
    }
    Some(row)
}

#[cfg(test)]
mod tests;
