"""Ground truth from the mail peers themselves: Postfix's log and the driver's manifest.

* `read_manifest(path)`: what mailpeers.sh asked each client to do (by client port).
* `read_postfix_log(path)`: one `SmtpdSession` per "connect from" ... "disconnect from" of an
  smtpd process, with the TLS version and cipher of its "TLS connection established" line (if
  any) and whether the TLS handshake failed ("SSL_accept error").
* `match_log_to_sessions(log, sessions)`: pairs each smtpd session with the capture's TCP session
  (tshark_truth.Session) by client IP and order of connection, and checks the pairing with the
  clock (the log has whole seconds; the pairing must keep one constant offset, whatever the
  time zone of the log).
* `openssl_cipher_table()`: OpenSSL cipher name -> (IANA code, IANA name), from
  `openssl ciphers -V -stdname`, which is how Postfix names ciphers in its log.
* `SERVER_POLICIES` / `expected_outcome(...)`: the listener policies that mailpeers.sh configures,
  and what they imply for a client that asks for a given TLS version.

Run it standalone to print what it extracts:  python3 postfix_truth.py CAPTURE LOG MANIFEST
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import re
import statistics
import subprocess
import sys
from typing import Optional

# Postfix names TLS 1.0 "TLSv1"; mailtls and tshark_truth say "TLSv1.0".
LOG_VERSION = {"SSLv3": "SSLv3", "TLSv1": "TLSv1.0", "TLSv1.1": "TLSv1.1", "TLSv1.2": "TLSv1.2",
               "TLSv1.3": "TLSv1.3"}
# Manifest version token -> TLS version name.
MANIFEST_VERSION = {"tls1": "TLSv1.0", "tls1_1": "TLSv1.1", "tls1_2": "TLSv1.2", "tls1_3": "TLSv1.3"}
VERSION_ORDER = ["SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]

_LINE = re.compile(r"^(?P<mon>\w{3}) +(?P<day>\d+) (?P<time>\d\d:\d\d:\d\d) \S+ "
                   r"postfix/(?P<daemon>[\w/-]+)\[(?P<pid>\d+)\]: (?P<msg>.*)$")
_PEER = r"(?P<name>[^\s\[]+)\[(?P<ip>[^\]]+)\]"
_CONNECT = re.compile(r"^connect from " + _PEER)
_DISCONNECT = re.compile(r"^disconnect from " + _PEER + r"(?P<stats>.*)$")
_ESTABLISHED = re.compile(r"^(?:\w+ )?TLS connection established from " + _PEER +
                          r": (?P<version>\S+) with cipher (?P<cipher>\S+) "
                          r"\((?P<bits>\d+)/(?P<alg_bits>\d+) bits\)")
_SSL_ERROR = re.compile(r"^SSL_accept error from " + _PEER)
_LOST = re.compile(r"^lost connection after (?P<after>\S+) from " + _PEER)


@dataclasses.dataclass
class SmtpdSession:
    pid: int
    client_ip: str
    connect_ts: float  # log time (naive, taken as UTC), whole seconds
    tls_version: str = ""  # "TLSv1.2" ... as mailtls names it; "" without an established line
    tls_cipher: str = ""  # OpenSSL name as logged
    tls_bits: int = 0
    ssl_accept_error: bool = False
    lost_after: str = ""
    stats: dict = dataclasses.field(default_factory=dict)  # from "disconnect": ehlo=1 starttls=0/1 ...
    closed: bool = False
    lines: list = dataclasses.field(default_factory=list)

    @property
    def tls_established(self) -> bool:
        return bool(self.tls_version)


def _parse_ts(mon, day, hms, year):
    return dt.datetime.strptime(f"{year} {mon} {int(day)} {hms}", "%Y %b %d %H:%M:%S") \
        .replace(tzinfo=dt.timezone.utc).timestamp()


def read_postfix_log(path, year: int) -> list:
    """smtpd sessions of the log, in order of their "connect from" line."""
    sessions, open_by_pid = [], {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            m = _LINE.match(raw.rstrip("\n"))
            if not m or m["daemon"] != "smtpd":
                continue
            pid, msg = int(m["pid"]), m["msg"]
            c = _CONNECT.match(msg)
            if c:
                s = SmtpdSession(pid, c["ip"], _parse_ts(m["mon"], m["day"], m["time"], year))
                sessions.append(s)
                open_by_pid[pid] = s
            s = open_by_pid.get(pid)
            if s is None:
                continue
            s.lines.append(msg)
            if e := _ESTABLISHED.match(msg):
                assert e["ip"] == s.client_ip, raw
                s.tls_version = LOG_VERSION.get(e["version"], e["version"])
                s.tls_cipher, s.tls_bits = e["cipher"], int(e["bits"])
            elif _SSL_ERROR.match(msg):
                s.ssl_accept_error = True
            elif lost := _LOST.match(msg):
                s.lost_after = lost["after"]
            elif d := _DISCONNECT.match(msg):
                assert d["ip"] == s.client_ip, raw
                s.stats = dict(kv.split("=", 1) for kv in d["stats"].split() if "=" in kv)
                s.closed = True
                del open_by_pid[pid]
    return sessions


def read_manifest(path) -> dict:
    """Manifest rows keyed by client port: {client_ip, client_port, server, port, tool, version,
    cipher, i}."""
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            row["client_port"] = int(row["client_port"])
            row["port"] = int(row["port"])
            row["i"] = int(row["i"])
            assert row["client_port"] not in rows, f"client port {row['client_port']} twice"
            rows[row["client_port"]] = row
    return rows


def match_log_to_sessions(log_sessions, sessions, max_skew: float = 2.5) -> dict:
    """Pairs smtpd sessions with capture sessions: the k-th connection from an IP in the capture
    (by time of its first packet) is the k-th "connect from" that IP in the log. Log sessions of
    IPs the capture never shows (e.g. a readiness probe before tcpdump started) are left out.
    Returns {tcp.stream: SmtpdSession}. Raises AssertionError if counts per IP differ or if the
    pairs do not share one clock offset within `max_skew` seconds."""
    by_ip_cap, by_ip_log = {}, {}
    for s in sorted(sessions.values(), key=lambda s: s.first_ts):
        by_ip_cap.setdefault(s.client_ip, []).append(s)
    for ls in log_sessions:
        by_ip_log.setdefault(ls.client_ip, []).append(ls)
    pairs = {}
    for ip, caps in by_ip_cap.items():
        logs = by_ip_log.get(ip, [])
        assert len(logs) == len(caps), \
            f"{ip}: {len(caps)} TCP sessions in the capture, {len(logs)} smtpd sessions in the log"
        for cap, log in zip(caps, logs):
            pairs[cap.stream] = log
    offsets = [pairs[st].connect_ts - sessions[st].first_ts for st in pairs]
    if offsets:
        med = statistics.median(offsets)
        bad = [(st, off - med) for st, off in zip(pairs, offsets) if abs(off - med) > max_skew]
        assert not bad, f"log/capture pairing drifts from the median clock offset {med:.1f}s: {bad[:5]}"
    return pairs


@functools.lru_cache(maxsize=None)
def openssl_cipher_table() -> dict:
    """OpenSSL cipher name -> (IANA code, IANA name), for every suite this OpenSSL knows.
    TLS 1.3 suites carry the same name in both namings."""
    tls13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:" \
            "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256"
    out = subprocess.run(["openssl", "ciphers", "-V", "-stdname", "-ciphersuites", tls13,
                          "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
                         capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        # "0xC0,0x30 - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 - ECDHE-RSA-AES256-GCM-SHA384 TLSv1.2 ..."
        m = re.match(r"\s*0x([0-9A-Fa-f]{2}),0x([0-9A-Fa-f]{2}) - (\S+)\s+- (\S+)\s", line)
        if m:
            table[m[4]] = (int(m[1] + m[2], 16), m[3])
    return table


def iana_name_by_code() -> dict:
    return {code: name for code, name in openssl_cipher_table().values()}


# ---- what the peers' configuration implies -------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Policy:
    """One Postfix listener of mailpeers.sh."""
    starttls: bool  # offers STARTTLS in its EHLO reply
    implicit_tls: bool  # TLS from the first byte (smtps wrapper mode)
    versions: tuple  # TLS versions it accepts


ALL_VERSIONS = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
# From mailpeers.sh: .1 any TLS (>= TLSv1, "ALL:@SECLEVEL=0"); .2 smtpd_tls_security_level=none;
# .3 >=TLSv1.2 with high ciphers; .4 >=TLSv1.3; 587 on .1 requires encryption; 465 on .1 wrapper.
SERVER_POLICIES = {
    ("127.0.0.1", 25): Policy(True, False, ALL_VERSIONS),
    ("127.0.0.2", 25): Policy(False, False, ()),
    ("127.0.0.3", 25): Policy(True, False, ("TLSv1.2", "TLSv1.3")),
    ("127.0.0.4", 25): Policy(True, False, ("TLSv1.3",)),
    ("127.0.0.1", 587): Policy(True, False, ALL_VERSIONS),
    ("127.0.0.1", 465): Policy(False, True, ALL_VERSIONS),
}


@dataclasses.dataclass
class Expectation:
    """What a manifest row implies for its session, given the listener's policy. Fields left
    None are not determined by the manifest."""
    mode: str
    starttls_offered: Optional[bool]
    starttls_requested: bool
    starttls_accepted: Optional[bool]  # True: reply 220; False: a refusal (not 220, not 0)
    tls_version: str  # "" when no TLS version gets negotiated
    tls_cipher: Optional[str]  # IANA name when the client pinned one suite, else None
    outcome: str


def expected_from_manifest(row) -> Expectation:
    """Rules (not answers) from mailpeers.sh: the listener policy, plus how each client behaves:
    `openssl s_client -starttls smtp` sends STARTTLS even when the EHLO reply lacks it ("trying
    anyway"), swaks --tls does not; each client offers exactly the version it was asked for, and
    one suite when given a cipher other than DEFAULT (TLS 1.3 suites are not pinned)."""
    policy = SERVER_POLICIES[(row["server"], row["port"])]
    version = row["version"]
    pinned = None
    if version in ("tls1", "tls1_1", "tls1_2") and row["cipher"] not in ("DEFAULT", "-"):
        pinned = openssl_cipher_table()[row["cipher"]][1]
    if version == "plain":
        return Expectation("plaintext", policy.starttls, False, None, "", None,
                           "plaintext_offered" if policy.starttls else "plaintext_not_offered")
    wanted = MANIFEST_VERSION[version]
    ok = wanted in policy.versions
    if policy.implicit_tls:
        return Expectation("implicit_tls", None, False, None, wanted if ok else "",
                           pinned if ok else None, "tls" if ok else "tls_failed")
    if not policy.starttls:
        if row["tool"] == "openssl":
            return Expectation("plaintext", False, True, False, "", None, "starttls_refused")
        return Expectation("plaintext", False, False, None, "", None, "plaintext_not_offered")
    return Expectation("starttls", True, True, True, wanted if ok else "", pinned if ok else None,
                       "tls" if ok else "tls_failed")


def main(argv):
    import tshark_truth

    pcap, log, manifest = argv[1:4]
    sessions = tshark_truth.read_sessions(pcap)
    year = dt.datetime.fromtimestamp(min(s.first_ts for s in sessions.values()), dt.timezone.utc).year
    logs = read_postfix_log(log, year)
    man = read_manifest(manifest)
    pairs = match_log_to_sessions(logs, sessions)
    table = openssl_cipher_table()
    print(f"{len(logs)} smtpd sessions in log, {len(sessions)} TCP sessions, {len(pairs)} paired, "
          f"{len(man)} manifest rows, {len(table)} OpenSSL cipher names")
    for st, s in sorted(sessions.items()):
        lg, m = pairs.get(st), man.get(s.client_port, {})
        code = table.get(lg.tls_cipher, (None,))[0] if lg and lg.tls_cipher else None
        agree = (lg.tls_version == s.tls_version and (code or 0) == s.tls_cipher_code) if lg else None
        print(f"{st:4d} {s.client_ip}:{s.client_port} -> {s.server_ip}:{s.server_port} "
              f"manifest={m.get('tool')}/{m.get('version')}/{m.get('cipher')} "
              f"tshark={s.tls_version or '-'}/0x{s.tls_cipher_code:04x} "
              f"log={lg.tls_version or '-'}/{lg.tls_cipher or '-'}"
              f"{'' if code is None else f'(0x{code:04x})'} err={lg.ssl_accept_error} "
              f"lost={lg.lost_after or '-'} agree={agree}")
        if m:
            e = expected_from_manifest(m)
            iana = iana_name_by_code().get(s.tls_cipher_code)
            got = (s.starttls_offered, s.starttls_requested,
                   None if not s.starttls_requested else s.starttls_reply == 220,
                   s.tls_version, iana if e.tls_cipher else None)
            want = (e.starttls_offered, e.starttls_requested, e.starttls_accepted, e.tls_version,
                    e.tls_cipher)
            if got != want:
                print(f"     MANIFEST RULE MISMATCH: tshark {got} vs rule {want}")


if __name__ == "__main__":
    main(sys.argv)
