//! Command-line interface: raw clap arguments ([`Cli`]) and their validation into the
//! pipeline's configuration ([`ReadArgs::to_config`]).

use crate::flow::FlowTableConfig;
use crate::pipeline::PipelineConfig;
use crate::ports::PortSet;
use crate::reassembly::StreamConfig;
use crate::session::RecordContext;
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use std::path::PathBuf;
use std::sync::Arc;

/// mailtls: how your mail actually uses TLS, seen passively.
#[derive(Debug, Parser)]
#[command(name = "mailtls", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read capture files (pcap or pcapng) and report every SMTP session.
    Read(ReadArgs),
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
    /// Server ports to watch, comma-separated, or "all" for every TCP port.
    #[arg(long, value_name = "PORTS", default_value = "25,587,465")]
    pub ports: String,
    /// A network of yours (CIDR), for the inbound/outbound/internal/external direction. Repeatable.
    #[arg(long = "local-net", value_name = "CIDR")]
    pub local_nets: Vec<IpNet>,
    /// Worker threads (default: available cores minus one, at least 1).
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
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl ReadArgs {
    /// Validates the arguments into a pipeline configuration.
    pub fn to_config(&self) -> Result<PipelineConfig, String> {
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
                stream: StreamConfig {
                    max_buffer: self.max_flow_buffer.max(32 * 1024),
                    max_segments: 256,
                },
                ports,
                context: Arc::new(context),
            },
            batch_packets: 256,
            tick_us: 1_000_000,
        })
    }
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

/// Available cores minus one (the reader's), at least 1.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "mailtls".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_spec() {
        assert!(parse_ports("25, 587").unwrap().contains(587));
        assert!(parse_ports("all").unwrap().is_all());
        assert!(parse_ports("25,x").is_err());
        assert!(parse_ports("").is_err());
    }
}
