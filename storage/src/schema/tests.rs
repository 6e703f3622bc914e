use super::*;

fn joined(cfg: &SchemaConfig, generation: ServerGeneration) -> String {
    render_ddl(cfg, generation).join("\n;\n")
}

#[test]
fn generations_from_version_strings() {
    assert_eq!(
        ServerGeneration::from_version("18.16.1").ok(),
        Some(ServerGeneration::Legacy)
    );
    assert_eq!(
        ServerGeneration::from_version("23.3.1.2").ok(),
        Some(ServerGeneration::Legacy)
    );
    assert_eq!(
        ServerGeneration::from_version("23.8.16.40").ok(),
        Some(ServerGeneration::Modern)
    );
    assert_eq!(
        ServerGeneration::from_version("26.9.2.1\n").ok(),
        Some(ServerGeneration::Modern)
    );
    assert!(ServerGeneration::from_version("garbage").is_err());
}

#[test]
fn legacy_ddl_uses_only_what_18_16_has() {
    let cfg = SchemaConfig {
        ttl_days: Some(30),
        ..SchemaConfig::default()
    };
    let ddl = joined(&cfg, ServerGeneration::Legacy);
    for absent in [
        "LowCardinality",
        "IPv6 ",
        "DateTime64",
        "CODEC",
        "TTL",
        "Bool",
        "IF NOT EXISTS x",
        "SETTINGS",
    ] {
        assert!(!ddl.contains(absent), "{absent} in legacy DDL");
    }
    assert!(ddl.contains("ts_start Int64"));
    assert!(ddl.contains("client_ip FixedString(16)"));
    assert!(ddl.contains("toDateTime(intDiv(ts_start, 1000000), 'UTC')"));
}

#[test]
fn modern_ddl_has_types_codecs_ttl_and_dedup_window() {
    let cfg = SchemaConfig {
        ttl_days: Some(30),
        rollup_ttl_days: Some(400),
        ..SchemaConfig::default()
    };
    let ddl = joined(&cfg, ServerGeneration::Modern);
    assert!(ddl.contains("ts_start DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1))"));
    assert!(ddl.contains("client_ip IPv6"));
    assert!(ddl.contains("tls_cipher LowCardinality(String)"));
    assert!(ddl.contains("starttls_offered Nullable(Bool)"));
    assert!(ddl.contains("TTL toDateTime(ts_start, 'UTC') + INTERVAL 30 DAY"));
    assert!(ddl.contains("TTL hour + INTERVAL 400 DAY"));
    assert!(ddl.contains("non_replicated_deduplication_window = 1000"));
    assert!(!ddl.contains("ON CLUSTER"));
}

#[test]
fn both_generations_create_the_same_objects() {
    let cfg = SchemaConfig::default();
    let names = |g| -> Vec<String> {
        render_ddl(&cfg, g)
            .iter()
            .map(|s| s.split_whitespace().take(7).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(
        names(ServerGeneration::Modern),
        names(ServerGeneration::Legacy)
    );
}

#[test]
fn cluster_mode_has_local_and_distributed_tables() {
    let cfg = SchemaConfig {
        database: "mt".to_string(),
        cluster: Some(ClusterConfig {
            name: "c1".to_string(),
            replicated: true,
            on_cluster: true,
        }),
        ..SchemaConfig::default()
    };
    let ddl = joined(&cfg, ServerGeneration::Modern);
    assert!(ddl.contains("CREATE DATABASE IF NOT EXISTS mt ON CLUSTER c1"));
    assert!(ddl.contains("CREATE TABLE IF NOT EXISTS mt.sessions_local ON CLUSTER c1"));
    assert!(ddl.contains(
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/mt/sessions_local', '{replica}')"
    ));
    assert!(ddl.contains(
        "CREATE TABLE IF NOT EXISTS mt.sessions ON CLUSTER c1 AS mt.sessions_local ENGINE = Distributed(c1, mt, sessions_local, cityHash64(server_ip))"
    ));
    assert!(ddl.contains("TO mt.sessions_hourly_local AS"));
    assert!(ddl.contains("FROM mt.sessions_local"));
    assert!(ddl.contains("ReplicatedSummingMergeTree("));
    assert!(!ddl.contains("non_replicated_deduplication_window = 1000"));
}

#[test]
fn names_are_validated() {
    let mut cfg = SchemaConfig::default();
    assert!(cfg.validate().is_ok());
    cfg.database = "x; DROP TABLE y".to_string();
    assert!(cfg.validate().is_err());
    cfg.database = "ok_1".to_string();
    cfg.table = "1abc".to_string();
    assert!(cfg.validate().is_err());
    cfg.table = "sessions".to_string();
    cfg.ttl_days = Some(0);
    assert!(cfg.validate().is_err());
}

#[test]
fn migrations_are_numbered_in_order() {
    let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
    let expected: Vec<u32> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(versions, expected);
}
