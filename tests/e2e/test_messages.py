"""Real mail with real message bodies: samples/mail-messages.pcap, 60 sessions recorded by
scripts/bench/record_messages.py (Postfix 3.7 configured by ../shared/tools/mailpeers.sh,
swaks with OpenSSL, loopback at MTU 1500), messages of 0.2 kB to 2 MB over STARTTLS (TLS 1.2
and 1.3), implicit TLS on 465, submission on 587 and clear text. The manifest beside it says
what each session was asked to do, by client port.

Checks what the handshake-only peers captures cannot: a session that carries a large body
after its handshake is one record with every byte and packet counted, MAIL/RCPT inside TLS
are not counted as clear text, and a body sent in clear never reaches any output."""
import csv
import importlib.util
import json
import subprocess

import pytest

from conftest import BIN, REPO, run_read

SAMPLE = REPO / "samples" / "mail-messages.pcap"
MANIFEST = REPO / "samples" / "mail-messages.manifest.tsv"
SEED = 1  # record_messages.py's default, with which the sample was recorded


def manifest():
    with open(MANIFEST) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def recorder():
    """scripts/bench/record_messages.py as a module (to regenerate the bodies it sent)."""
    spec = importlib.util.spec_from_file_location(
        "record_messages", REPO / "scripts" / "bench" / "record_messages.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def records(mailtls_bin):
    recs, _ = run_read([SAMPLE])
    return {r["client_port"]: r for r in recs}


def test_every_delivery_is_one_record_as_the_manifest_says(records):
    rows = manifest()
    assert len(rows) == 60
    for row in rows:
        port = int(row["client_port"])
        r = records.get(port)
        assert r is not None, f"no record for client port {port}: {row}"
        assert r["server_port"] == int(row["port"]), row
        assert row["swaks_exit"] == "0", row
        if row["tls"] == "plain":
            assert (r["mode"], r["outcome"]) == ("plaintext", "plaintext_offered"), row
            assert (r["plaintext_mail_tx"], r["plaintext_rcpt"]) == (1, 1), row
        else:
            want_mode = "implicit_tls" if row["port"] == "465" else "starttls"
            want_version = {"tlsv1_2": "TLSv1.2", "tlsv1_3": "TLSv1.3"}[row["tls"]]
            assert (r["mode"], r["outcome"], r["tls_version"]) == \
                (want_mode, "tls", want_version), row
            # MAIL and RCPT went inside TLS: nothing in clear.
            assert (r["plaintext_mail_tx"], r["plaintext_rcpt"]) == (0, 0), row
            assert r["tls_established"] and r["tls_handshake_us"] > 0, row
        # swaks closes with FIN or, after QUIT, with a reset.
        assert r["end_reason"] in ("fin", "rst"), row


def test_bodies_are_counted_to_the_byte_after_the_handshake(mailtls_bin):
    """The client's payload bytes are at least the body (TLS adds records, the dialogue adds
    commands, TCP may retransmit) and equal tshark's sum of the client's TCP payload; every
    packet tshark sees is in its session's counts or, arriving after both FINs or a reset
    (swaks resets after QUIT), in the reader's late_packets counter."""
    recs, proc = run_read([SAMPLE])
    records = {r["client_port"]: r for r in recs}
    late = int(next(l.split()[1] for l in proc.stderr.splitlines()
                    if l.startswith("late_packets:")))
    for row in manifest():
        r = records[int(row["client_port"])]
        assert int(row["body_bytes"]) <= r["bytes_c2s"], (row, r["bytes_c2s"])
    out = subprocess.run(
        ["tshark", "-n", "-r", str(SAMPLE), "-T", "fields", "-e", "tcp.srcport", "-e",
         "tcp.dstport", "-e", "tcp.len"], capture_output=True, text=True, check=True).stdout
    per_client = {}  # client port -> [packets c2s, bytes c2s, packets s2c, bytes s2c]
    for line in out.splitlines():
        sport, dport, length = (int(x or 0) for x in line.split("\t"))
        to_server = dport in (25, 465, 587)
        c = per_client.setdefault(sport if to_server else dport, [0, 0, 0, 0])
        base = 0 if to_server else 2
        c[base] += 1
        c[base + 1] += length
    unaccounted = 0
    for port, (pc, bc, ps, bs) in per_client.items():
        r = records[port]
        assert (r["bytes_c2s"], r["bytes_s2c"]) == (bc, bs), port
        assert r["packets_c2s"] <= pc and r["packets_s2c"] <= ps, port
        unaccounted += pc + ps - r["packets_c2s"] - r["packets_s2c"]
    assert unaccounted == late


def test_a_body_sent_in_clear_never_reaches_the_output(mailtls_bin, tmp_path):
    rec = recorder()
    sessions = rec.plan(60, SEED, 16.0, 1.4, 2048.0)
    rng = rec.random.Random(SEED + 1)
    bodies = {i: rec.body(size, rng) for i, _port, _tls, size in sessions}
    clear = [i for i, port, tls, _size in sessions if tls == "plain"]
    assert clear, "the sample has clear-text deliveries"
    jsonl = tmp_path / "out.jsonl"
    proc = subprocess.run([str(BIN), "read", str(SAMPLE), "--jsonl", str(jsonl)],
                          capture_output=True, text=True, check=True)
    outputs = jsonl.read_text() + proc.stdout + proc.stderr
    assert len(outputs.splitlines()) > 60
    for i in clear:
        body = bodies[i]
        # Every 40-character piece of the body (the base64 lines are 76 long).
        pieces = {body[k:k + 40] for k in range(0, len(body) - 40, 97)}
        assert pieces
        leaked = [p for p in pieces if p in outputs]
        assert not leaked, f"session {i}: body text in the output: {leaked[:3]}"
    # The capture does carry it: the check above is not vacuous.
    raw = SAMPLE.read_bytes()
    assert any(p.encode() in raw for p in list(pieces)[:20])


def test_records_are_the_same_for_any_worker_count(mailtls_bin):
    runs = []
    for w in ("1", "2", "4"):
        recs, _ = run_read([SAMPLE], "--workers", w)
        runs.append(sorted(json.dumps(r, sort_keys=True) for r in recs))
    assert runs[0] == runs[1] == runs[2]
