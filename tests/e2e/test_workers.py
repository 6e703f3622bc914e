"""`--workers N` changes how the work is spread, never what is reported: the JSONL records,
compared as a sorted list of canonical JSON lines, are identical for 1, 2 and 4 workers."""
import collections
import json

import pytest

from conftest import PUBLIC, run_read

WORKERS = (1, 2, 4)

# Public captures with several sessions and TLS handshakes, read with `--ports all`: STARTTLS over
# IPv4 and IPv6-in-VLAN, eight TLS 1.2 sessions over IPv6, TLS with a gap, SMTP errors plus a
# ClientHello on 465, SMTP with AUTH next to HTTPS, and ~2000 SYN-only connections.
PUBLIC_CAPTURES = [
    "ndpi/smtp-starttls.pcap",
    "ndpi/tls_certificate_too_long.pcap",
    "zeek/tls/missing-intermediate.pcap",
    "zeek/tls/ssl.v3.pcap",
    "suricata-verify/smtp-errors/smtperr.pcap",
    "zeek/smtp.pcap",
    "ndpi/synscan.pcap",
]


def canonical(records):
    return sorted(json.dumps(r, sort_keys=True) for r in records)


def assert_same_for_all_worker_counts(label, captures, *extra):
    runs = {n: canonical(run_read(captures, *extra, "--workers", str(n))[0]) for n in WORKERS}
    base = runs[WORKERS[0]]
    assert base, f"{label}: no records with --workers {WORKERS[0]}"
    for n in WORKERS[1:]:
        if runs[n] == base:
            continue
        a, b = collections.Counter(base), collections.Counter(runs[n])
        only_1 = list((a - b).elements())[:5]
        only_n = list((b - a).elements())[:5]
        pytest.fail(f"{label}: --workers {WORKERS[0]} gave {len(base)} records, --workers {n} gave "
                    f"{len(runs[n])}; only with {WORKERS[0]}: {only_1}; only with {n}: {only_n}")


def test_workers_recorded_peers(mailtls_bin, recorded_peers):
    assert_same_for_all_worker_counts(recorded_peers.label, [recorded_peers.pcap])


def test_workers_fresh_peers(mailtls_bin, fresh_peers):
    assert_same_for_all_worker_counts(fresh_peers.label, [fresh_peers.pcap])


@pytest.mark.parametrize("capture", PUBLIC_CAPTURES)
def test_workers_public(mailtls_bin, capture):
    path = PUBLIC / capture
    assert path.exists(), path
    assert_same_for_all_worker_counts(capture, [path], "--ports", "all")
