"""Shared fixtures for the end-to-end tests: where the binary and the corpus are, and a helper
that runs `mailtls read` and returns its JSONL records."""
import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("MAILTLS_SHARED", REPO.parent / "shared")).resolve()
CORPUS = SHARED / "corpus"
PEERS = CORPUS / "peers"
PUBLIC = CORPUS / "public"
BIN = pathlib.Path(os.environ.get("MAILTLS_BIN", REPO / "target" / "release" / "mailtls"))


def run_read(captures, *extra, check=True):
    """Runs `mailtls read CAPTURES --jsonl - EXTRA...`; returns (records, completed process)."""
    cmd = [str(BIN), "read", *[str(c) for c in captures], "--jsonl", "-", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}: {proc.stderr[-2000:]}")
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return records, proc


@pytest.fixture(scope="session")
def mailtls_bin():
    """Path to the release binary (built by the test script before pytest runs)."""
    if not BIN.exists():
        pytest.fail(f"{BIN} not built; run `cargo build --release` first")
    return BIN


# ---- mail peers: the recorded capture and a fresh one (shared by test_peers and test_workers) ----
import dataclasses  # noqa: E402
import fcntl  # noqa: E402
import random  # noqa: E402

# The fresh capture's seed is drawn once per test run (or fixed with MAILTLS_PEERS_SEED) and shown
# in pytest's header and in every assertion about that capture, so a failure can be re-recorded.
PEERS_SEED = int(os.environ.get("MAILTLS_PEERS_SEED") or random.SystemRandom().randint(1, 32767))
PEERS_SESSIONS = int(os.environ.get("MAILTLS_PEERS_SESSIONS", "200"))


def pytest_report_header(config):
    return (f"fresh mail-peers capture: seed {PEERS_SEED}, {PEERS_SESSIONS} sessions "
            f"(repeat with MAILTLS_PEERS_SEED={PEERS_SEED})")


@dataclasses.dataclass(frozen=True)
class PeersCapture:
    """A mail-peers capture with the driver's manifest and Postfix's log beside it."""
    label: str
    pcap: pathlib.Path
    manifest: pathlib.Path
    postfix_log: pathlib.Path


@pytest.fixture(scope="session")
def recorded_peers():
    base = PEERS / "mailpeers-2026"
    return PeersCapture("recorded mailpeers-2026", base.with_suffix(".pcap"),
                        pathlib.Path(f"{base}.manifest.tsv"), pathlib.Path(f"{base}.postfix.log"))


@pytest.fixture(scope="session")
def fresh_peers(tmp_path_factory):
    """Records a new capture with ../shared/tools/mailpeers.sh (root; installs and reconfigures
    Postfix). A lock keeps two test runs on one machine from sharing Postfix at once."""
    out = tmp_path_factory.mktemp("mailpeers")
    label = f"fresh mailpeers capture (MAILTLS_PEERS_SEED={PEERS_SEED})"
    cmd = ["bash", str(SHARED / "tools" / "mailpeers.sh"), str(out), str(PEERS_SEED), str(PEERS_SESSIONS)]
    with open("/tmp/mailtls-mailpeers.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    print(f"{label}: {proc.stdout.strip()}")
    if proc.returncode != 0 or not (out / "capture.pcap").exists():
        pytest.fail(f"{label}: {cmd} exited {proc.returncode}: {proc.stdout[-1000:]} {proc.stderr[-2000:]}")
    return PeersCapture(label, out / "capture.pcap", out / "manifest.tsv", out / "postfix.log")
