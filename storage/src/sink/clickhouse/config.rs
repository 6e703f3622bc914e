//! [`ClickhouseConfig`]: where and how the sink writes, with validated defaults.

use crate::schema::SchemaConfig;
use crate::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable for the user name.
pub const ENV_USER: &str = "MAILTLS_CLICKHOUSE_USER";
/// Environment variable for the password.
pub const ENV_PASSWORD: &str = "MAILTLS_CLICKHOUSE_PASSWORD";

/// When to drop rows of a new batch that already exist in ClickHouse (same `session_id`),
/// checked with one query per batch over the batch's `ts_start` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SkipExisting {
    /// Never check: retries and spool replays are still deduplicated by batch id.
    Never,
    /// Check every batch of this run when the previous run died without closing its spool
    /// (`kill -9`, power loss): reading the same capture again then adds only what is missing.
    #[default]
    AfterCrash,
    /// Check every batch (reading a capture that may have been loaded before).
    Always,
}

/// User and password, resolved from flag > environment > file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// User name; `None` uses the server's `default` user.
    pub user: Option<String>,
    /// Password; `None` sends none.
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    /// Resolves each of user and password separately: the flag if given, else the
    /// environment (`MAILTLS_CLICKHOUSE_USER`, `MAILTLS_CLICKHOUSE_PASSWORD`, read through
    /// `env`), else the file. The file holds `user = NAME` and `password = SECRET` lines
    /// (`#` comments, blank lines ignored; surrounding spaces trimmed).
    pub fn resolve(
        flag_user: Option<&str>,
        flag_password: Option<&str>,
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let from_file = match file {
            Some(path) => Self::from_file(path)?,
            None => Credentials::default(),
        };
        let pick = |flag: Option<&str>, var: &str, file: Option<String>| {
            flag.map(str::to_string)
                .or_else(|| env(var).filter(|v| !v.is_empty()))
                .or(file)
        };
        Ok(Credentials {
            user: pick(flag_user, ENV_USER, from_file.user),
            password: pick(flag_password, ENV_PASSWORD, from_file.password),
        })
    }

    /// Reads a credentials file (see [`Credentials::resolve`]).
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read credentials file {}: {e}",
                path.display()
            ))
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "ClickHouse credentials file is readable by others (chmod 600 it)"
                    );
                }
            }
        }
        let mut creds = Credentials::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(Error::Config(format!(
                    "{}:{}: expected `user = NAME` or `password = SECRET`",
                    path.display(),
                    n + 1
                )));
            };
            match key.trim() {
                "user" => creds.user = Some(value.trim().to_string()),
                "password" => creds.password = Some(value.trim().to_string()),
                other => {
                    return Err(Error::Config(format!(
                        "{}:{}: unknown key `{other}` (user, password)",
                        path.display(),
                        n + 1
                    )))
                }
            }
        }
        Ok(creds)
    }
}

/// Everything the ClickHouse sink needs. Build with [`ClickhouseConfig::new`] and adjust
/// fields; [`ClickhouseConfig::validate`] runs at [`super::ClickhouseSink::start`].
#[derive(Debug, Clone)]
pub struct ClickhouseConfig {
    /// `http://host:8123` or `https://host:8443`; no path, query or user info.
    pub url: String,
    /// Database, raw table name, retention, cluster mode.
    pub schema: SchemaConfig,
    /// User and password.
    pub credentials: Credentials,
    /// Extra PEM CA certificates trusted for https (besides the system's).
    pub ca_file: Option<PathBuf>,
    /// A batch closes at this many rows (default 10 000; at most 1 000 000).
    pub batch_rows: usize,
    /// A batch closes this long after its first row (default 1 s).
    pub batch_max_age: Duration,
    /// A batch closes at this many encoded bytes (default 64 MiB).
    pub batch_max_bytes: usize,
    /// Messages (calls to `send`/`write_stats`) the in-memory queue holds before `send`
    /// blocks (default 16: `mailtls` sends up to 256 records a call, so 4,096 records, some
    /// 8 MB, wait here at most; behind them the closed batches and the spool take over).
    /// With 64, reading a 2 GB all-mail capture into ClickHouse peaked at 170 MB.
    pub queue_capacity: usize,
    /// Closed batches waiting in memory for the inserter before new ones go to the spool
    /// (default 2).
    pub inflight_batches: usize,
    /// How long a closed batch waits for the inserter (backpressure) before it goes to the
    /// spool while ClickHouse is slow (default 5 s). While ClickHouse is failing, batches go
    /// to the spool at once.
    pub spool_after: Duration,
    /// Spool directory; `None`: no spool (batches wait in memory, `send` blocks while
    /// ClickHouse is down, and a server down at start is an error).
    pub spool_dir: Option<PathBuf>,
    /// Spool size cap in bytes (default 1 GiB); past it, rows are dropped and counted.
    pub spool_max_bytes: u64,
    /// Create or upgrade the schema at start (default true).
    pub create_schema: bool,
    /// When to drop rows that already exist (default [`SkipExisting::AfterCrash`]).
    pub skip_existing: SkipExisting,
    /// Time allowed for one INSERT (default 30 s).
    pub insert_timeout: Duration,
    /// Attempts of a batch before it goes to the spool (default 3).
    pub insert_attempts: u32,
    /// How long [`super::ClickhouseHandle::close`] keeps trying to insert what is left
    /// before leaving it in the spool (default 30 s).
    pub close_timeout: Duration,
}

impl ClickhouseConfig {
    /// Defaults for `url`: database `mailtls`, table `sessions`, 10 000 rows / 1 s batches,
    /// no spool, schema creation on.
    pub fn new(url: impl Into<String>) -> Self {
        ClickhouseConfig {
            url: url.into(),
            schema: SchemaConfig::default(),
            credentials: Credentials::default(),
            ca_file: None,
            batch_rows: 10_000,
            batch_max_age: Duration::from_millis(1000),
            batch_max_bytes: 64 << 20,
            queue_capacity: 16,
            inflight_batches: 2,
            spool_after: Duration::from_secs(5),
            spool_dir: None,
            spool_max_bytes: 1 << 30,
            create_schema: true,
            skip_existing: SkipExisting::default(),
            insert_timeout: Duration::from_secs(30),
            insert_attempts: 3,
            close_timeout: Duration::from_secs(30),
        }
    }

    /// Checks the URL, names and sizes.
    pub fn validate(&self) -> Result<(), Error> {
        self.schema.validate()?;
        let url = self.url.trim_end_matches('/');
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| {
                Error::Config(format!(
                    "URL {:?} must start with http:// or https://",
                    redact_url(&self.url)
                ))
            })?;
        if rest.is_empty() || rest.contains(['/', '?', '#']) {
            return Err(Error::Config(format!(
                "URL {:?} must be scheme://host[:port] (no path or query)",
                redact_url(&self.url)
            )));
        }
        if rest.contains('@') {
            return Err(Error::Config(
                "put ClickHouse credentials in flags, MAILTLS_CLICKHOUSE_USER/PASSWORD or a \
                 credentials file, not in the URL"
                    .to_string(),
            ));
        }
        if self.batch_rows == 0 || self.batch_rows > 1_000_000 {
            return Err(Error::Config("batch rows must be 1..=1000000".to_string()));
        }
        if self.batch_max_age.is_zero() {
            return Err(Error::Config(
                "batch time must be at least 1 ms".to_string(),
            ));
        }
        if self.queue_capacity == 0 || self.inflight_batches == 0 || self.insert_attempts == 0 {
            return Err(Error::Config(
                "queue capacity, in-flight batches and attempts must be at least 1".to_string(),
            ));
        }
        if self.spool_dir.is_some() && self.spool_max_bytes < 1 << 20 {
            return Err(Error::Config(
                "spool cap must be at least 1 MiB".to_string(),
            ));
        }
        Ok(())
    }

    /// The URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// The user name sent (`default` when none is configured), for messages.
    pub fn user_name(&self) -> &str {
        self.credentials.user.as_deref().unwrap_or("default")
    }
}

/// The URL with any `user:password@` removed, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}<redacted>@{}", &url[..scheme_end + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_flag_then_env_then_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("creds");
        std::fs::write(&file, "# mailtls\nuser = fileuser\npassword = filepass\n").expect("write");
        let env = |k: &str| (k == ENV_PASSWORD).then(|| "envpass".to_string());
        let c = Credentials::resolve(None, None, Some(&file), env).expect("resolve");
        assert_eq!(c.user.as_deref(), Some("fileuser"));
        assert_eq!(c.password.as_deref(), Some("envpass"));
        let c = Credentials::resolve(Some("flaguser"), Some("flagpass"), Some(&file), env)
            .expect("resolve");
        assert_eq!(c.user.as_deref(), Some("flaguser"));
        assert_eq!(c.password.as_deref(), Some("flagpass"));
        assert!(!format!("{c:?}").contains("flagpass"), "Debug redacts");
        std::fs::write(&file, "passwd = x\n").expect("write");
        assert!(Credentials::resolve(None, None, Some(&file), |_| None).is_err());
    }

    #[test]
    fn urls_are_checked() {
        let ok = ClickhouseConfig::new("https://ch.example:8443/");
        assert!(ok.validate().is_ok());
        assert_eq!(ok.base_url(), "https://ch.example:8443");
        for bad in [
            "ch.example:8123",
            "http://u:p@ch.example",
            "http://ch.example/path",
            "http://ch.example?database=x",
        ] {
            assert!(ClickhouseConfig::new(bad).validate().is_err(), "{bad}");
        }
        assert_eq!(redact_url("http://u:secret@h:1"), "http://<redacted>@h:1");
    }
}
