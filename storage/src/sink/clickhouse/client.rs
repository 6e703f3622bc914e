//! The HTTP(S) client: the `clickhouse` crate over a rustls connector that trusts the system
//! roots plus an optional CA file, LZ4-compressed inserts, schema validation off (18.16
//! rejects the setting the crate's validation sends, and our RowBinary is hand-encoded).

use super::batch::EncodedBatch;
use super::config::ClickhouseConfig;
use super::retry::{classify, Failure};
use crate::Error;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes per LZ4 frame sent; the server decompresses the stream frame by frame.
const SEND_CHUNK: usize = 1 << 20;

/// A ClickHouse connection pool with the sink's settings.
#[derive(Clone)]
pub struct ChClient {
    inner: clickhouse::Client,
    url: String,
}

impl std::fmt::Debug for ChClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChClient").field("url", &self.url).finish()
    }
}

fn load_roots(cfg: &ClickhouseConfig) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A malformed system certificate is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = &cfg.ca_file {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::Config(format!("cannot read CA file {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| {
                Error::Config(format!("bad certificate in {}: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                Error::Config(format!("bad certificate in {}: {e}", path.display()))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::Config(format!(
                "no PEM certificate in CA file {}",
                path.display()
            )));
        }
    }
    Ok(roots)
}

impl ChClient {
    /// Builds the client; needs a Tokio runtime context for the connection pool only when
    /// requests are made.
    pub fn new(cfg: &ClickhouseConfig) -> Result<Self, Error> {
        let url = cfg.base_url().to_string();
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.enforce_http(false);
        let tls = if url.starts_with("https://") {
            let roots = load_roots(cfg)?;
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth()
        } else {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let hyper =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                // ClickHouse closes idle keep-alive connections after 3 s (18.16) or 10 s.
                .pool_idle_timeout(Duration::from_millis(2500))
                .pool_max_idle_per_host(4)
                .build(connector);
        let mut inner = clickhouse::Client::with_http_client(hyper)
            .with_url(url.clone())
            .with_compression(clickhouse::Compression::Lz4)
            .with_validation(false);
        if let Some(user) = &cfg.credentials.user {
            inner = inner.with_user(user.clone());
        }
        if let Some(password) = &cfg.credentials.password {
            inner = inner.with_password(password.clone());
        }
        Ok(ChClient { inner, url })
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql` and returns its TabSeparated answer.
    pub async fn query_text(&self, sql: &str, timeout: Duration) -> Result<String, Failure> {
        let fut = async {
            let mut cursor = self.query_lines(sql, "TabSeparated", &[])?;
            let bytes = cursor.collect().await.map_err(|e| classify(&e))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Unreachable(format!(
                "no answer within {} s",
                timeout.as_secs()
            ))),
        }
    }

    /// Starts `sql` with its answer in `format` and `settings` sent along; the cursor yields
    /// the answer's bytes as they arrive (decompressed).
    pub fn query_lines(
        &self,
        sql: &str,
        format: &str,
        settings: &[(&str, &str)],
    ) -> Result<clickhouse::query::BytesCursor, Failure> {
        let mut query = self.inner.query_raw(sql);
        for (name, value) in settings {
            query = query.with_setting(*name, *value);
        }
        query.fetch_bytes(format).map_err(|e| classify(&e))
    }

    /// Runs a statement that returns nothing (DDL, INSERT … SELECT).
    pub async fn execute(&self, sql: &str, timeout: Duration) -> Result<(), Failure> {
        match tokio::time::timeout(timeout, self.inner.query_raw(sql).execute()).await {
            Ok(r) => r.map_err(|e| classify(&e)),
            Err(_) => Err(Failure::Unreachable(format!(
                "no answer within {} s",
                timeout.as_secs()
            ))),
        }
    }

    /// Sends `batch` as `INSERT INTO table (columns) FORMAT RowBinary` with `settings`
    /// (query id, deduplication token, …); returns how long it took.
    pub async fn insert(
        &self,
        table: &str,
        columns: &str,
        batch: &EncodedBatch,
        settings: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Duration, Failure> {
        let started = Instant::now();
        let sql = format!("INSERT INTO {table} ({columns}) FORMAT RowBinary");
        let mut insert = self
            .inner
            .insert_formatted_with(sql)
            .with_timeouts(Some(timeout), Some(timeout));
        for (name, value) in settings {
            insert = insert.with_setting(*name, value.clone());
        }
        let data = Bytes::from(batch.data.clone());
        let mut pos = 0;
        while pos < data.len() {
            let end = (pos + SEND_CHUNK).min(data.len());
            insert
                .send(data.slice(pos..end))
                .await
                .map_err(|e| classify(&e))?;
            pos = end;
        }
        insert.end().await.map_err(|e| classify(&e))?;
        Ok(started.elapsed())
    }
}
