//! DDL rendering and the list of migrations.

use super::columns::{Column, SENSOR_STATS_COLUMNS, SESSION_COLUMNS};
use super::{SchemaConfig, ServerGeneration};

/// The schema version this build writes: the highest [`Migration::version`].
pub const SCHEMA_VERSION: u32 = 1;

/// One schema change. Migrations only add (tables, views, columns with defaults), so an
/// older mailtls keeps inserting into a newer schema: its INSERTs name their columns.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version reached once applied, 1, 2, …
    pub version: u32,
    /// One line for `schema_version.description` and the log.
    pub description: &'static str,
    /// The statements, idempotent (`IF NOT EXISTS`) so that two sensors starting at once,
    /// or a migration interrupted half-way, can run them again.
    pub statements: fn(&SchemaConfig, ServerGeneration) -> Vec<String>,
}

/// Every migration, in order. A fresh database gets all of them; an older schema the ones
/// above its `max(version)` in `schema_version`.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "sessions, hourly rollup, server and client inventory, sensor_stats",
    statements: v1_initial,
}];

/// The statements that create the database, `schema_version`, then every migration's
/// statements each followed by its `schema_version` row. This is what `mailtls schema`
/// prints and, statement by statement, what the sink runs on an empty server.
pub fn render_ddl(cfg: &SchemaConfig, generation: ServerGeneration) -> Vec<String> {
    let mut out = vec![render_ddl_database(cfg)];
    out.extend(render_ddl_schema_version(cfg, generation));
    for migration in MIGRATIONS {
        out.extend(render_migration(cfg, generation, migration));
    }
    out
}

/// One migration's statements followed by the INSERT that records it in `schema_version`.
pub fn render_migration(
    cfg: &SchemaConfig,
    generation: ServerGeneration,
    migration: &Migration,
) -> Vec<String> {
    let mut out = (migration.statements)(cfg, generation);
    out.push(format!(
        "INSERT INTO {db}.schema_version (version, applied_at, mailtls_version, description) \
         SELECT {v}, now(), '{pkg}', '{desc}'",
        db = cfg.database,
        v = migration.version,
        pkg = env!("CARGO_PKG_VERSION"),
        desc = migration.description.replace('\'', "''"),
    ));
    out
}

/// `CREATE DATABASE IF NOT EXISTS db [ON CLUSTER c]`.
pub fn render_ddl_database(cfg: &SchemaConfig) -> String {
    format!(
        "CREATE DATABASE IF NOT EXISTS {}{}",
        cfg.database,
        on_cluster(cfg)
    )
}

fn on_cluster(cfg: &SchemaConfig) -> String {
    match &cfg.cluster {
        Some(c) if c.on_cluster => format!(" ON CLUSTER {}", c.name),
        _ => String::new(),
    }
}

/// The name of the table that holds the data: `T_local` in cluster mode, `T` otherwise.
fn storage_name(cfg: &SchemaConfig, table: &str) -> String {
    if cfg.cluster.is_some() {
        format!("{table}_local")
    } else {
        table.to_string()
    }
}

/// MergeTree-family engine clause, replicated in replicated cluster mode.
/// `family` is "" (MergeTree), "Summing", "Aggregating"; `args` the engine's own arguments.
fn engine(cfg: &SchemaConfig, family: &str, table: &str, args: &str) -> String {
    match &cfg.cluster {
        Some(c) if c.replicated => {
            let path = format!("'/clickhouse/tables/{{shard}}/{}/{}'", cfg.database, table);
            let sep = if args.is_empty() { "" } else { ", " };
            format!("Replicated{family}MergeTree({path}, '{{replica}}'{sep}{args})")
        }
        _ if args.is_empty() => format!("{family}MergeTree"),
        _ => format!("{family}MergeTree({args})"),
    }
}

/// The Distributed table over `T_local`, in cluster mode; nothing otherwise.
fn create_distributed(cfg: &SchemaConfig, table: &str, sharding_key: &str) -> Vec<String> {
    let Some(cluster) = &cfg.cluster else {
        return Vec::new();
    };
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.{table}{oc} AS {db}.{table}_local \
         ENGINE = Distributed({c}, {db}, {table}_local, {sharding_key})",
        db = cfg.database,
        oc = on_cluster(cfg),
        c = cluster.name,
    )]
}

fn render_columns(columns: &[Column], generation: ServerGeneration) -> String {
    let mut out = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str("    ");
        out.push_str(c.name);
        out.push(' ');
        out.push_str(c.ty.sql(generation));
        if generation == ServerGeneration::Modern {
            out.push_str(c.codec.sql());
        }
    }
    out
}

/// Settings of a non-replicated MergeTree on modern servers: keep the last 1000 block ids so
/// a retried INSERT with the same `insert_deduplication_token` is dropped.
fn dedup_settings(cfg: &SchemaConfig, generation: ServerGeneration, extra: &str) -> String {
    if generation != ServerGeneration::Modern {
        return String::new();
    }
    let replicated = cfg.cluster.as_ref().is_some_and(|c| c.replicated);
    let mut settings = Vec::new();
    if !replicated {
        settings.push("non_replicated_deduplication_window = 1000".to_string());
    }
    if !extra.is_empty() {
        settings.push(extra.to_string());
    }
    if settings.is_empty() {
        String::new()
    } else {
        format!("\nSETTINGS {}", settings.join(", "))
    }
}

/// `toDateTime(...)` of a microseconds column, as a `DateTime('UTC')` (second precision).
fn seconds_of(generation: ServerGeneration, column: &str) -> String {
    match generation {
        ServerGeneration::Modern => format!("toDateTime({column}, 'UTC')"),
        ServerGeneration::Legacy => format!("toDateTime(intDiv({column}, 1000000), 'UTC')"),
    }
}

/// Version names as the record spells them and their wire codes, for "best version" ranks.
const VERSION_NAMES: &str = "['SSLv2', 'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']";
const VERSION_CODES: &str = "[2, 768, 769, 770, 771, 772]";

fn version_code(expr: &str) -> String {
    format!("toUInt16(transform({expr}, {VERSION_NAMES}, {VERSION_CODES}, 0))")
}

fn version_name(expr: &str) -> String {
    format!("transform(toUInt16({expr}), {VERSION_CODES}, {VERSION_NAMES}, '')")
}

fn v1_initial(cfg: &SchemaConfig, generation: ServerGeneration) -> Vec<String> {
    let db = &cfg.database;
    let oc = on_cluster(cfg);
    let names = cfg.names();
    let modern = generation == ServerGeneration::Modern;
    let lc = if modern {
        "LowCardinality(String)"
    } else {
        "String"
    };
    let ip = if modern { "IPv6" } else { "FixedString(16)" };
    let t = seconds_of(generation, "ts_start");
    let t_end = seconds_of(generation, "ts_end");
    let mut out = Vec::new();

    // --- raw sessions -------------------------------------------------------------------
    let sessions = &names.sessions;
    let sessions_store = storage_name(cfg, sessions);
    let ttl = match (modern, cfg.ttl_days) {
        (true, Some(days)) => format!("\nTTL {t} + INTERVAL {days} DAY"),
        _ => String::new(),
    };
    let ttl_setting = if modern && cfg.ttl_days.is_some() {
        "ttl_only_drop_parts = 1"
    } else {
        ""
    };
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{sessions_store}{oc}\n(\n{cols}\n)\n\
         ENGINE = {engine}\n\
         PARTITION BY toDate({t})\n\
         ORDER BY (sensor, direction, toStartOfHour({t}), server_ip, ts_start){ttl}{settings}",
        cols = render_columns(SESSION_COLUMNS, generation),
        engine = engine(cfg, "", &sessions_store, ""),
        settings = dedup_settings(cfg, generation, ttl_setting),
    ));
    out.extend(create_distributed(cfg, sessions, "cityHash64(server_ip)"));

    // --- hourly rollup ------------------------------------------------------------------
    let hourly = &names.sessions_hourly;
    let hourly_store = storage_name(cfg, hourly);
    let rollup_ttl = match (modern, cfg.rollup_ttl_days) {
        (true, Some(days)) => format!("\nTTL hour + INTERVAL {days} DAY"),
        _ => String::new(),
    };
    let sums = "sessions, sessions_tls, sessions_auth_cleartext, bytes_c2s, bytes_s2c, \
                tls_handshake_us_sum";
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{hourly_store}{oc}\n(\n\
         \x20   hour DateTime('UTC'),\n\
         \x20   sensor {lc},\n\
         \x20   direction {lc},\n\
         \x20   mode {lc},\n\
         \x20   outcome {lc},\n\
         \x20   tls_version {lc},\n\
         \x20   tls_cipher {lc},\n\
         \x20   tls_cipher_class {lc},\n\
         \x20   sessions UInt64,\n\
         \x20   sessions_tls UInt64,\n\
         \x20   sessions_auth_cleartext UInt64,\n\
         \x20   bytes_c2s UInt64,\n\
         \x20   bytes_s2c UInt64,\n\
         \x20   tls_handshake_us_sum UInt64\n)\n\
         ENGINE = {engine}\n\
         PARTITION BY toYYYYMM(hour)\n\
         ORDER BY (hour, sensor, direction, mode, outcome, tls_version, tls_cipher_class, tls_cipher)\
         {rollup_ttl}{settings}",
        engine = engine(cfg, "Summing", &hourly_store, &format!("({sums})")),
        settings = dedup_settings(cfg, generation, ""),
    ));
    out.extend(create_distributed(cfg, hourly, "rand()"));
    out.push(format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{hourly}_mv{oc} TO {db}.{hourly_store} AS\n\
         SELECT\n\
         \x20   toStartOfHour({t}) AS hour,\n\
         \x20   sensor, direction, mode, outcome, tls_version, tls_cipher, tls_cipher_class,\n\
         \x20   count() AS sessions,\n\
         \x20   sum(toUInt64(tls_established)) AS sessions_tls,\n\
         \x20   sum(toUInt64(auth_cleartext)) AS sessions_auth_cleartext,\n\
         \x20   sum(bytes_c2s) AS bytes_c2s,\n\
         \x20   sum(bytes_s2c) AS bytes_s2c,\n\
         \x20   sum(tls_handshake_us) AS tls_handshake_us_sum\n\
         FROM {db}.{sessions_store}\n\
         GROUP BY hour, sensor, direction, mode, outcome, tls_version, tls_cipher, tls_cipher_class"
    ));

    // --- peer inventories -------------------------------------------------------------------
    let offered = version_code("tls_client_max_version");
    let negotiated = version_code("tls_version");
    let starttls = "ifNull(toUInt8(starttls_offered), 2)";
    let epoch = "toDateTime(0, 'UTC')";
    let common_cols = "\x20   first_seen AggregateFunction(min, DateTime('UTC')),\n\
         \x20   last_seen AggregateFunction(max, DateTime('UTC')),\n\
         \x20   sessions AggregateFunction(sum, UInt64),\n\
         \x20   sessions_tls AggregateFunction(sum, UInt64),\n\
         \x20   sessions_tls_failed AggregateFunction(sum, UInt64),\n\
         \x20   best_offered AggregateFunction(max, UInt16),\n\
         \x20   best_negotiated AggregateFunction(max, UInt16),\n\
         \x20   worst_negotiated AggregateFunction(min, UInt16),\n";
    let common_states = format!(
        "\x20   minState({t}) AS first_seen,\n\
         \x20   maxState({t_end}) AS last_seen,\n\
         \x20   sumState(toUInt64(1)) AS sessions,\n\
         \x20   sumState(toUInt64(tls_established)) AS sessions_tls,\n\
         \x20   sumState(toUInt64(outcome = 'tls_failed')) AS sessions_tls_failed,\n\
         \x20   maxState({offered}) AS best_offered,\n\
         \x20   maxState({negotiated}) AS best_negotiated,\n\
         \x20   minState(if({negotiated} = 0, toUInt16(65535), {negotiated})) AS worst_negotiated,\n"
    );
    let common_merges = format!(
        "\x20   minMerge(first_seen) AS first_seen,\n\
         \x20   maxMerge(last_seen) AS last_seen,\n\
         \x20   sumMerge(sessions) AS sessions,\n\
         \x20   sumMerge(sessions_tls) AS sessions_tls,\n\
         \x20   sumMerge(sessions_tls_failed) AS sessions_tls_failed,\n\
         \x20   maxMerge(best_offered) AS best_offered_code,\n\
         \x20   {best_offered} AS best_offered_version,\n\
         \x20   maxMerge(best_negotiated) AS best_negotiated_code,\n\
         \x20   {best_negotiated} AS best_negotiated_version,\n\
         \x20   if(minMerge(worst_negotiated) = 65535, 0, minMerge(worst_negotiated)) AS worst_negotiated_code,\n\
         \x20   {worst_negotiated} AS worst_negotiated_version,\n",
        best_offered = version_name("best_offered_code"),
        best_negotiated = version_name("best_negotiated_code"),
        worst_negotiated = version_name("worst_negotiated_code"),
    );

    let si = &names.server_inventory;
    let si_store = storage_name(cfg, si);
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{si_store}{oc}\n(\n\
         \x20   server_ip {ip},\n\
         \x20   server_port UInt16,\n\
         {common_cols}\
         \x20   sessions_starttls_refused AggregateFunction(sum, UInt64),\n\
         \x20   starttls_offered_sessions AggregateFunction(sum, UInt64),\n\
         \x20   starttls_missing_sessions AggregateFunction(sum, UInt64),\n\
         \x20   last_starttls_offered AggregateFunction(max, DateTime('UTC')),\n\
         \x20   last_starttls_missing AggregateFunction(max, DateTime('UTC')),\n\
         \x20   banner_host AggregateFunction(argMax, String, DateTime('UTC'))\n)\n\
         ENGINE = {engine}\n\
         ORDER BY (server_ip, server_port){settings}",
        engine = engine(cfg, "Aggregating", &si_store, ""),
        settings = dedup_settings(cfg, generation, ""),
    ));
    out.extend(create_distributed(cfg, si, "cityHash64(server_ip)"));
    out.push(format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{si}_mv{oc} TO {db}.{si_store} AS\n\
         SELECT\n\
         \x20   server_ip, server_port,\n\
         {common_states}\
         \x20   sumState(toUInt64(outcome = 'starttls_refused')) AS sessions_starttls_refused,\n\
         \x20   sumState(toUInt64({starttls} = 1)) AS starttls_offered_sessions,\n\
         \x20   sumState(toUInt64({starttls} = 0)) AS starttls_missing_sessions,\n\
         \x20   maxState(if({starttls} = 1, {t}, {epoch})) AS last_starttls_offered,\n\
         \x20   maxState(if({starttls} = 0, {t}, {epoch})) AS last_starttls_missing,\n\
         \x20   argMaxState(smtp_banner_host, if(smtp_banner_host = '', {epoch}, {t})) AS banner_host\n\
         FROM {db}.{sessions_store}\n\
         GROUP BY server_ip, server_port"
    ));
    out.push(format!(
        "CREATE VIEW IF NOT EXISTS {db}.{servers}{oc} AS\n\
         SELECT\n\
         \x20   server_ip, server_port,\n\
         \x20   replaceRegexpOne(IPv6NumToString(server_ip), '^::ffff:', '') AS server,\n\
         {common_merges}\
         \x20   sumMerge(sessions_starttls_refused) AS sessions_starttls_refused,\n\
         \x20   sumMerge(starttls_offered_sessions) AS starttls_offered_sessions,\n\
         \x20   sumMerge(starttls_missing_sessions) AS starttls_missing_sessions,\n\
         \x20   maxMerge(last_starttls_offered) AS last_starttls_offered,\n\
         \x20   maxMerge(last_starttls_missing) AS last_starttls_missing,\n\
         \x20   argMaxMerge(banner_host) AS banner_host\n\
         FROM {db}.{si}\n\
         GROUP BY server_ip, server_port",
        servers = names.servers,
    ));

    let ci = &names.client_inventory;
    let ci_store = storage_name(cfg, ci);
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{ci_store}{oc}\n(\n\
         \x20   client_ip {ip},\n\
         {common_cols}\
         \x20   starttls_requested_sessions AggregateFunction(sum, UInt64),\n\
         \x20   plaintext_offered_sessions AggregateFunction(sum, UInt64),\n\
         \x20   auth_cleartext_sessions AggregateFunction(sum, UInt64),\n\
         \x20   ehlo_host AggregateFunction(argMax, String, DateTime('UTC'))\n)\n\
         ENGINE = {engine}\n\
         ORDER BY client_ip{settings}",
        engine = engine(cfg, "Aggregating", &ci_store, ""),
        settings = dedup_settings(cfg, generation, ""),
    ));
    out.extend(create_distributed(cfg, ci, "cityHash64(client_ip)"));
    out.push(format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{ci}_mv{oc} TO {db}.{ci_store} AS\n\
         SELECT\n\
         \x20   client_ip,\n\
         {common_states}\
         \x20   sumState(toUInt64(starttls_requested)) AS starttls_requested_sessions,\n\
         \x20   sumState(toUInt64(outcome = 'plaintext_offered')) AS plaintext_offered_sessions,\n\
         \x20   sumState(toUInt64(auth_cleartext)) AS auth_cleartext_sessions,\n\
         \x20   argMaxState(ehlo_host, if(ehlo_host = '', {epoch}, {t})) AS ehlo_host\n\
         FROM {db}.{sessions_store}\n\
         GROUP BY client_ip"
    ));
    out.push(format!(
        "CREATE VIEW IF NOT EXISTS {db}.{clients}{oc} AS\n\
         SELECT\n\
         \x20   client_ip,\n\
         \x20   replaceRegexpOne(IPv6NumToString(client_ip), '^::ffff:', '') AS client,\n\
         {common_merges}\
         \x20   sumMerge(starttls_requested_sessions) AS starttls_requested_sessions,\n\
         \x20   sumMerge(plaintext_offered_sessions) AS plaintext_offered_sessions,\n\
         \x20   sumMerge(auth_cleartext_sessions) AS auth_cleartext_sessions,\n\
         \x20   argMaxMerge(ehlo_host) AS ehlo_host\n\
         FROM {db}.{ci}\n\
         GROUP BY client_ip",
        clients = names.clients,
    ));

    // --- sensor self-monitoring ---------------------------------------------------------------
    let stats = &names.sensor_stats;
    let stats_store = storage_name(cfg, stats);
    let stats_ttl = match (modern, cfg.ttl_days) {
        (true, Some(days)) => format!("\nTTL ts + INTERVAL {days} DAY"),
        _ => String::new(),
    };
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{stats_store}{oc}\n(\n{cols}\n)\n\
         ENGINE = {engine}\n\
         PARTITION BY toYYYYMM(ts)\n\
         ORDER BY (sensor, ts){stats_ttl}{settings}",
        cols = render_columns(SENSOR_STATS_COLUMNS, generation),
        engine = engine(cfg, "", &stats_store, ""),
        settings = dedup_settings(cfg, generation, ""),
    ));
    out.extend(create_distributed(cfg, stats, "cityHash64(sensor)"));
    out
}

/// `schema_version` (or `schema_version_local` in cluster mode).
fn schema_version_table(cfg: &SchemaConfig, generation: ServerGeneration) -> String {
    let store = storage_name(cfg, "schema_version");
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{store}{oc}\n(\n\
         \x20   version UInt32,\n\
         \x20   applied_at DateTime('UTC'),\n\
         \x20   mailtls_version String,\n\
         \x20   description String\n)\n\
         ENGINE = {engine}\n\
         ORDER BY version{settings}",
        db = cfg.database,
        oc = on_cluster(cfg),
        engine = engine(cfg, "", &store, ""),
        settings = if generation == ServerGeneration::Modern && cfg.cluster.is_none() {
            "\nSETTINGS non_replicated_deduplication_window = 0"
        } else {
            ""
        },
    )
}

/// The statements that create `schema_version` (and its Distributed table in cluster mode).
pub fn render_ddl_schema_version(cfg: &SchemaConfig, generation: ServerGeneration) -> Vec<String> {
    let mut out = vec![schema_version_table(cfg, generation)];
    out.extend(create_distributed(cfg, "schema_version", "rand()"));
    out
}
