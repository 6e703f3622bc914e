//! Start-up checks: is the server there, who is it, does it take our credentials, and is
//! the schema in place (creating or upgrading it when allowed).

use super::client::ChClient;
use super::config::ClickhouseConfig;
use super::retry::Failure;
use crate::schema::{
    render_migration, Migration, SchemaConfig, ServerGeneration, MIGRATIONS, SCHEMA_VERSION,
};
use crate::Error;
use std::time::Duration;

const DDL_TIMEOUT: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server told us at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `SELECT version()`, e.g. `18.16.1`.
    pub version: String,
    /// The DDL dialect used for it.
    pub generation: ServerGeneration,
    /// Schema version found (after any migration).
    pub schema_version: u32,
}

/// Turns a start-up [`Failure`] into the one-line [`Error`] the CLI prints.
pub fn startup_error(cfg: &ClickhouseConfig, context: &str, failure: Failure) -> Error {
    match failure {
        Failure::Unreachable(message) => Error::Unreachable {
            url: cfg.base_url().to_string(),
            message,
        },
        Failure::Auth(message) => Error::Auth {
            url: cfg.base_url().to_string(),
            user: cfg.user_name().to_string(),
            message,
        },
        Failure::MissingSchema(_) => Error::UnknownDatabase {
            url: cfg.base_url().to_string(),
            database: cfg.schema.database.clone(),
        },
        other => Error::Server {
            context: context.to_string(),
            message: other.message().to_string(),
        },
    }
}

/// `SELECT version()` (with the credentials): the server's version and generation.
pub async fn probe(client: &ChClient) -> Result<(String, ServerGeneration), Failure> {
    let text = client.query_text("SELECT version()", PROBE_TIMEOUT).await?;
    let version = text.trim().to_string();
    let generation =
        ServerGeneration::from_version(&version).map_err(|e| Failure::Server(e.to_string()))?;
    Ok((version, generation))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

async fn count(client: &ChClient, sql: &str) -> Result<u64, Failure> {
    let text = client.query_text(sql, PROBE_TIMEOUT).await?;
    text.trim()
        .parse::<u64>()
        .map_err(|_| Failure::Server(format!("unexpected answer {:?} to {sql}", text.trim())))
}

/// Whether `database` exists.
pub async fn database_exists(client: &ChClient, database: &str) -> Result<bool, Failure> {
    let n = count(
        client,
        &format!(
            "SELECT count() FROM system.databases WHERE name = {}",
            quote(database)
        ),
    )
    .await?;
    Ok(n > 0)
}

/// Whether `database.table` exists.
pub async fn table_exists(client: &ChClient, database: &str, table: &str) -> Result<bool, Failure> {
    let n = count(
        client,
        &format!(
            "SELECT count() FROM system.tables WHERE database = {} AND name = {}",
            quote(database),
            quote(table)
        ),
    )
    .await?;
    Ok(n > 0)
}

/// `max(version)` in `schema_version`, 0 when the table is missing or empty.
pub async fn current_schema_version(client: &ChClient, cfg: &SchemaConfig) -> Result<u32, Failure> {
    if !database_exists(client, &cfg.database).await?
        || !table_exists(client, &cfg.database, "schema_version").await?
    {
        return Ok(0);
    }
    let n = count(
        client,
        &format!("SELECT max(version) FROM {}.schema_version", cfg.database),
    )
    .await?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Creates the database and `schema_version` if needed, then applies every migration of
/// `migrations` above the current version, in order, recording each. Returns the version
/// reached. Statements are idempotent, so a concurrent or interrupted run is harmless.
pub async fn migrate(
    client: &ChClient,
    cfg: &SchemaConfig,
    generation: ServerGeneration,
    migrations: &[Migration],
) -> Result<u32, Error> {
    let fail = |context: String, f: Failure| Error::Server {
        context,
        message: f.message().to_string(),
    };
    let mut statements = vec![crate::schema::render_ddl_database(cfg)];
    statements.extend(crate::schema::render_ddl_schema_version(cfg, generation));
    for sql in &statements {
        client
            .execute(sql, DDL_TIMEOUT)
            .await
            .map_err(|f| match f {
                Failure::Auth(message) => Error::Auth {
                    url: client.url().to_string(),
                    user: String::new(),
                    message,
                },
                other => fail(format!("schema set-up ({})", first_words(sql)), other),
            })?;
    }
    let mut version = current_schema_version(client, cfg)
        .await
        .map_err(|f| fail("reading schema_version".to_string(), f))?;
    let start = version;
    for migration in migrations.iter().filter(|m| m.version > start) {
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "ClickHouse schema: applying migration"
        );
        for sql in render_migration(cfg, generation, migration) {
            client.execute(&sql, DDL_TIMEOUT).await.map_err(|f| {
                fail(
                    format!(
                        "schema migration {} ({})",
                        migration.version,
                        first_words(&sql)
                    ),
                    f,
                )
            })?;
        }
        version = migration.version;
    }
    Ok(version)
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ")
}

/// The whole start-up check: probe, then create/upgrade the schema (`create_schema`) or
/// verify it. Every error is one line.
pub async fn check(client: &ChClient, cfg: &ClickhouseConfig) -> Result<ServerInfo, Error> {
    let (version, generation) = probe(client)
        .await
        .map_err(|f| startup_error(cfg, "SELECT version()", f))?;
    let schema = &cfg.schema;
    let schema_version = if cfg.create_schema {
        if generation == ServerGeneration::Legacy
            && (schema.ttl_days.is_some() || schema.rollup_ttl_days.is_some())
        {
            tracing::warn!(
                server_version = %version,
                "ClickHouse {version} has no TTL: retention is not applied, rows are kept"
            );
        }
        let reached = migrate(client, schema, generation, MIGRATIONS)
            .await
            .map_err(|e| match e {
                Error::Auth { url, message, .. } => Error::Auth {
                    url,
                    user: cfg.user_name().to_string(),
                    message,
                },
                other => other,
            })?;
        if reached > SCHEMA_VERSION {
            tracing::warn!(
                found = reached,
                supported = SCHEMA_VERSION,
                "ClickHouse schema is newer than this mailtls; inserting with the columns it knows"
            );
        }
        reached
    } else {
        let exists = database_exists(client, &schema.database)
            .await
            .map_err(|f| startup_error(cfg, "checking the database", f))?;
        if !exists {
            return Err(Error::UnknownDatabase {
                url: cfg.base_url().to_string(),
                database: schema.database.clone(),
            });
        }
        let found = current_schema_version(client, schema)
            .await
            .map_err(|f| startup_error(cfg, "reading schema_version", f))?;
        if found < SCHEMA_VERSION {
            return Err(Error::SchemaTooOld {
                database: schema.database.clone(),
                found,
                required: SCHEMA_VERSION,
            });
        }
        found
    };
    Ok(ServerInfo {
        version,
        generation,
        schema_version,
    })
}

/// Connects with `cfg` and applies `migrations` (normally [`MIGRATIONS`]) from a plain
/// thread: what the sink does at start, for tools (`mailtls schema --apply`) and tests.
/// Returns the version reached.
pub fn migrate_blocking(cfg: &ClickhouseConfig, migrations: &[Migration]) -> Result<u32, Error> {
    cfg.validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = ChClient::new(cfg)?;
    runtime.block_on(async {
        let (_, generation) = probe(&client)
            .await
            .map_err(|f| startup_error(cfg, "SELECT version()", f))?;
        migrate(&client, &cfg.schema, generation, migrations).await
    })
}

/// Connects with `cfg` and returns the server's version, generation and schema version
/// without changing anything (for `mailtls schema --check` and the like).
pub fn server_info_blocking(cfg: &ClickhouseConfig) -> Result<ServerInfo, Error> {
    cfg.validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = ChClient::new(cfg)?;
    runtime.block_on(async {
        let (version, generation) = probe(&client)
            .await
            .map_err(|f| startup_error(cfg, "SELECT version()", f))?;
        let schema_version = current_schema_version(&client, &cfg.schema)
            .await
            .map_err(|f| startup_error(cfg, "reading schema_version", f))?;
        Ok(ServerInfo {
            version,
            generation,
            schema_version,
        })
    })
}
