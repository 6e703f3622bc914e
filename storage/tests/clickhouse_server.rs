//! The ClickHouse sink against a real server (Debian 12's clickhouse-server 18.16 in the
//! test script; any server works). Needs `MAILTLS_TEST_CLICKHOUSE_URL` (and `_USER`,
//! `_PASSWORD`, optionally `_HTTPS_URL` and `_CA_FILE`), as printed by
//! `scripts/clickhouse-server.sh env`; without it every test says so loudly and passes.
//!
//! Records come from `testdata/mailpeers-2026.jsonl`: `mailtls read` of the real capture
//! `../shared/corpus/peers/mailpeers-2026.pcap` (120 sessions of Postfix, OpenSSL, swaks).

use mailtls_storage::schema::{
    column_list, ClusterConfig, Migration, ServerGeneration, MIGRATIONS, SESSION_COLUMNS,
};
use mailtls_storage::sink::clickhouse::read;
use mailtls_storage::sink::clickhouse::rowbinary::decode_row_json;
use mailtls_storage::sink::clickhouse::{
    BatchLimits, Batcher, ClickhouseConfig, ClickhouseSink, Credentials, SkipExisting,
};
use mailtls_storage::spool::Spool;
use mailtls_storage::stats::SensorStatsRow;
use mailtls_storage::{Error, SessionRecord};
use std::time::{Duration, Instant};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The server URL, or `None` after a loud message.
fn server(test: &str) -> Option<String> {
    let url = env("MAILTLS_TEST_CLICKHOUSE_URL");
    if url.is_none() {
        eprintln!(
            "\n*** SKIPPED {test}: MAILTLS_TEST_CLICKHOUSE_URL is not set \
             (run tests/clickhouse/run.sh, or eval \"$(scripts/clickhouse-server.sh env)\") ***\n"
        );
    }
    url
}

fn records() -> Vec<SessionRecord> {
    let text = include_str!("testdata/mailpeers-2026.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("testdata record"))
        .collect()
}

fn credentials() -> Credentials {
    Credentials {
        user: env("MAILTLS_TEST_CLICKHOUSE_USER"),
        password: env("MAILTLS_TEST_CLICKHOUSE_PASSWORD"),
    }
}

fn config(url: &str, database: &str) -> ClickhouseConfig {
    let mut cfg = ClickhouseConfig::new(url);
    cfg.schema.database = database.to_string();
    cfg.credentials = credentials();
    cfg.batch_max_age = Duration::from_millis(100);
    cfg.close_timeout = Duration::from_secs(20);
    cfg
}

/// Runs SQL through the clickhouse crate and returns the raw answer in `format`.
fn query(url: &str, sql: &str, format: &str) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut client = clickhouse::Client::default()
            .with_url(url)
            .with_validation(false);
        let creds = credentials();
        if let Some(u) = creds.user {
            client = client.with_user(u);
        }
        if let Some(p) = creds.password {
            client = client.with_password(p);
        }
        let mut cursor = client
            .query_raw(sql)
            .fetch_bytes(format)
            .expect("query starts");
        cursor.collect().await.expect("query answers").to_vec()
    })
}

fn text(url: &str, sql: &str) -> String {
    String::from_utf8_lossy(&query(url, sql, "TabSeparated"))
        .trim()
        .to_string()
}

fn fresh_database(url: &str, name: &str) -> String {
    let db = format!("mt_{name}_{}", std::process::id());
    text(url, &format!("DROP DATABASE IF EXISTS {db}"));
    db
}

fn write_all(
    cfg: ClickhouseConfig,
    records: &[SessionRecord],
) -> mailtls_storage::sink::clickhouse::SinkReport {
    let handle = ClickhouseSink::start(cfg).expect("sink starts");
    for chunk in records.chunks(17) {
        handle.send(chunk.to_vec()).expect("send");
    }
    handle.close().expect("close")
}

#[test]
fn round_trip_equals_the_jsonl_records_field_by_field() {
    let Some(url) = server("round_trip") else {
        return;
    };
    let db = fresh_database(&url, "roundtrip");
    let recs = records();
    let report = write_all(config(&url, &db), &recs);
    assert_eq!(report.rows_written, recs.len() as u64);
    assert_eq!(report.rows_dropped, 0);

    let cols = column_list(SESSION_COLUMNS);
    let bytes = query(
        &url,
        &format!("SELECT {cols} FROM {db}.sessions ORDER BY session_id"),
        "RowBinary",
    );
    let mut pos = 0;
    let mut rows = Vec::new();
    while pos < bytes.len() {
        let mut row = decode_row_json(&bytes, &mut pos, SESSION_COLUMNS).expect("decodable row");
        let sid = row
            .remove("session_id")
            .and_then(|v| v.as_u64())
            .expect("session_id");
        row.remove("batch_id");
        rows.push((sid, serde_json::Value::Object(row)));
    }
    let mut expected: Vec<(u64, serde_json::Value)> = recs
        .iter()
        .map(|r| {
            (
                mailtls_storage::sink::clickhouse::rowbinary::session_id(r),
                serde_json::to_value(r).expect("json"),
            )
        })
        .collect();
    expected.sort_by_key(|(sid, _)| *sid);
    assert_eq!(rows.len(), expected.len(), "one row per record");
    for ((sid, got), (esid, want)) in rows.iter().zip(&expected) {
        assert_eq!(sid, esid);
        for (field, value) in want.as_object().expect("object") {
            assert_eq!(
                got.get(field),
                Some(value),
                "field {field} of session {sid}"
            );
        }
    }

    // Rollups agree with the raw rows.
    assert_eq!(
        text(
            &url,
            &format!("SELECT sum(sessions) FROM {db}.sessions_hourly")
        ),
        "120"
    );
    let outcome_tls = recs.iter().filter(|r| r.outcome.as_str() == "tls").count();
    assert_eq!(
        text(
            &url,
            &format!("SELECT sum(sessions) FROM {db}.sessions_hourly WHERE outcome = 'tls'")
        ),
        outcome_tls.to_string()
    );
    let servers: std::collections::HashSet<_> =
        recs.iter().map(|r| (r.server_ip, r.server_port)).collect();
    assert_eq!(
        text(
            &url,
            &format!("SELECT count(), sum(sessions) FROM {db}.servers")
        ),
        format!("{}\t120", servers.len())
    );
    let clients: std::collections::HashSet<_> = recs.iter().map(|r| r.client_ip).collect();
    assert_eq!(
        text(
            &url,
            &format!("SELECT count(), sum(sessions) FROM {db}.clients")
        ),
        format!("{}\t120", clients.len())
    );
    text(&url, &format!("DROP DATABASE {db}"));
}

#[test]
fn startup_errors_are_one_line() {
    let Some(url) = server("startup_errors") else {
        return;
    };
    let mut cfg = config(&url, "mt_unused");
    cfg.credentials.user = Some(env("MAILTLS_TEST_CLICKHOUSE_USER").unwrap_or("default".into()));
    cfg.credentials.password = Some("certainly-wrong".to_string());
    let err = ClickhouseSink::start(cfg)
        .err()
        .expect("wrong password fails");
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    assert!(err.to_string().contains("refused user"), "{err}");

    let mut cfg = config(&url, "mt_no_such_database");
    cfg.create_schema = false;
    let err = ClickhouseSink::start(cfg)
        .err()
        .expect("unknown database fails");
    assert!(matches!(err, Error::UnknownDatabase { .. }), "{err}");
    assert!(!err.to_string().contains('\n'));

    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let down = format!("http://127.0.0.1:{port}");
    let err = ClickhouseSink::start(config(&down, "mt_down"))
        .err()
        .expect("down fails");
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(!err.to_string().contains('\n'));

    // With a spool, a server down at start is not an error: rows wait on disk.
    let spool = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(&down, "mt_down");
    cfg.spool_dir = Some(spool.path().to_path_buf());
    cfg.close_timeout = Duration::from_secs(1);
    let recs = records();
    let report = write_all(cfg, &recs);
    assert_eq!(report.rows_written, 0);
    assert_eq!(report.rows_spooled, recs.len() as u64);
    assert_eq!(report.spool_rows_pending, recs.len() as u64);
    assert_eq!(report.rows_dropped, 0);
    let (reopened, found) = Spool::open(spool.path(), 1 << 30).expect("reopen");
    assert_eq!(found.rows, recs.len() as u64);
    assert!(!found.previous_run_crashed, "closed cleanly");
    drop(reopened);
}

#[test]
fn https_with_a_private_ca() {
    let Some(url) = server("https") else { return };
    let (Some(https), Some(ca)) = (
        env("MAILTLS_TEST_CLICKHOUSE_HTTPS_URL"),
        env("MAILTLS_TEST_CLICKHOUSE_CA_FILE"),
    ) else {
        eprintln!("*** SKIPPED https: MAILTLS_TEST_CLICKHOUSE_HTTPS_URL/CA_FILE not set ***");
        return;
    };
    let db = fresh_database(&url, "https");
    let mut cfg = config(&https, &db);
    let err = ClickhouseSink::start(cfg.clone())
        .err()
        .expect("unknown CA is refused");
    assert!(err.to_string().contains("certificate"), "{err}");
    cfg.ca_file = Some(ca.clone().into());
    let recs = records();
    let report = write_all(cfg, &recs);
    assert_eq!(report.rows_written, recs.len() as u64);
    assert_eq!(
        text(&url, &format!("SELECT count() FROM {db}.sessions")),
        "120"
    );
    // Read back over https (what `mailtls report --clickhouse https://…` does), line by line.
    let mut read_cfg = ClickhouseConfig::new(https.clone());
    read_cfg.credentials = credentials();
    read_cfg.ca_file = Some(ca.into());
    let mut keys = Vec::new();
    read::query_lines_blocking(
        &read_cfg,
        &format!("SELECT session_id FROM {db}.sessions FORMAT JSONEachRow"),
        "JSONEachRow",
        &[("output_format_json_quote_64bit_integers", "0")],
        Duration::from_secs(30),
        &mut |line| {
            let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
            keys.push(v["session_id"].as_u64().ok_or("session_id is a number")?);
            Ok(())
        },
    )
    .expect("rows read back over https");
    keys.sort_unstable();
    let mut want: Vec<u64> = recs
        .iter()
        .map(mailtls_storage::sink::clickhouse::rowbinary::session_id)
        .collect();
    want.sort_unstable();
    assert_eq!(keys, want);
    // An unknown table is an error naming it, not an empty answer.
    let err = read::query_lines_blocking(
        &read_cfg,
        &format!("SELECT 1 FROM {db}.no_such_table FORMAT TabSeparated"),
        "TabSeparated",
        &[],
        Duration::from_secs(30),
        &mut |_| Ok(()),
    )
    .expect_err("unknown table");
    assert!(err.to_string().contains("no_such_table"), "{err}");
    text(&url, &format!("DROP DATABASE {db}"));
}

#[test]
fn a_batch_replayed_after_it_was_inserted_is_not_counted_twice() {
    let Some(url) = server("replay_dedup") else {
        return;
    };
    let db = fresh_database(&url, "replay");
    let recs = records();
    // The server takes a batch but its answer is lost: the batch stays in the spool.
    let mut batcher = Batcher::new(
        "replaytest".to_string(),
        BatchLimits {
            max_rows: 1000,
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(60),
        },
    );
    let now = Instant::now();
    let mut batches: Vec<_> = recs
        .iter()
        .filter_map(|r| batcher.push_session(r, now))
        .collect();
    batches.extend(batcher.flush_all());
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    let cfg = config(&url, &db);
    // Create the schema, then insert the batch's bytes as the lost attempt did.
    write_all(cfg.clone(), &[]);
    let cols = column_list(SESSION_COLUMNS);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let creds = credentials();
        let mut client = clickhouse::Client::default().with_url(url.as_str());
        if let Some(u) = creds.user {
            client = client.with_user(u);
        }
        if let Some(p) = creds.password {
            client = client.with_password(p);
        }
        let mut insert = client
            .insert_formatted_with(format!(
                "INSERT INTO {db}.sessions ({cols}) FORMAT RowBinary"
            ))
            .with_setting("query_id", batch.id.clone());
        insert
            .send(bytes::Bytes::from(batch.data.clone()))
            .await
            .expect("send");
        insert.end().await.expect("insert");
    });
    let spool_dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut spool, _) = Spool::open(spool_dir.path(), 1 << 30).expect("spool");
        spool.append(batch).expect("append");
        spool.close().expect("close");
    }
    let mut cfg = config(&url, &db);
    cfg.spool_dir = Some(spool_dir.path().to_path_buf());
    let report = write_all(cfg, &[]);
    assert_eq!(report.batches_replayed, 1);
    assert_eq!(report.batches_deduplicated, 1, "{report:?}");
    assert_eq!(report.rows_written, 0);
    assert_eq!(
        text(
            &url,
            &format!("SELECT count(), uniqExact(session_id) FROM {db}.sessions")
        ),
        "120\t120"
    );
    assert_eq!(
        text(
            &url,
            &format!("SELECT sum(sessions) FROM {db}.sessions_hourly")
        ),
        "120"
    );
    text(&url, &format!("DROP DATABASE {db}"));
}

#[test]
fn skip_existing_makes_a_second_load_idempotent() {
    let Some(url) = server("skip_existing") else {
        return;
    };
    let db = fresh_database(&url, "skip");
    let recs = records();
    let mut cfg = config(&url, &db);
    cfg.skip_existing = SkipExisting::Always;
    write_all(cfg.clone(), &recs[..50]);
    let report = write_all(cfg, &recs);
    assert_eq!(report.rows_skipped_existing, 50);
    assert_eq!(report.rows_written, 70);
    assert_eq!(
        text(
            &url,
            &format!("SELECT count(), uniqExact(session_id) FROM {db}.sessions")
        ),
        "120\t120"
    );
    text(&url, &format!("DROP DATABASE {db}"));
}

fn v2_add_column(cfg: &mailtls_storage::schema::SchemaConfig, _: ServerGeneration) -> Vec<String> {
    vec![format!(
        "ALTER TABLE {}.sensor_stats ADD COLUMN test_added UInt32 DEFAULT 7",
        cfg.database
    )]
}

#[test]
fn an_older_schema_is_upgraded_in_place() {
    let Some(url) = server("migrations") else {
        return;
    };
    let db = fresh_database(&url, "migrate");
    let cfg = config(&url, &db);
    write_all(cfg.clone(), &records()[..10]);
    assert_eq!(
        text(
            &url,
            &format!("SELECT max(version) FROM {db}.schema_version")
        ),
        "1"
    );
    // A later mailtls with a second migration.
    let mut migrations = MIGRATIONS.to_vec();
    migrations.push(Migration {
        version: 2,
        description: "test: add a column",
        statements: v2_add_column,
    });
    let reached =
        mailtls_storage::sink::clickhouse::healthcheck::migrate_blocking(&cfg, &migrations)
            .expect("migrates");
    assert_eq!(reached, 2);
    assert_eq!(
        text(
            &url,
            &format!("SELECT max(version), count() FROM {db}.schema_version")
        ),
        "2\t2"
    );
    assert_eq!(
        text(&url, &format!("SELECT count() FROM system.columns WHERE database = '{db}' AND name = 'test_added'")),
        "1"
    );
    // Running it again changes nothing; the older mailtls still writes.
    let reached =
        mailtls_storage::sink::clickhouse::healthcheck::migrate_blocking(&cfg, &migrations)
            .expect("idempotent");
    assert_eq!(reached, 2);
    let report = write_all(cfg, &records()[10..20]);
    assert_eq!(report.rows_written, 10);
    assert_eq!(
        text(&url, &format!("SELECT count() FROM {db}.sessions")),
        "20"
    );
    text(&url, &format!("DROP DATABASE {db}"));
}

#[test]
fn stats_rows_carry_the_sinks_own_counters() {
    let Some(url) = server("sensor_stats") else {
        return;
    };
    let db = fresh_database(&url, "stats");
    let handle = ClickhouseSink::start(config(&url, &db)).expect("start");
    handle.send(records()).expect("send");
    handle.flush_wait().expect("flush");
    handle
        .write_stats(SensorStatsRow {
            ts: 1_795_383_914,
            sensor: "s1".to_string(),
            interval_ms: 10_000,
            packets: 1000,
            records: 120,
            ..SensorStatsRow::default()
        })
        .expect("stats");
    let report = handle.close().expect("close");
    assert_eq!(report.rows_written, 121);
    assert_eq!(
        text(
            &url,
            &format!("SELECT sensor, packets, records, rows_written, insert_latency_p50_us > 0, insert_latency_max_us >= insert_latency_p99_us FROM {db}.sensor_stats")
        ),
        "s1\t1000\t120\t120\t1\t1"
    );
    text(&url, &format!("DROP DATABASE {db}"));
}

#[test]
fn cluster_mode_writes_through_distributed_tables() {
    let Some(url) = server("cluster") else { return };
    let Some(cluster) = env("MAILTLS_TEST_CLICKHOUSE_CLUSTER") else {
        eprintln!("*** SKIPPED cluster: MAILTLS_TEST_CLICKHOUSE_CLUSTER not set ***");
        return;
    };
    let db = fresh_database(&url, "cluster");
    let mut cfg = config(&url, &db);
    // No ZooKeeper here: create the local and Distributed tables on this node only.
    cfg.schema.cluster = Some(ClusterConfig {
        name: cluster,
        replicated: false,
        on_cluster: false,
    });
    let report = write_all(cfg, &records());
    assert_eq!(report.rows_written, 120);
    assert_eq!(
        text(&url, &format!("SELECT count() FROM {db}.sessions_local")),
        "120"
    );
    assert_eq!(
        text(
            &url,
            &format!("SELECT sum(sessions) FROM {db}.sessions_hourly")
        ),
        "120"
    );
    assert_eq!(
        text(
            &url,
            &format!(
                "SELECT engine FROM system.tables WHERE database = '{db}' AND name = 'sessions'"
            )
        ),
        "Distributed"
    );
    text(&url, &format!("DROP DATABASE {db}"));
}
