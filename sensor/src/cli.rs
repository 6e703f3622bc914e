//! Command-line interface: raw clap arguments ([`Cli`]) and their validation into the
//! pipeline's configuration ([`ReadArgs::to_config`]).

use crate::flow::FlowTableConfig;
use crate::pipeline::{Delivery, PipelineConfig};
use crate::ports::PortSet;
use crate::reassembly::StreamConfig;
use crate::session::RecordContext;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use mailtls_storage::schema::{ClusterConfig, SchemaConfig, ServerGeneration};
use mailtls_storage::sink::clickhouse::{ClickhouseConfig, Credentials, SkipExisting};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// mailtls: how your mail actually uses TLS, seen passively.
#[derive(Debug, Parser)]
#[command(name = "mailtls", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read capture files (pcap or pcapng) and report every SMTP session.
    Read(Box<ReadArgs>),
    /// Capture live on interfaces (a SPAN/mirror port) until SIGINT/SIGTERM.
    Capture(Box<CaptureArgs>),
    /// Print the ClickHouse DDL (the sink applies it itself unless told not to).
    Schema(SchemaArgs),
    /// Report on recorded sessions (JSONL files or ClickHouse): terminal summary,
    /// `--min-version`, `--html`, `--tlsrpt`.
    Report(Box<ReportArgs>),
}

/// Arguments of `mailtls schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which server generation to render for: modern (23.8 and later) or legacy (18.16 ..).
    #[arg(long, value_enum, default_value = "modern")]
    pub server: ServerArg,
    /// Names, retention and cluster mode, as for the sink.
    #[command(flatten)]
    pub schema: SchemaOptions,
}

/// A ClickHouse server generation on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ServerArg {
    /// ClickHouse 23.8 LTS and later.
    Modern,
    /// ClickHouse before 23.8 (Debian 12's 18.16).
    Legacy,
}

impl From<ServerArg> for ServerGeneration {
    fn from(a: ServerArg) -> Self {
        match a {
            ServerArg::Modern => ServerGeneration::Modern,
            ServerArg::Legacy => ServerGeneration::Legacy,
        }
    }
}

/// Schema options shared by `schema` and the sink.
#[derive(Debug, Args, Clone)]
pub struct SchemaOptions {
    /// ClickHouse database.
    #[arg(
        long = "clickhouse-database",
        value_name = "NAME",
        default_value = "mailtls"
    )]
    pub database: String,
    /// Raw session table.
    #[arg(
        long = "clickhouse-table",
        value_name = "NAME",
        default_value = "sessions"
    )]
    pub table: String,
    /// Keep raw sessions and sensor_stats this many days (modern servers; TTL).
    #[arg(long = "clickhouse-ttl-days", value_name = "DAYS")]
    pub ttl_days: Option<u32>,
    /// Keep the hourly rollup this many days (modern servers; TTL).
    #[arg(long = "clickhouse-rollup-ttl-days", value_name = "DAYS")]
    pub rollup_ttl_days: Option<u32>,
    /// Cluster mode: local tables plus Distributed tables over the cluster NAME.
    #[arg(long = "clickhouse-cluster", value_name = "NAME")]
    pub cluster: Option<String>,
    /// In cluster mode, use Replicated*MergeTree local tables (needs Keeper/ZooKeeper).
    #[arg(long = "clickhouse-replicated", requires = "cluster")]
    pub replicated: bool,
    /// In cluster mode, do not add ON CLUSTER (run the DDL on every node yourself).
    #[arg(long = "clickhouse-no-on-cluster", requires = "cluster")]
    pub no_on_cluster: bool,
}

impl SchemaOptions {
    /// The storage crate's schema configuration.
    pub fn to_schema(&self) -> SchemaConfig {
        SchemaConfig {
            database: self.database.clone(),
            table: self.table.clone(),
            ttl_days: self.ttl_days,
            rollup_ttl_days: self.rollup_ttl_days,
            cluster: self.cluster.as_ref().map(|name| ClusterConfig {
                name: name.clone(),
                replicated: self.replicated,
                on_cluster: !self.no_on_cluster,
            }),
        }
    }
}

/// When to skip rows ClickHouse already holds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SkipExistingArg {
    /// Never check (batch ids still deduplicate retries).
    Never,
    /// Check when the previous run died without closing its spool.
    AfterCrash,
    /// Always check (re-reading captures that may have been loaded).
    Always,
}

/// Options of the ClickHouse sink.
#[derive(Debug, Args, Clone)]
pub struct ClickhouseArgs {
    /// Stream records into ClickHouse at URL (http://host:8123 or https://host:8443).
    #[arg(long, value_name = "URL")]
    pub clickhouse: Option<String>,
    /// ClickHouse user (else $MAILTLS_CLICKHOUSE_USER, else the credentials file).
    // Its own id: `capture --user` (the account the parsers run as) is `user`, and two
    // arguments with one id share their value.
    #[arg(long = "clickhouse-user", id = "clickhouse_user", value_name = "USER")]
    pub user: Option<String>,
    /// ClickHouse password (else $MAILTLS_CLICKHOUSE_PASSWORD, else the credentials file).
    #[arg(long = "clickhouse-password", value_name = "PASSWORD")]
    pub password: Option<String>,
    /// File with `user = NAME` and `password = SECRET` lines.
    #[arg(long = "clickhouse-credentials", value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for https.
    #[arg(long = "clickhouse-ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// A batch closes at this many rows ...
    #[arg(
        long = "clickhouse-batch-rows",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub batch_rows: usize,
    /// ... or this many milliseconds after its first row.
    #[arg(
        long = "clickhouse-batch-ms",
        value_name = "MS",
        default_value_t = 1000
    )]
    pub batch_ms: u64,
    /// Spool directory for batches ClickHouse cannot take now (replayed in order later,
    /// also by the next run).
    #[arg(long = "clickhouse-spool", value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Spool size cap; past it rows are dropped (loudly, counted).
    #[arg(long = "clickhouse-spool-max-bytes", value_name = "BYTES", default_value_t = 1 << 30)]
    pub spool_max_bytes: u64,
    /// Do not create or upgrade the schema at start.
    #[arg(long = "clickhouse-no-create-schema")]
    pub no_create_schema: bool,
    /// When to skip rows ClickHouse already holds (by session id).
    #[arg(
        long = "clickhouse-skip-existing",
        value_enum,
        default_value = "after-crash"
    )]
    pub skip_existing: SkipExistingArg,
    /// Schema names, retention, cluster mode.
    #[command(flatten)]
    pub schema: SchemaOptions,
}

impl ClickhouseArgs {
    /// The sink configuration, or `None` without `--clickhouse`.
    pub fn to_config(&self) -> Result<Option<ClickhouseConfig>, String> {
        let Some(url) = &self.clickhouse else {
            return Ok(None);
        };
        let mut cfg = ClickhouseConfig::new(url.clone());
        cfg.schema = self.schema.to_schema();
        cfg.credentials = Credentials::resolve(
            self.user.as_deref(),
            self.password.as_deref(),
            self.credentials.as_deref(),
            |k| std::env::var(k).ok(),
        )
        .map_err(|e| e.to_string())?;
        cfg.ca_file = self.ca_file.clone();
        cfg.batch_rows = self.batch_rows;
        cfg.batch_max_age = Duration::from_millis(self.batch_ms);
        cfg.spool_dir = self.spool.clone();
        cfg.spool_max_bytes = self.spool_max_bytes;
        cfg.create_schema = !self.no_create_schema;
        cfg.skip_existing = match self.skip_existing {
            SkipExistingArg::Never => SkipExisting::Never,
            SkipExistingArg::AfterCrash => SkipExisting::AfterCrash,
            SkipExistingArg::Always => SkipExisting::Always,
        };
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(Some(cfg))
    }
}

/// Arguments of `mailtls read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Capture files, read in order as one stream.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    /// Write one JSON record per session to PATH ("-" for stdout; then the report is not printed).
    #[arg(long, value_name = "PATH|-")]
    pub jsonl: Option<String>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// What to follow and how.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// ClickHouse sink.
    #[command(flatten)]
    pub clickhouse: ClickhouseArgs,
}

/// Arguments of `mailtls capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to capture on (a SPAN/mirror port). Repeatable.
    #[arg(short = 'i', long = "interface", value_name = "IFACE", required = true)]
    pub interfaces: Vec<String>,
    /// BPF filter (default: TCP on the watched ports, also inside VLAN tags).
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,
    /// Bytes captured per packet.
    #[arg(long, value_name = "N", default_value_t = 65535)]
    pub snaplen: i32,
    /// Kernel capture ring per interface, MiB.
    #[arg(long = "buffer-mb", value_name = "N", default_value_t = 256)]
    pub buffer_mb: i32,
    /// Do not put the interfaces in promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,
    /// Write one JSON record per session to PATH (reopened on SIGHUP, for logrotate).
    #[arg(long, value_name = "PATH")]
    pub jsonl: Option<PathBuf>,
    /// Run the parsers as this user after opening the interfaces (default when started
    /// as root: nobody).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Keep running as root (parsers included). Not recommended.
    #[arg(long)]
    pub allow_root: bool,
    /// Serve Prometheus metrics on ADDR (e.g. 127.0.0.1:9877); off by default.
    #[arg(long = "metrics-listen", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Seconds between log lines (rates, drops, flows, sink lag).
    #[arg(long = "log-interval", value_name = "SECS", default_value_t = 60)]
    pub log_interval: u64,
    /// Seconds after the handshake (or the clear-text dialogue) is over before a session
    /// that is still open is written (end_reason in_progress).
    #[arg(long = "early-emit", value_name = "SECS", default_value_t = 30)]
    pub early_emit: u32,
    /// TOML file with any of these options (keys are the long option names); options on the
    /// command line win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to follow and how.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// ClickHouse sink.
    #[command(flatten)]
    pub clickhouse: ClickhouseArgs,
}

/// Options of the engine shared by `read` and `capture`.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Server ports to watch, comma-separated, or "all" for every TCP port.
    #[arg(long, value_name = "PORTS", default_value = "25,587,465")]
    pub ports: String,
    /// A network of yours (CIDR), for the inbound/outbound/internal/external direction. Repeatable.
    #[arg(long = "local-net", value_name = "CIDR")]
    pub local_nets: Vec<IpNet>,
    /// Worker threads (default: two per available core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Sensor name written into every record (default: host name).
    #[arg(long, value_name = "NAME")]
    pub sensor: Option<String>,
    /// Seconds without a packet after which a session is ended.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub idle_timeout: u32,
    /// Most concurrent flows (over all workers) before the least recently seen are evicted.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub max_flows: usize,
    /// Most bytes buffered per direction of one flow.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    pub max_flow_buffer: usize,
    /// Seconds between sensor_stats rows.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub stats_interval: u64,
}

impl ReadArgs {
    /// Validates the arguments into a pipeline configuration.
    pub fn to_config(&self) -> Result<PipelineConfig, String> {
        self.engine.to_config(None)
    }
}

impl CaptureArgs {
    /// Validates the arguments into a pipeline configuration (with early emission).
    pub fn to_config(&self) -> Result<PipelineConfig, String> {
        self.engine
            .to_config(Some(i64::from(self.early_emit) * 1_000_000))
    }

    /// The watched ports as a list (for the default BPF filter); empty for "all".
    pub fn port_list(&self) -> Vec<u16> {
        self.engine
            .ports
            .split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    }
}

impl EngineArgs {
    /// Validates the arguments into a pipeline configuration.
    pub fn to_config(&self, early_emit_us: Option<i64>) -> Result<PipelineConfig, String> {
        let ports = parse_ports(&self.ports)?;
        let workers = match self.workers {
            Some(0) => return Err("--workers must be at least 1".into()),
            Some(n) => n,
            None => default_workers(),
        };
        let context = RecordContext {
            sensor: self.sensor.clone().unwrap_or_else(host_name),
            local_nets: self.local_nets.clone(),
        };
        let ports = Arc::new(ports);
        Ok(PipelineConfig {
            workers,
            ports: ports.clone(),
            table: FlowTableConfig {
                max_flows: (self.max_flows / workers).max(16),
                idle_timeout_us: i64::from(self.idle_timeout) * 1_000_000,
                linger_us: 10_000_000,
                early_emit_us,
                stream: StreamConfig {
                    max_buffer: self.max_flow_buffer.max(32 * 1024),
                    max_segments: 256,
                },
                ports,
                context: Arc::new(context),
            },
            batch_packets: 256,
            tick_us: 1_000_000,
            stats_interval: Duration::from_secs(self.stats_interval.max(1)),
            delivery: Delivery::Records,
        })
    }
}

/// Expands `--config FILE` (TOML) into command-line options placed right after the
/// subcommand, so that options given on the command line (which come later) win. Keys are
/// long option names (`clickhouse-batch-rows = 5000`, `interface = ["eth1", "eth2"]`,
/// `allow-root = false`).
pub fn expand_config(args: Vec<std::ffi::OsString>) -> Result<Vec<std::ffi::OsString>, String> {
    let pos = args
        .iter()
        .position(|a| a == "--config" || a.to_string_lossy().starts_with("--config="));
    let Some(pos) = pos else {
        return Ok(args);
    };
    let path = match args[pos].to_string_lossy().strip_prefix("--config=") {
        Some(p) => p.to_string(),
        None => args
            .get(pos + 1)
            .map(|p| p.to_string_lossy().into_owned())
            .ok_or("--config needs a file")?,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{path}: not valid TOML: {e}"))?;
    let mut extra = Vec::new();
    for (key, value) in table {
        let flag = format!("--{key}");
        let mut push = |v: &toml::Value| -> Result<(), String> {
            match v {
                toml::Value::Boolean(true) => extra.push(flag.clone()),
                toml::Value::Boolean(false) => {}
                toml::Value::String(s) => extra.push(format!("{flag}={s}")),
                toml::Value::Integer(i) => extra.push(format!("{flag}={i}")),
                toml::Value::Float(f) => extra.push(format!("{flag}={f}")),
                other => return Err(format!("{path}: {key}: unsupported value {other}")),
            }
            Ok(())
        };
        match &value {
            toml::Value::Array(items) => {
                for item in items {
                    push(item)?;
                }
            }
            v => push(v)?,
        }
    }
    let sub = args
        .iter()
        .position(|a| a == "capture" || a == "read")
        .map(|i| i + 1)
        .unwrap_or(1);
    let mut out: Vec<std::ffi::OsString> = args[..sub].to_vec();
    out.extend(extra.into_iter().map(Into::into));
    out.extend_from_slice(&args[sub..]);
    Ok(out)
}

/// Parses `25,587,465` or `all`.
pub fn parse_ports(spec: &str) -> Result<PortSet, String> {
    if spec.trim().eq_ignore_ascii_case("all") {
        return Ok(PortSet::all());
    }
    let mut ports = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p: u16 = part
            .parse()
            .map_err(|_| format!("--ports: {part:?} is not a port number"))?;
        ports.push(p);
    }
    if ports.is_empty() {
        return Err("--ports: no port given".into());
    }
    Ok(PortSet::from_ports(&ports))
}

/// Two workers per available core. Workers sleep when there is nothing to do, so on mixed
/// traffic (the reader is the bottleneck) the extra threads cost nothing. On all-mail traffic
/// (the workers are) one per core gave 0.061 s instead of 0.099 s with one worker for the
/// same 40 MB on 2 cores; two per core, with half the queue each, gave a median of 207 ms
/// instead of 254 ms on all-mail 200 MB (15 runs in turn, 1.89 cores busy instead of 1.59):
/// with the reader and one worker per core there is one busy thread more than cores, and
/// the scheduler cannot share three equal threads out over two cores as evenly as five
/// (docs/BENCHMARK.md).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(1)
        .saturating_mul(2)
}

/// The name of this machine (for the `sensor` field).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "mailtls".to_string())
}

/// Arguments of `mailtls report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// JSONL files written by `mailtls read/capture --jsonl` ("-" for stdin).
    #[arg(value_name = "JSONL")]
    pub jsonl: Vec<String>,
    /// Read sessions from ClickHouse at URL (http:// or https://) instead of / besides JSONL
    /// files.
    #[arg(long, value_name = "URL")]
    pub clickhouse: Option<String>,
    /// Extra PEM CA certificates trusted for an https:// ClickHouse (besides the system's).
    #[arg(long = "clickhouse-ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// ClickHouse database.
    #[arg(
        long = "clickhouse-database",
        value_name = "NAME",
        default_value = "mailtls"
    )]
    pub database: String,
    /// Raw session table.
    #[arg(
        long = "clickhouse-table",
        value_name = "NAME",
        default_value = "sessions"
    )]
    pub table: String,
    /// ClickHouse user (else $MAILTLS_CLICKHOUSE_USER, else the credentials file).
    // Its own id: `capture --user` (the account the parsers run as) is `user`, and two
    // arguments with one id share their value.
    #[arg(long = "clickhouse-user", id = "clickhouse_user", value_name = "USER")]
    pub user: Option<String>,
    /// ClickHouse password (else $MAILTLS_CLICKHOUSE_PASSWORD, else the credentials file).
    #[arg(long = "clickhouse-password", value_name = "PASSWORD")]
    pub password: Option<String>,
    /// File with `user = NAME` and `password = SECRET` lines.
    #[arg(long = "clickhouse-credentials", value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Only sessions that started at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub from: Option<String>,
    /// Only sessions that started at or before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub to: Option<String>,
    /// List the peers and sessions that would fail under this minimum TLS version.
    #[arg(long = "min-version", value_name = "VERSION", value_parser = ["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"])]
    pub min_version: Option<String>,
    /// Write a self-contained HTML report (inline SVG charts) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write RFC 8460 (SMTP TLS reporting) JSON aggregate reports of outbound sessions,
    /// one file per receiving MX, into DIR.
    #[arg(long, value_name = "DIR")]
    pub tlsrpt: Option<PathBuf>,
    /// organization-name of the TLSRPT reports.
    #[arg(
        long = "tlsrpt-org",
        value_name = "NAME",
        default_value = "mailtls passive sensor"
    )]
    pub tlsrpt_org: String,
    /// contact-info of the TLSRPT reports.
    #[arg(
        long = "tlsrpt-contact",
        value_name = "ADDR",
        default_value = "postmaster@localhost"
    )]
    pub tlsrpt_contact: String,
    /// A network of yours (CIDR): recompute every record's direction. Repeatable.
    #[arg(long = "local-net", value_name = "CIDR")]
    pub local_nets: Vec<IpNet>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_expands_before_command_line() {
        let dir = std::env::temp_dir().join(format!("mailtls-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "interface = [\"eth1\", \"eth2\"]\nworkers = 3\nallow-root = true\nno-promisc = false\n").unwrap();
        let args: Vec<std::ffi::OsString> = [
            "mailtls",
            "capture",
            "--config",
            f.to_str().unwrap(),
            "--workers",
            "2",
        ]
        .iter()
        .map(Into::into)
        .collect();
        let out = expand_config(args).unwrap();
        let cli = Cli::try_parse_from(out).unwrap();
        let Command::Capture(c) = cli.command else {
            panic!("not capture")
        };
        assert_eq!(c.interfaces, vec!["eth1", "eth2"]);
        assert_eq!(c.engine.workers, Some(2), "command line wins");
        assert!(c.allow_root && !c.no_promisc);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn capture_user_and_clickhouse_user_are_two_options() {
        let parse = |extra: &[&str]| {
            let args = ["mailtls", "capture", "--interface", "lo"]
                .iter()
                .chain(extra);
            let Command::Capture(c) = Cli::try_parse_from(args).unwrap().command else {
                panic!("not capture")
            };
            (c.user, c.clickhouse.user)
        };
        let both = parse(&["--user", "nobody", "--clickhouse-user", "bob"]);
        assert_eq!(both, (Some("nobody".into()), Some("bob".into())));
        assert_eq!(parse(&["--user", "nobody"]), (Some("nobody".into()), None));
        assert_eq!(
            parse(&["--clickhouse-user", "bob"]),
            (None, Some("bob".into()))
        );
    }

    #[test]
    fn ports_spec() {
        assert!(parse_ports("25, 587").unwrap().contains(587));
        assert!(parse_ports("all").unwrap().is_all());
        assert!(parse_ports("25,x").is_err());
        assert!(parse_ports("").is_err());
    }
}
