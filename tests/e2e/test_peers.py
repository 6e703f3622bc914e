"""mailtls against real mail peers: the recorded capture in ../shared/corpus/peers and one
recorded afresh by ../shared/tools/mailpeers.sh (random seed, shown in pytest's header; fix it
with MAILTLS_PEERS_SEED=N to repeat a run).

Truth comes from three independent readers of the same sessions, never from mailtls itself:
* tshark 4.0's dissection of the capture (tshark_truth.py): the session table and, per session,
  STARTTLS offered/requested/reply, negotiated TLS version, cipher, SNI, JA3, JA3S;
* Postfix's own log (postfix_truth.py): the TLS version and cipher the server settled on;
* the driver's manifest plus the listener policies of mailpeers.sh (postfix_truth.py): what each
  client asked for and what the server allows, hence the version, cipher, mode and outcome.
"""
import collections
import dataclasses
import datetime as dt

import pytest

import postfix_truth
import tshark_truth
from conftest import run_read

# Fields whose "absent" form the record schema does not pin down (null or ""/0): compared after
# mapping null to the empty value. Fields with a documented empty value (tls_version "",
# starttls_reply 0, starttls_offered null) are compared as they are.
_EMPTY = {"tls_sni": "", "ja3_hash": "", "ja3s_hash": "", "tls_cipher_code": 0, "tls_cipher": "",
          "tls_version_code": 0}


def field(rec, name):
    value = rec.get(name)
    return _EMPTY[name] if value is None and name in _EMPTY else value


def key(rec):
    return (rec["client_ip"], rec["client_port"], rec["server_ip"], rec["server_port"])


def report(label, problems, limit=40):
    head = "\n".join(problems[:limit])
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{label}: {len(problems)} disagreement(s)\n{head}{more}"


@dataclasses.dataclass
class Peers:
    label: str
    records: list
    sessions: dict  # tcp.stream -> tshark_truth.Session
    manifest: dict  # client port -> manifest row
    log_pairs: dict  # tcp.stream -> postfix_truth.SmtpdSession

    def record_for(self, session):
        return self.by_key.get(session.key)

    def __post_init__(self):
        self.by_key = {}
        for r in self.records:
            self.by_key.setdefault(key(r), r)


@pytest.fixture(scope="module", params=["recorded_peers", "fresh_peers"])
def peers(request, mailtls_bin):
    cap = request.getfixturevalue(request.param)
    sessions = tshark_truth.read_sessions(cap.pcap)
    manifest = postfix_truth.read_manifest(cap.manifest)
    year = dt.datetime.fromtimestamp(min(s.first_ts for s in sessions.values()), dt.timezone.utc).year
    log = postfix_truth.read_postfix_log(cap.postfix_log, year)

    # The truth must hold together before it judges anything: one manifest row per captured
    # session, tshark's JA3/JA3S equal to JA3/JA3S recomputed from its own fields, and every
    # captured session paired with exactly one smtpd session of the log.
    assert sorted(s.client_port for s in sessions.values()) == sorted(manifest), \
        f"{cap.label}: tshark's sessions and the manifest's client ports differ"
    for s in sessions.values():
        for ch in s.client_hellos:
            assert tshark_truth.md5(tshark_truth.ja3_string(ch)) == ch.ja3, (cap.label, s.stream)
        for sh in s.server_hellos:
            assert tshark_truth.md5(tshark_truth.ja3s_string(sh)) == sh.ja3s, (cap.label, s.stream)
    pairs = postfix_truth.match_log_to_sessions(log, sessions)
    assert len(pairs) == len(sessions), cap.label

    records, _ = run_read([cap.pcap])
    return Peers(cap.label, records, sessions, manifest, pairs)


def describe(s):
    return f"tcp.stream {s.stream} {s.client_ip}:{s.client_port} -> {s.server_ip}:{s.server_port}"


def test_one_record_per_tcp_session(peers):
    """1a: the set of (client, server) 4-tuples mailtls reports is tshark's set of TCP sessions on
    25/587/465, each exactly once."""
    counts = collections.Counter(key(r) for r in peers.records)
    twice = {k: c for k, c in counts.items() if c > 1}
    truth = {s.key for s in peers.sessions.values()}
    missing = sorted(truth - set(counts))
    extra = sorted(set(counts) - truth)
    assert not twice and not missing and not extra, (
        f"{peers.label}: {len(peers.records)} records for {len(truth)} TCP sessions; "
        f"more than one record: {twice}; no record: {missing}; no such session: {extra}")


TSHARK_FIELDS = ["starttls_offered", "starttls_requested", "starttls_reply", "tls_version",
                 "tls_version_code", "tls_cipher_code", "tls_sni", "ja3_hash", "ja3s_hash"]


def test_fields_match_tshark(peers):
    """1b: per session, the STARTTLS and TLS handshake facts equal tshark's reading of the same
    bytes (starttls_offered: STARTTLS among the EHLO reply's keyword lines, null without an EHLO
    reply in clear; version: the ServerHello's supported_versions, else its version)."""
    problems, compared = [], 0
    for s in sorted(peers.sessions.values(), key=lambda s: s.stream):
        rec = peers.record_for(s)
        if rec is None:
            problems.append(f"{describe(s)}: no record")
            continue
        truth = s.facts()
        truth["tls_version_code"] = s.tls_version_code
        for name in TSHARK_FIELDS:
            compared += 1
            if field(rec, name) != truth[name]:
                problems.append(f"{describe(s)} {name}: tshark {truth[name]!r}, mailtls {rec.get(name)!r}")
    assert compared and not problems, report(peers.label, problems)


def test_tls_agrees_with_postfix_log(peers):
    """1c: every session for which Postfix logged "TLS connection established ... TLSvX with
    cipher C" has that version and cipher (OpenSSL name mapped to IANA code and name with
    `openssl ciphers -V -stdname`) and tls_established; every record with tls_established has
    such a line."""
    table = postfix_truth.openssl_cipher_table()
    problems, established = [], 0
    for st, lg in sorted(peers.log_pairs.items()):
        s = peers.sessions[st]
        rec = peers.record_for(s)
        if rec is None:
            problems.append(f"{describe(s)}: no record")
            continue
        if lg.tls_established:
            established += 1
            assert lg.tls_cipher in table, f"OpenSSL does not know Postfix's cipher {lg.tls_cipher}"
            code, iana = table[lg.tls_cipher]
            want = {"tls_version": lg.tls_version, "tls_cipher_code": code, "tls_cipher": iana,
                    "tls_established": True}
        else:
            want = {"tls_established": False}
        for name, value in want.items():
            if field(rec, name) != value:
                problems.append(f"{describe(s)} {name}: Postfix log (smtpd[{lg.pid}] "
                                f"{lg.tls_version or 'no TLS'} {lg.tls_cipher}) {value!r}, "
                                f"mailtls {rec.get(name)!r}")
    assert established > 0, f"{peers.label}: no TLS session in the Postfix log"
    assert not problems, report(peers.label, problems)


def test_manifest_ground_truth(peers):
    """1d: what each client asked for, against what its listener allows (mailpeers.sh): a version
    the server accepts is the negotiated version (and a pinned suite the negotiated cipher),
    outcome tls; a version it refuses gives tls_failed and no version; "plain" clients are mode
    plaintext; the listener without STARTTLS gets starttls_offered false and, when the client
    sends STARTTLS anyway, a refusal (starttls_refused)."""
    table = postfix_truth.openssl_cipher_table()
    by_port = collections.defaultdict(list)
    for r in peers.records:
        by_port[r["client_port"]].append(r)
    problems, outcomes = [], collections.Counter()
    for port, row in sorted(peers.manifest.items()):
        e = postfix_truth.expected_from_manifest(row)
        outcomes[e.outcome] += 1
        what = (f"manifest #{row['i']} {row['client_ip']}:{port} -> {row['server']}:{row['port']} "
                f"{row['tool']} {row['version']} {row['cipher']}")
        recs = by_port.get(port, [])
        if len(recs) != 1:
            problems.append(f"{what}: {len(recs)} records with this client port")
            continue
        rec = recs[0]
        want = {"client_ip": row["client_ip"], "server_ip": row["server"], "server_port": row["port"],
                "mode": e.mode, "starttls_offered": e.starttls_offered,
                "starttls_requested": e.starttls_requested, "tls_version": e.tls_version,
                "outcome": e.outcome, "tls_established": e.outcome == "tls"}
        if e.tls_cipher is not None:
            want["tls_cipher"] = e.tls_cipher
            want["tls_cipher_code"] = next(c for c, n in table.values() if n == e.tls_cipher)
        for name, value in want.items():
            if field(rec, name) != value:
                problems.append(f"{what} {name}: expected {value!r}, mailtls {rec.get(name)!r}")
        reply = rec.get("starttls_reply")
        if e.starttls_accepted is True and reply != 220:
            problems.append(f"{what} starttls_reply: expected 220, mailtls {reply!r}")
        if e.starttls_accepted is False and not (isinstance(reply, int) and 400 <= reply < 600):
            problems.append(f"{what} starttls_reply: expected a 4xx/5xx refusal, mailtls {reply!r}")
    # A capture that lacks most kinds of session would make this test say little.
    assert len(outcomes) >= 4, f"{peers.label}: too few kinds of session: {dict(outcomes)}"
    assert not problems, report(f"{peers.label} (expected outcomes {dict(outcomes)})", problems)
