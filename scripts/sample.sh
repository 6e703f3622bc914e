#!/usr/bin/env bash
# The main job: set up, build, and analyse the bundled sample capture of real mail peers
# (Postfix 3.7 with four TLS policies; OpenSSL and swaks clients), printing the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
exec ./target/release/mailtls read samples/mailpeers-sample.pcap "$@"
