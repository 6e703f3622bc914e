//! Prints the DDL `mailtls schema` would print, one statement per block, separated by
//! `;` lines.
//!
//! `cargo run -p mailtls-storage --example schema -- [modern|legacy] [--database DB]
//! [--table T] [--ttl-days N] [--rollup-ttl-days N] [--cluster NAME] [--replicated]`

use mailtls_storage::schema::{render_ddl, ClusterConfig, SchemaConfig, ServerGeneration};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut cfg = SchemaConfig::default();
    let mut generation = ServerGeneration::Modern;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "modern" => generation = ServerGeneration::Modern,
            "legacy" => generation = ServerGeneration::Legacy,
            "--database" => cfg.database = value(),
            "--table" => cfg.table = value(),
            "--ttl-days" => cfg.ttl_days = value().parse().ok(),
            "--rollup-ttl-days" => cfg.rollup_ttl_days = value().parse().ok(),
            "--cluster" => {
                cfg.cluster = Some(ClusterConfig {
                    name: value(),
                    replicated: false,
                    on_cluster: true,
                })
            }
            "--no-on-cluster" => {
                if let Some(c) = cfg.cluster.as_mut() {
                    c.on_cluster = false;
                }
            }
            "--replicated" => {
                if let Some(c) = cfg.cluster.as_mut() {
                    c.replicated = true;
                }
            }
            other => {
                eprintln!("unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    if let Err(e) = cfg.validate() {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    for statement in render_ddl(&cfg, generation) {
        println!("{statement}\n;");
    }
    ExitCode::SUCCESS
}
