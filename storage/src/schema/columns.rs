//! The columns of the raw `sessions` and `sensor_stats` tables, in wire order.
//!
//! The RowBinary encoder ([`crate::sink::clickhouse::rowbinary`]) writes exactly these
//! columns in exactly this order; a unit test decodes encoded rows with these types to keep
//! the two in step.

use super::ServerGeneration;

/// The logical type of a column; [`ColumnType::sql`] renders it per server generation.
///
/// Every type has the same RowBinary wire format on both generations, so a batch encoded
/// (or spooled) before the server's version is known can be sent to either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Microseconds since the epoch: `DateTime64(6, 'UTC')` on modern servers, `Int64` on
    /// 18.16 (which has no DateTime64). Wire: Int64 little-endian.
    Micros,
    /// Optional [`ColumnType::Micros`]: `Nullable(DateTime64(6, 'UTC'))` / `Nullable(Int64)`.
    NullableMicros,
    /// Seconds since the epoch: `DateTime('UTC')` on both. Wire: UInt32.
    Seconds,
    /// Free-form text with many distinct values: `String`.
    Str,
    /// Text with few distinct values: `LowCardinality(String)` / `String` (same wire).
    LowCardStr,
    /// An address: `IPv6` / `FixedString(16)`; IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`).
    /// Wire: 16 bytes, network order.
    Ip,
    /// `UInt8`.
    U8,
    /// `UInt16`.
    U16,
    /// `UInt32`.
    U32,
    /// `UInt64`.
    U64,
    /// `Bool` / `UInt8` (same wire: one byte, 0 or 1).
    Bool,
    /// `Nullable(Bool)` / `Nullable(UInt8)`.
    NullableBool,
    /// `Array(UInt8)`.
    ArrU8,
    /// `Array(UInt16)`.
    ArrU16,
    /// `Array(String)`.
    ArrStr,
    /// `Array(LowCardinality(String))` / `Array(String)`.
    ArrLowCardStr,
}

impl ColumnType {
    /// The SQL type for `generation`.
    pub fn sql(self, generation: ServerGeneration) -> &'static str {
        let modern = generation == ServerGeneration::Modern;
        match self {
            ColumnType::Micros if modern => "DateTime64(6, 'UTC')",
            ColumnType::Micros => "Int64",
            ColumnType::NullableMicros if modern => "Nullable(DateTime64(6, 'UTC'))",
            ColumnType::NullableMicros => "Nullable(Int64)",
            ColumnType::Seconds => "DateTime('UTC')",
            ColumnType::Str => "String",
            ColumnType::LowCardStr if modern => "LowCardinality(String)",
            ColumnType::LowCardStr => "String",
            ColumnType::Ip if modern => "IPv6",
            ColumnType::Ip => "FixedString(16)",
            ColumnType::U8 => "UInt8",
            ColumnType::U16 => "UInt16",
            ColumnType::U32 => "UInt32",
            ColumnType::U64 => "UInt64",
            ColumnType::Bool if modern => "Bool",
            ColumnType::Bool => "UInt8",
            ColumnType::NullableBool if modern => "Nullable(Bool)",
            ColumnType::NullableBool => "Nullable(UInt8)",
            ColumnType::ArrU8 => "Array(UInt8)",
            ColumnType::ArrU16 => "Array(UInt16)",
            ColumnType::ArrStr => "Array(String)",
            ColumnType::ArrLowCardStr if modern => "Array(LowCardinality(String))",
            ColumnType::ArrLowCardStr => "Array(String)",
        }
    }
}

/// Column compression on modern servers (18.16 has no per-column codecs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// The server default (LZ4).
    Default,
    /// `CODEC(ZSTD(1))`: long, repetitive strings and arrays.
    Zstd,
    /// `CODEC(Delta, ZSTD(1))`: timestamps and growing counters.
    DeltaZstd,
}

impl Codec {
    /// The `CODEC(...)` clause, empty for the default.
    pub fn sql(self) -> &'static str {
        match self {
            Codec::Default => "",
            Codec::Zstd => " CODEC(ZSTD(1))",
            Codec::DeltaZstd => " CODEC(Delta, ZSTD(1))",
        }
    }
}

/// One column: name, logical type, modern codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Column name; for `sessions`, the [`crate::SessionRecord`] field name.
    pub name: &'static str,
    /// Logical type.
    pub ty: ColumnType,
    /// Compression on modern servers.
    pub codec: Codec,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        codec: Codec::Default,
    }
}

const fn zcol(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        codec: Codec::Zstd,
    }
}

const fn dcol(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        codec: Codec::DeltaZstd,
    }
}

use ColumnType::*;

/// Columns of `sessions`: every [`crate::SessionRecord`] field under its own name, in
/// declaration order, then two columns the sink adds:
/// - `session_id`: a stable 64-bit key of the session (sensor, client and server address
///   and port, `ts_start`), see [`crate::sink::clickhouse::rowbinary::session_id`];
/// - `batch_id`: the id of the insert that carried the row (deduplication, auditing).
pub const SESSION_COLUMNS: &[Column] = &[
    dcol("ts_start", Micros),
    dcol("ts_end", Micros),
    col("sensor", LowCardStr),
    col("client_ip", Ip),
    col("client_port", U16),
    col("server_ip", Ip),
    col("server_port", U16),
    col("vlan", U16),
    col("direction", LowCardStr),
    col("mode", LowCardStr),
    zcol("smtp_banner_host", Str),
    zcol("ehlo_host", Str),
    col("helo_verb", LowCardStr),
    zcol("smtp_capabilities", ArrLowCardStr),
    col("starttls_offered", NullableBool),
    col("starttls_requested", Bool),
    col("starttls_reply", U16),
    zcol("auth_mechs", ArrLowCardStr),
    col("auth_cleartext", Bool),
    col("auth_cleartext_mech", LowCardStr),
    col("plaintext_mail_tx", U32),
    col("plaintext_rcpt", U32),
    col("tls_client_version", U16),
    zcol("tls_client_versions", ArrU16),
    zcol("tls_client_ciphers", ArrU16),
    zcol("tls_client_extensions", ArrU16),
    zcol("tls_client_groups", ArrU16),
    zcol("tls_client_sigalgs", ArrU16),
    zcol("tls_client_point_formats", ArrU8),
    col("tls_client_max_version", LowCardStr),
    zcol("tls_sni", Str),
    zcol("tls_alpn", ArrLowCardStr),
    col("tls_fallback_scsv", Bool),
    zcol("ja3", Str),
    zcol("ja3_hash", Str),
    zcol("ja3s", Str),
    zcol("ja3s_hash", Str),
    zcol("ja4", Str),
    col("tls_version", LowCardStr),
    col("tls_version_code", U16),
    col("tls_cipher", LowCardStr),
    col("tls_cipher_code", U16),
    col("tls_cipher_class", LowCardStr),
    zcol("tls_server_extensions", ArrU16),
    col("tls_hello_retry", Bool),
    col("tls_resumed", Bool),
    col("tls_established", Bool),
    col("tls_alert", LowCardStr),
    col("tls_alert_by", LowCardStr),
    zcol("cert_subject_cn", Str),
    zcol("cert_sans", ArrStr),
    zcol("cert_issuer", Str),
    zcol("cert_not_before", NullableMicros),
    zcol("cert_not_after", NullableMicros),
    col("cert_key_alg", LowCardStr),
    col("cert_key_bits", U32),
    col("cert_sig_alg", LowCardStr),
    zcol("cert_sha256", Str),
    col("cert_self_signed", Bool),
    col("cert_chain_len", U32),
    col("outcome", LowCardStr),
    zcol("bytes_c2s", U64),
    zcol("bytes_s2c", U64),
    zcol("packets_c2s", U64),
    zcol("packets_s2c", U64),
    zcol("gap_bytes", U64),
    col("tcp_conflicts", U32),
    col("midstream", Bool),
    col("end_reason", LowCardStr),
    zcol("tls_handshake_us", U64),
    zcol("session_id", U64),
    zcol("batch_id", Str),
];

/// Columns of `sensor_stats`, in wire order (see [`crate::stats::SensorStatsRow`]).
pub const SENSOR_STATS_COLUMNS: &[Column] = &[
    dcol("ts", Seconds),
    col("sensor", LowCardStr),
    col("interval_ms", U32),
    dcol("packets", U64),
    dcol("bytes", U64),
    col("kernel_drops", U64),
    col("kernel_if_drops", U64),
    col("own_drops", U64),
    col("active_flows", U64),
    col("worker_queue_depth", U32),
    col("sink_queue_depth", U32),
    col("parse_errors", U64),
    col("records", U64),
    col("rows_written", U64),
    col("rows_spooled", U64),
    col("rows_dropped", U64),
    col("batches_retried", U64),
    col("spool_bytes", U64),
    col("insert_latency_p50_us", U64),
    col("insert_latency_p90_us", U64),
    col("insert_latency_p99_us", U64),
    col("insert_latency_max_us", U64),
    zcol("batch_id", Str),
];

/// `a, b, c`: the column list of an INSERT.
pub fn column_list(columns: &[Column]) -> String {
    let mut out = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(c.name);
    }
    out
}
