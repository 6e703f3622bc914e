//! The ClickHouse schema: tables, materialized views, views, and the migrations that create
//! and upgrade them, rendered per server generation.
//!
//! [`render_ddl`] is pure: `mailtls schema` prints it, the sink runs the same statements
//! (through [`MIGRATIONS`]) at start.
//!
//! | object | engine | what |
//! |---|---|---|
//! | `sessions` (configurable) | MergeTree, a partition per UTC day | one row per session, every [`crate::SessionRecord`] field plus `session_id`, `batch_id` |
//! | `sessions_hourly` | SummingMergeTree, fed by `sessions_hourly_mv` | hourly counts by sensor, direction, mode, outcome, version, cipher, cipher class |
//! | `server_inventory` / `servers` | AggregatingMergeTree, fed by `server_inventory_mv`; `servers` is the merged view | per server address and port: first/last seen, sessions, best version offered/negotiated, STARTTLS offered or missing |
//! | `client_inventory` / `clients` | same, per client address | first/last seen, sessions, best version offered/negotiated, STARTTLS requested, AUTH in clear |
//! | `sensor_stats` | MergeTree | one row per sensor every N seconds ([`crate::stats::SensorStatsRow`]) |
//! | `schema_version` | MergeTree | one row per applied migration |
//!
//! Two generations: [`ServerGeneration::Modern`] (ClickHouse ≥ 23.8: `LowCardinality`,
//! `IPv6`, `DateTime64`, `Bool`, codecs, TTL, insert deduplication tokens) and
//! [`ServerGeneration::Legacy`] (Debian 12's 18.16: `String`, `FixedString(16)`, `Int64`
//! microseconds, `UInt8`, no codecs, no TTL). Types that differ keep the same RowBinary wire
//! format, so one encoder and one spool format serve both.

mod columns;
mod ddl;

pub use columns::{column_list, Codec, Column, ColumnType, SENSOR_STATS_COLUMNS, SESSION_COLUMNS};
pub use ddl::{
    render_ddl, render_ddl_database, render_ddl_schema_version, render_migration, Migration,
    MIGRATIONS, SCHEMA_VERSION,
};

use crate::Error;

/// Which DDL dialect a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerGeneration {
    /// ClickHouse 23.8 LTS and later (tested on 26.x through chdb).
    Modern,
    /// ClickHouse before 23.8, down to Debian 12's packaged 18.16 (tested on 18.16.1).
    Legacy,
}

impl ServerGeneration {
    /// Classifies a `SELECT version()` answer such as `18.16.1` or `24.8.4.13`: 23.8 and
    /// later is [`ServerGeneration::Modern`], anything older is [`ServerGeneration::Legacy`].
    /// Errors when the string does not start with `MAJOR.MINOR`.
    pub fn from_version(version: &str) -> Result<Self, Error> {
        let mut parts = version.trim().split('.');
        let major = parts.next().and_then(|p| p.parse::<u32>().ok());
        let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
        match (major, minor) {
            (Some(major), Some(minor)) if (major, minor) >= (23, 8) => Ok(ServerGeneration::Modern),
            (Some(_), Some(_)) => Ok(ServerGeneration::Legacy),
            _ => Err(Error::Config(format!(
                "cannot read ClickHouse version {version:?}"
            ))),
        }
    }

    /// `modern` or `legacy`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerGeneration::Modern => "modern",
            ServerGeneration::Legacy => "legacy",
        }
    }
}

/// Cluster mode: every table becomes `NAME_local` (created `ON CLUSTER` on every node) plus a
/// `Distributed` table `NAME` over them; materialized views run on each node's local tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Cluster name as in the servers' `remote_servers` configuration.
    pub name: String,
    /// Use `Replicated*MergeTree` local tables (needs ZooKeeper/Keeper and the `{shard}` and
    /// `{replica}` macros); plain `*MergeTree` otherwise.
    pub replicated: bool,
    /// Add `ON CLUSTER name` to the DDL (needs the servers' distributed DDL, i.e.
    /// ZooKeeper/Keeper). `false`: the DDL creates the local and Distributed tables on the
    /// server it runs on only; run it on every node yourself.
    pub on_cluster: bool,
}

/// What to create: names, retention, cluster mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaConfig {
    /// Database (default `mailtls`). Letters, digits and `_` only.
    pub database: String,
    /// Raw session table (default `sessions`). The other objects have fixed names; use
    /// another database to keep two schemas apart.
    pub table: String,
    /// Retention of raw sessions and `sensor_stats`, in days (modern servers; 18.16 has no
    /// TTL and keeps everything). `None`: keep forever.
    pub ttl_days: Option<u32>,
    /// Retention of `sessions_hourly`, in days (modern servers). `None`: keep forever.
    pub rollup_ttl_days: Option<u32>,
    /// Cluster mode, `None` for a single server.
    pub cluster: Option<ClusterConfig>,
}

impl Default for SchemaConfig {
    fn default() -> Self {
        SchemaConfig {
            database: "mailtls".to_string(),
            table: "sessions".to_string(),
            ttl_days: None,
            rollup_ttl_days: None,
            cluster: None,
        }
    }
}

impl SchemaConfig {
    /// Checks names (`[A-Za-z_][A-Za-z0-9_]*`, at most 64 bytes) and retention (≥ 1 day).
    pub fn validate(&self) -> Result<(), Error> {
        check_identifier("database", &self.database)?;
        check_identifier("table", &self.table)?;
        if let Some(cluster) = &self.cluster {
            check_identifier("cluster", &cluster.name)?;
        }
        if self.ttl_days == Some(0) || self.rollup_ttl_days == Some(0) {
            return Err(Error::Config(
                "retention must be at least 1 day".to_string(),
            ));
        }
        Ok(())
    }

    /// The names of every object, derived from this configuration.
    pub fn names(&self) -> TableNames {
        TableNames {
            sessions: self.table.clone(),
            sessions_hourly: "sessions_hourly".to_string(),
            server_inventory: "server_inventory".to_string(),
            client_inventory: "client_inventory".to_string(),
            servers: "servers".to_string(),
            clients: "clients".to_string(),
            sensor_stats: "sensor_stats".to_string(),
            schema_version: "schema_version".to_string(),
        }
    }

    /// `database.table`, the fully qualified name the sink inserts raw sessions into.
    pub fn sessions_table(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }

    /// `database.sensor_stats`.
    pub fn sensor_stats_table(&self) -> String {
        format!("{}.sensor_stats", self.database)
    }
}

/// Object names (without the database). In cluster mode each data table `T` also has a
/// `T_local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Raw sessions.
    pub sessions: String,
    /// Hourly rollup.
    pub sessions_hourly: String,
    /// Per-server aggregate states.
    pub server_inventory: String,
    /// Per-client aggregate states.
    pub client_inventory: String,
    /// Merged per-server view.
    pub servers: String,
    /// Merged per-client view.
    pub clients: String,
    /// Sensor self-monitoring.
    pub sensor_stats: String,
    /// Applied migrations.
    pub schema_version: String,
}

fn check_identifier(what: &str, name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || name.len() > 64 || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::Config(format!(
            "invalid ClickHouse {what} name {name:?}: use letters, digits and _ (at most 64)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
