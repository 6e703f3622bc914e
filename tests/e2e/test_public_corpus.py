"""End-to-end checks of `mailtls read --ports all` against the public capture corpus.

shared/corpus/public/ holds 157 real captures from the test suites of nDPI, Zeek,
suricata-verify, Arkime, the JA4 reference and mercury, most with that tool's recorded
output beside them (see SOURCES.md there). oracles.py turns those outputs into expectations
in mailtls's vocabulary; this file runs the reader on every capture and compares.

* test_reader_survives: every capture, exit 0, no panic, counters on stderr.
* test_reader_counts_every_packet: the `packets` counter equals the number of packet records
  in the file (counted here from the pcap/pcapng structure), so a reader that silently stops
  at a malformed packet is caught.
* test_oracle: every TLS session an oracle describes has a record for the same connection
  (either orientation) whose fields equal the oracle's values, after the corrections in
  ORACLE_EXCEPTIONS (each with the reason the oracle is wrong or ambiguous, checked with
  tshark 4.0). Three explicit tables turn a failure into a reported warning, each entry with
  its reason: TUNNEL_ALLOWLIST (session inside a tunnel SOURCES.md names, no record),
  NON_SMTP_UPGRADES (TLS after an IMAP/POP3/FTP/XMPP/SOCKS dialogue, record present but TLS
  not parsed) and SENSOR_LIMITS (a documented limit of the reader, proven by its counter).
* test_exception_tables_are_live: every exception / allow-list entry still applies.
* test_oracle_parsers_find_sessions: the parsers still find every oracle expectation.

What each oracle contributes, per tool (details in oracles.py):
  nDPI      version (negotiated, or ClientHello version when nDPI saw no ServerHello), cipher,
            SNI (TLS flows only), JA3 hash, JA3S hash, JA4, ALPN, supported_versions, leaf
            SANs, leaf CN, VLAN.
  Zeek      ssl.log version, cipher, SNI, leaf SHA-256; ssl-log-ext client version, cipher
            and extension lists, supported versions, groups, point formats, ALPN; session
            existence from conn.log (service ssl) and smtp.log (tls=T); "Client hello"
            client versions of the ssl.dpd test (addresses only).
  Suricata  counts of TLS records with a given SNI / version / JA3 (+string) / JA3S / JA4 /
            client_handshake lists / subject CN (eve.json filters carry no flow identity).
  Arkime    version, cipher, JA3 (+string), JA3S (+string), JA4, SNI, leaf CN (membership).
  JA4 ref   JA4, SNI, negotiated version and cipher code (from JA4S), leaf CN.
  mercury   multiset of (ClientHello version, cipher list, extension list, groups, point
            formats, signature algorithms, ALPN, supported_versions) over all ClientHellos.
            mercury's fingerprint strings/hashes are not computed by mailtls: not compared.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import pytest

import oracles
from conftest import BIN, PUBLIC, run_read

CAPTURES = sorted(
    (p for p in PUBLIC.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file()),
    key=lambda p: str(p),
)
REL = {p: str(p.relative_to(PUBLIC)) for p in CAPTURES}
WITH_ORACLE = [p for p in CAPTURES if oracles.oracle_files(p)]


# ---------------------------------------------------------------------------------------
# Oracle corrections. Key: (tool, capture, flow, field). `flow` is
# oracles.describe_endpoints() of the connection (ports ascending) or, for Suricata filters
# that name no flow, the suricata-verify test that holds the filter. Value: (correct, reason)
# where `correct` is the value the record must have instead of the oracle's, SKIP (no value
# can be called right: the field is not compared, and the test prints that it was skipped),
# or AnyOf(...) (the definitions disagree; either is accepted).
# Every correction was checked with tshark 4.0.17 on the capture; JA4 corrections were
# recomputed from tshark's dissection following FoxIO's JA4 specification (technical_details/
# JA4.md), the same computation reproduces every Arkime, JA4-reference and suricata-verify
# JA4 in the corpus except the two noted below.


class _Skip:
    def __repr__(self) -> str:
        return "SKIP"


SKIP = _Skip()


@dataclasses.dataclass(frozen=True)
class AnyOf:
    values: tuple

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", tuple(values))


_NDPI_JA4_SNI = (
    "nDPI writes the JA4 SNI flag as 'd' although the ClientHello has no server_name "
    "extension (tshark: no tls.handshake.extensions_server_name); JA4 says 'i' then. nDPI "
    "prints 'd' for all 42 JA4s of its corpus."
)
_NDPI_JA4_ALPN = (
    "nDPI writes the first two characters of the first ALPN value ('ht' for http/1.1); JA4 "
    "takes the first and last ('h1', the spec's own example), as Arkime and the JA4 reference do."
)
ORACLE_EXCEPTIONS: dict[tuple[str, str, str, str], tuple[Any, str]] = {
    # --- nDPI, named in SOURCES.md: STARTTLS flow whose ClientHello has no SNI ----------------
    ("ndpi", "ndpi/smtp-starttls.pcap", "173.194.68.26:25 <-> 10.0.0.1:57406", "ja4"): (
        "t10i290100_cdba58456bdf_e78b541c01a9",
        "SOURCES.md: the ClientHello has no server_name extension; nDPI's 'd' comes from the "
        "host name it learnt from the SMTP banner. Arkime (arkime/smtp-starttls.pcap, same flow) "
        "says t10i290100_cdba58456bdf_e78b541c01a9: Arkime is right.",
    ),
    # --- nDPI JA4 deviations from the JA4 specification --------------------------------------
    ("ndpi", "ndpi/emotet.pcap", "138.197.147.101:443 <-> 10.4.25.101:49803", "ja4"): ("t12i190600_d83cc789557e_2dae41c691ec", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/emotet.pcap", "138.197.147.101:443 <-> 10.4.25.101:49804", "ja4"): ("t12i190600_d83cc789557e_2dae41c691ec", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/ftp-start-tls.pcap", "10.220.50.76:21 <-> 10.238.26.36:62092", "ja4"): ("t12i410100_d572b635dddf_5f8d9ea464d3", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/imap-starttls.pcap", "212.227.17.186:143 <-> 192.168.17.53:49640", "ja4"): ("t12i910500_383454ac02f4_a1e935682795", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/smtps.pcapng", "21.65.95.132:465 <-> 62.43.36.99:37682", "ja4"): ("t12i860600_e18388e7f3a3_4446390ac224", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/tls-esni-fuzzed.pcap", "104.27.129.77:443 <-> 192.168.1.12:49886", "ja4"): ("t13i1813h2_29a2cd9e9f10_0d6ff543c596", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/tls-esni-fuzzed.pcap", "104.16.125.175:443 <-> 192.168.1.12:49887", "ja4"): ("t13i1813h2_29a2cd9e9f10_0d6ff543c596", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/tls-esni-fuzzed.pcap", "104.22.71.197:443 <-> 192.168.1.12:49897", "ja4"): ("t13i1813h2_29a2cd9e9f10_0d6ff543c596", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/tls_client_certificate_with_missing_server_one.pcapng", "192.168.1.181:7070 <-> 192.168.1.128:59754", "ja4"): ("t12i640500_9197985d2161_a1e935682795", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/tls_port_80.pcapng", "132.49.141.56:80 <-> 57.91.202.194:50541", "ja4"): ("t12i550500_168bb377f8c8_a1e935682795", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/tls_with_huge_ch.pcapng", "208.253.217.142:443 <-> 172.30.84.193:40640", "ja4"): ("t13i1811h2_f71e3e15ae0d_5c3a8cf9b2bc", _NDPI_JA4_SNI),
    ("ndpi", "ndpi/ssl-cert-name-mismatch.pcap", "104.154.89.105:443 <-> 192.168.2.222:54772", "ja4"): ("t12d3810h1_845d1e55a368_7448b1316cd7", _NDPI_JA4_ALPN),
    ("ndpi", "ndpi/tls_1.3_unidirectional_client.pcapng", "142.250.184.68:443 <-> 192.168.12.156:39750", "ja4"): ("t13d1713h1_5b57614c22b0_352634941f3a", _NDPI_JA4_ALPN),
    ("ndpi", "ndpi/tls_2_reasms_b.pcapng", "88.14.137.195:443 <-> 196.234.165.216:37658", "ja4"): ("t00d0309h1_55b375c5d22e_566d5108064c", _NDPI_JA4_ALPN),
    ("ndpi", "ndpi/tls_verylong_certificate.pcap", "151.101.66.49:443 <-> 192.168.1.160:54804", "ja4"): ("t12d6707h1_2955a3196ffa_c83f907a73d3", _NDPI_JA4_ALPN),
    ("ndpi", "ndpi/tls_client_certificate_with_missing_server_one.pcapng", "195.181.174.176:443 <-> 192.168.1.128:48260", "ja4"): (
        "t12i6406ax_9197985d2161_a1e935682795",
        _NDPI_JA4_SNI + " Also: " + _NDPI_JA4_ALPN + " (ALPN 'anydesk/6.2.0/linux': 'ax', not 'an').",
    ),
    ("ndpi", "ndpi/tls_cipher_lens.pcap", "173.194.35.191:443 <-> 192.168.11.11:51588", "ja4"): (
        "t10i660000_1ade43d4e5bc_000000000000",
        _NDPI_JA4_SNI + " Also the ClientHello has no extensions: JA4 writes 000000000000 for an "
        "empty list, nDPI hashes the empty string (e3b0c44298fc = sha256('')).",
    ),
    # --- nDPI, other fields ------------------------------------------------------------------
    ("ndpi", "ndpi/ftp-start-tls.pcap", "10.220.50.76:21 <-> 10.238.26.36:62092", "tls_version"): (
        "TLSv1.0",
        "SOURCES.md: the ClientHello offers TLS1.2, the server picks TLS1.0 (tshark: ServerHello "
        "version 0x0301, no supported_versions). nDPI prints the ClientHello's [TLSv1.2].",
    ),
    ("ndpi", "ndpi/ftp-start-tls.pcap", "10.220.50.76:21 <-> 10.238.26.36:62092", "tls_version_code"): (
        0x0301,
        "same as tls_version: the negotiated version is TLS1.0 (0x0301).",
    ),
    # The GTP-tunnelled flow of tls_invalid_reads (also in TUNNEL_ALLOWLIST): its ClientHello
    # is malformed (tshark: ALPN extension length 47241 runs past the record, "Malformed
    # Packet"); tshark computes no JA3 for it. nDPI's values come from a partial parse: no value
    # can be called right, so only the fields before the broken extension are compared.
    ("ndpi", "ndpi/tls_invalid_reads.pcap", "54.221.224.45:443 <-> 10.191.139.17:58552", "ja3_hash"): (SKIP, "malformed ClientHello (ALPN length 47241 past the record end): no reference JA3"),
    ("ndpi", "ndpi/tls_invalid_reads.pcap", "54.221.224.45:443 <-> 10.191.139.17:58552", "ja4"): (SKIP, "malformed ClientHello (ALPN length 47241 past the record end): no reference JA4"),
    ("ndpi", "ndpi/tls_invalid_reads.pcap", "54.221.224.45:443 <-> 10.191.139.17:58552", "tls_alpn"): (SKIP, "malformed ClientHello: the ALPN extension is the broken one"),
    ("ndpi", "ndpi/tls_invalid_reads.pcap", "54.221.224.45:443 <-> 10.191.139.17:58552", "vlan"): (
        3231,
        "QinQ: tshark shows 802.1Q tags 3231 (outer) then 2; nDPI prints the inner one, the record "
        "keeps the outermost (record.rs: 'Outermost 802.1Q VLAN id').",
    ),
    ("ndpi", "ndpi/ja3_lots_of_cipher_suites.pcap", "10.206.65.249:443 <-> 10.206.131.18:58657", "vlan"): (
        93,
        "QinQ: tshark shows 802.1Q tags 93 (outer) then 258; nDPI prints the inner one, the record "
        "keeps the outermost (record.rs: 'Outermost 802.1Q VLAN id').",
    ),
    # Deliberately broken ClientHellos (the capture exercises cipher-list length handling):
    # tshark marks both "Malformed" (cipher suites length 133 leaves no room for the
    # compression methods; length 134 runs past the message). nDPI prints the record's version
    # without having parsed a ClientHello (no JA3C/JA4 for them): no client version can be
    # called right for an unparseable ClientHello.
    ("ndpi", "ndpi/tls_cipher_lens.pcap", "173.194.35.191:443 <-> 192.168.11.11:51589", "tls_client_version"): (SKIP, "malformed ClientHello (cipher suites length 133: no room for compression methods)"),
    ("ndpi", "ndpi/tls_cipher_lens.pcap", "173.194.35.191:443 <-> 192.168.11.11:51590", "tls_client_version"): (SKIP, "malformed ClientHello (cipher suites length 134 runs past the message)"),
    # --- Arkime ------------------------------------------------------------------------------
    ("arkime", "arkime/arkime_synthetic.pcap", "10.9.19.2:443 <-> 10.9.19.1:49621", "tls_version"): (
        SKIP,
        "synthetic ServerHello whose supported_versions carries 0x002c (SOURCES.md: 'a malformed "
        "supported_versions value'); Arkime falls back to the legacy version (TLSv1.2), tshark "
        "reports 0x002c: no negotiated version exists.",
    ),
    ("arkime", "arkime/arkime_synthetic.pcap", "10.9.19.2:443 <-> 10.9.19.1:49621", "tls_version_code"): (
        SKIP,
        "same ServerHello: supported_versions = 0x002c, not a TLS version.",
    ),
    # --- suricata-verify ---------------------------------------------------------------------
    ("suricata", "suricata-verify/bug-5713-01/TLSv1-Extracted-MaliciousC2.pcap", "tests/bug-5713-02-ja4/test.yaml", "ja4"): (
        "t10i070600_c50f5591e341_c39ab67fec8e",
        "the ClientHello has no signature_algorithms; JA4.md: 'if there are no signature "
        "algorithms in the hello packet, then the string ends without an underscore' "
        "(sha256('0005,000a,000b,0017,0023,ff01') = c39ab67fec8e). Suricata hashes "
        "'...,ff01_' (= ce66f3b797c1). Arkime and the JA4 reference follow the spec "
        "(e.g. arkime/openssl-tls1.pcap).",
    ),
    # --- JA4 reference -----------------------------------------------------------------------
    ("ja4", "ja4/tls-non-ascii-alpn.pcapng", "142.251.16.94:443 <-> 192.168.1.168:50112", "ja4"): (
        AnyOf("t13d151699_8daaf6152771_e5627efa2ab1", "t13d1516bd_8daaf6152771_e5627efa2ab1"),
        "first ALPN value is the bytes 0xBA 0xAD. The reference output at this commit replaces "
        "non-ASCII characters by '9' ('99'); JA4.md's ALPN rule says a non-alphanumeric first/last "
        "byte gives the first and last hex digits of the value ('bd'). The definition and its "
        "reference implementation disagree: either is accepted.",
    ),
}

# Sessions the oracle describes inside a tunnel the reader may leave undecoded (GRE, VXLAN,
# GTP, MPLS, ERSPAN: counted, not parsed). Only tunnels SOURCES.md names for the capture.
# When mailtls has no record for such a session the test reports it (warning) instead of
# failing; when it has one, the record is compared as usual.
TUNNEL_ALLOWLIST: dict[tuple[str, str], tuple[str, str]] = {
    ("ndpi/tls_invalid_reads.pcap", "54.221.224.45:443 <-> 10.191.139.17:58552"): (
        "GTP",
        "SOURCES.md: 'VLAN + GTP tunnel'; nDPI shows [proto: GTP:91...]: TLS inside GTP-U (UDP 2152).",
    ),
    ("ndpi/ja3_lots_of_cipher_suites_2_anon.pcap", "151.121.193.160:443 <-> 192.168.147.177:58496"): (
        "GTP",
        "SOURCES.md: 'GTP-tunnelled TLS1.2'; nDPI shows [proto: GTP:91/TLS].",
    ),
}


# TLS that starts after the clear-text dialogue of another protocol (IMAP/POP3 STLS, FTP AUTH
# TLS, XMPP, a SOCKS preamble). mailtls notices a ClientHello after any clear-text dialogue,
# so these sessions are compared like any other: no entries. (An entry here would require
# only that the record exists.)
NON_SMTP_UPGRADES: dict[tuple[str, str], tuple[str, str]] = {}

# Values mailtls leaves out by a documented design limit. Each entry names the stderr counter
# that must show the limit was hit, so the entry cannot hide another cause.
SENSOR_LIMITS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("zeek/tls/tls-fragmented-handshake.pcap", "104.236.167.107:4433 <-> 192.168.6.86:61454", "cert_sha256"): (
        "tls_oversized_messages",
        "the Certificate message (certificate with 10,000 SANs) is larger than MAX_HANDSHAKE_LEN "
        "= 0xffff (parsers/src/tls/mod.rs: larger handshake messages are skipped and counted).",
    ),
}
# (The other documented limit, at most MAX_SANS = 64 subjectAltNames per certificate
# (parsers/src/tls/certificate.rs), is applied in oracles.field_matches for cert_sans_ci.)


class TunnelNotDecoded(UserWarning):
    pass


class OutOfScopeUpgrade(UserWarning):
    pass


class SensorLimit(UserWarning):
    pass


class OracleFieldSkipped(UserWarning):
    pass


# ---------------------------------------------------------------------------------------
# Running the reader once per capture (in parallel, cached for the session)


@dataclasses.dataclass
class Run:
    records: list[dict]
    returncode: int
    stderr: str


_RUNS: dict[Path, Run] = {}


def _run_one(path: Path) -> Run:
    records, proc = run_read([path], "--ports", "all", check=False)
    return Run(records, proc.returncode, proc.stderr)


@pytest.fixture(scope="session")
def corpus_runs(mailtls_bin) -> dict[Path, Run]:
    if not _RUNS:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
            for path, run in zip(CAPTURES, ex.map(_run_one, CAPTURES)):
                _RUNS[path] = run
    return _RUNS


def _ids(paths):
    return [REL[p] for p in paths]


# ---------------------------------------------------------------------------------------
# 1. No capture crashes the reader


def test_corpus_is_complete():
    assert len(CAPTURES) == 157, f"expected the 157 captures of SOURCES.md, found {len(CAPTURES)}"


def _counter(stderr: str, name: str) -> int | None:
    m = re.search(r"(?m)^\s*" + re.escape(name) + r"\s*[:=]\s*(\d+)\s*$", stderr)
    return int(m.group(1)) if m else None


@pytest.mark.parametrize("capture", CAPTURES, ids=_ids(CAPTURES))
def test_reader_survives(capture, corpus_runs):
    # Every file opens with libpcap (checked with tcpdump -r on all 157): no capture is
    # expected to make the reader exit non-zero.
    run = corpus_runs[capture]
    assert "panicked at" not in run.stderr, f"panic on {REL[capture]}:\n{run.stderr[-3000:]}"
    assert run.returncode == 0, f"exit {run.returncode} on {REL[capture]}:\n{run.stderr[-3000:]}"
    assert _counter(run.stderr, "packets") is not None, (
        f"no 'packets: N' counter on stderr for {REL[capture]}:\n{run.stderr[-2000:]}"
    )


def count_packet_records(path: Path) -> int:
    """Packet records in a pcap or pcapng file (EPB, SPB and obsolete PB blocks for pcapng)."""
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        off, n = 24, 0
        while off + 16 <= len(data):
            incl = struct.unpack_from(endian + "I", data, off + 8)[0]
            off += 16 + incl
            if off > len(data):
                break  # truncated last record: libpcap reports an error, not a packet
            n += 1
        return n
    if magic == b"\x0a\x0d\x0d\x0a":
        off, n, endian = 0, 0, "<"
        while off + 12 <= len(data):
            btype = struct.unpack_from(endian + "I", data, off)[0]
            if btype == 0x0A0D0D0A:
                endian = "<" if data[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            blen = struct.unpack_from(endian + "I", data, off + 4)[0]
            if blen < 12:
                break
            if btype in (2, 3, 6):
                n += 1
            off += blen
        return n
    raise ValueError(f"{path}: not a pcap/pcapng file")


@pytest.mark.parametrize("capture", CAPTURES, ids=_ids(CAPTURES))
def test_reader_counts_every_packet(capture, corpus_runs):
    run = corpus_runs[capture]
    got = _counter(run.stderr, "packets")
    if got is None:
        pytest.fail(f"no 'packets: N' counter on stderr:\n{run.stderr[-2000:]}")
    want = count_packet_records(capture)
    assert got == want, f"{REL[capture]}: packets counter {got}, file has {want} packet records"


# ---------------------------------------------------------------------------------------
# 2. Oracle comparison


def _apply_exceptions(tool: str, capture: str, flow: str, fields: dict, notes: list) -> dict:
    out = dict(fields)
    for key in list(out):
        exc = ORACLE_EXCEPTIONS.get((tool, capture, flow, key))
        if exc is None:
            continue
        correct, reason = exc
        if correct is SKIP:
            del out[key]
            notes.append(f"[{tool}] {flow}: {key} not compared (oracle says {fields[key]!r}): {reason}")
            warnings.warn(OracleFieldSkipped(f"{capture} {flow} {key}: {reason}"))
        else:
            out[key] = correct
            notes.append(f"[{tool}] {flow}: {key} oracle {fields[key]!r} corrected to {correct!r}: {reason}")
    return out


def _matches(rec: dict, key: str, expected: Any) -> bool:
    if isinstance(expected, AnyOf):
        return any(oracles.field_matches(rec, key, v) for v in expected.values)
    return oracles.field_matches(rec, key, expected)


def _mismatches(rec: dict, fields: dict) -> list[tuple[str, Any, Any]]:
    return [(k, v, oracles.record_value(rec, k)) for k, v in fields.items() if not _matches(rec, k, v)]


def _fmt(v: Any) -> str:
    if isinstance(v, (set, frozenset)):
        v = sorted(v)
    s = repr(v)
    return s if len(s) <= 300 else s[:300] + "..."


def _describe_record(rec: dict) -> str:
    return (
        f"{rec.get('client_ip')}:{rec.get('client_port')} -> {rec.get('server_ip')}:{rec.get('server_port')}"
        f" vlan={rec.get('vlan')} mode={rec.get('mode')} outcome={rec.get('outcome')}"
        f" version={rec.get('tls_version')!r} ja3={rec.get('ja3_hash')!r} ja4={rec.get('ja4')!r}"
    )


def _check_sessions(capture: str, exps: list, run: Run, failures: list, notes: list) -> None:
    records = run.records
    by_eps: dict[frozenset, list[dict]] = {}
    for r in records:
        by_eps.setdefault(oracles.record_endpoints(r), []).append(r)
    used_ip_records: set[int] = set()
    for e in exps:
        flow = e.key()
        fields = _apply_exceptions(e.tool, capture, flow, e.fields, notes)
        if e.vlan is not None:
            fields.update(_apply_exceptions(e.tool, capture, flow, {"vlan": e.vlan}, notes))
        where = f"[{e.tool}: {e.source}] {e.label}"
        if e.endpoints is not None:
            cands = by_eps.get(e.endpoints, [])
        else:
            cands = [r for r in records if oracles.record_ips(r) == e.ips and id(r) not in used_ip_records]
        if not cands:
            tunnel = TUNNEL_ALLOWLIST.get((capture, flow))
            if tunnel:
                msg = f"{where}: no record; the session runs inside {tunnel[0]} ({tunnel[1]})"
                notes.append("NOT SEEN " + msg)
                warnings.warn(TunnelNotDecoded(f"{capture}: {msg}"))
                continue
            failures.append(f"{where}: no record for {flow} (records for this capture: {len(records)})")
            continue
        for (cap, fl, field), (counter, reason) in SENSOR_LIMITS.items():
            if (cap, fl) == (capture, flow) and field in fields:
                hit = _counter(run.stderr, counter) or 0
                if hit > 0:
                    del fields[field]
                    notes.append(f"[{e.tool}] {flow}: {field} not compared: sensor limit ({counter}={hit}): {reason}")
                    warnings.warn(SensorLimit(f"{capture} {flow} {field}: {counter}={hit}: {reason}"))
                else:
                    notes.append(f"[{e.tool}] {flow}: SENSOR_LIMITS entry for {field} but {counter} is 0: compared")
        scored = sorted(cands, key=lambda r: len(_mismatches(r, fields)))
        best = scored[0]
        upgrade = NON_SMTP_UPGRADES.get((capture, flow))
        if upgrade and fields and not oracles.has_tls(best):
            msg = (f"{where}: record present (mode={best.get('mode')}), TLS not parsed: TLS after a "
                   f"{upgrade[0]} dialogue is outside mailtls's SMTP scope ({upgrade[1]})")
            notes.append("NOT PARSED " + msg)
            warnings.warn(OutOfScopeUpgrade(f"{capture}: {msg}"))
            continue
        bad = _mismatches(best, fields)
        if e.endpoints is None:
            used_ip_records.add(id(best))
        if bad:
            lines = "\n".join(f"      {k}: expected {_fmt(v)}, got {_fmt(g)}" for k, v, g in bad)
            failures.append(f"{where} ({flow}):\n    record {_describe_record(best)}\n{lines}")


def _check_counts(capture: str, exps: list, records: list[dict], failures: list, notes: list) -> None:
    for e in exps:
        flow = e.source
        fields = _apply_exceptions(e.tool, capture, flow, e.fields, notes)
        if not e.exact and e.count == 0:
            notes.append(f"[suricata] {e.label}: count 0 with unmapped keys {e.dropped}: not checkable")
            continue
        # AnyOf values are not used for Suricata; count with plain equality.
        n = oracles.count_matching(records, fields)
        ok = n == e.count if e.exact else n >= e.count
        if not ok:
            rel = "exactly" if e.exact else "at least"
            tls = [r for r in records if oracles.has_tls(r)]
            seen = "\n".join(
                "      " + _describe_record(r) + " sni=" + repr(r.get("tls_sni")) + " client_version=" + str(r.get("tls_client_version"))
                for r in tls[:8]
            )
            failures.append(
                f"[suricata: {e.source}] filter {e.label}\n    expected {rel} {e.count} TLS record(s) with "
                f"{_fmt({k: v for k, v in fields.items() if k != '_endpoints'})}, found {n}"
                + (f" (keys not compared: {e.dropped})" if e.dropped else "")
                + f"\n    TLS records of the capture:\n{seen}"
            )


def _check_mercury(capture: str, fps: list, records: list[dict], failures: list) -> None:
    missing, extra = oracles.mercury_compare(fps, records)
    for fp in missing:
        failures.append(f"[mercury line {fp.line_no}] no record with this ClientHello: {fp.text[:200]}")
    for r in extra:
        failures.append(f"[mercury] record whose ClientHello is not in the oracle: {_describe_record(r)}")


@pytest.mark.parametrize("capture", WITH_ORACLE, ids=[f"{REL[p]}::{','.join(oracles.oracle_files(p))}" for p in WITH_ORACLE])
def test_oracle(capture, corpus_runs):
    rel = REL[capture]
    run = corpus_runs[capture]
    if run.returncode != 0:
        pytest.fail(f"reader exited {run.returncode} (see test_reader_survives)")
    failures: list[str] = []
    notes: list[str] = []
    total = 0
    for tool, exps in oracles.load(capture, PUBLIC).items():
        total += len(exps)
        sessions = [e for e in exps if isinstance(e, oracles.SessionExpectation)]
        counts = [e for e in exps if isinstance(e, oracles.CountExpectation)]
        merc = [e for e in exps if isinstance(e, oracles.MercuryFingerprint)]
        _check_sessions(rel, sessions, run, failures, notes)
        _check_counts(rel, counts, run.records, failures, notes)
        if merc:
            _check_mercury(rel, merc, run.records, failures)
    for n in notes:
        print(n)
    if total == 0:
        pytest.skip("the oracle describes no TLS session (plain SMTP / no handshake): nothing to compare")
    if failures:
        pytest.fail(f"{rel}: {len(failures)} mismatch(es) with the oracle\n" + "\n".join(failures)
                    + ("\n  notes:\n  " + "\n  ".join(notes) if notes else ""), pytrace=False)


# ---------------------------------------------------------------------------------------
# 3. The exception tables stay true


def _all_expectations():
    out = {}
    for p in WITH_ORACLE:
        out[REL[p]] = oracles.load(p, PUBLIC)
    return out


def test_exception_tables_are_live():
    """Every correction names an existing oracle value that differs from it, and every
    tunnel allow-list entry names an oracle session of a capture whose SOURCES.md row
    mentions that tunnel."""
    loaded = _all_expectations()
    problems = []
    for (tool, capture, flow, field), (correct, _reason) in ORACLE_EXCEPTIONS.items():
        exps = loaded.get(capture, {}).get(tool, [])
        found = []
        for e in exps:
            key = e.key() if isinstance(e, oracles.SessionExpectation) else getattr(e, "source", None)
            if key != flow:
                continue
            vals = dict(e.fields)
            if isinstance(e, oracles.SessionExpectation) and e.vlan is not None:
                vals["vlan"] = e.vlan
            if field in vals:
                found.append(vals[field])
        if not found:
            problems.append(f"{tool} {capture} {flow} {field}: no such oracle value")
        elif correct is not SKIP and not isinstance(correct, AnyOf) and all(v == correct for v in found):
            problems.append(f"{tool} {capture} {flow} {field}: oracle already says {correct!r}")
    sources = (PUBLIC / "SOURCES.md").read_text()
    for (capture, flow), (tunnel, _reason) in TUNNEL_ALLOWLIST.items():
        name = capture.split("/", 1)[1]
        rows = [l for l in sources.splitlines() if l.startswith(f"| `{name}`")]
        if not any(tunnel in l for l in rows):
            problems.append(f"{capture}: SOURCES.md does not mention {tunnel}")
        exps = [e for tool_exps in loaded.get(capture, {}).values() for e in tool_exps
                if isinstance(e, oracles.SessionExpectation) and e.key() == flow]
        if not exps:
            problems.append(f"{capture} {flow}: no oracle session")
    for (capture, flow), (proto, _reason) in NON_SMTP_UPGRADES.items():
        name = capture.split("/", 1)[1]
        rows = [l for l in sources.splitlines() if l.startswith(f"| `{name}`")]
        if proto.lower() not in name.lower() and not any(proto.lower() in l.lower() for l in rows):
            problems.append(f"{capture}: neither its name nor SOURCES.md says {proto}")
        exps = [e for tool_exps in loaded.get(capture, {}).values() for e in tool_exps
                if isinstance(e, oracles.SessionExpectation) and e.key() == flow]
        if not exps:
            problems.append(f"{capture} {flow}: no oracle session")
    for (capture, flow, field) in SENSOR_LIMITS:
        exps = [e for tool_exps in loaded.get(capture, {}).values() for e in tool_exps
                if isinstance(e, oracles.SessionExpectation) and e.key() == flow and field in e.fields]
        if not exps:
            problems.append(f"{capture} {flow} {field}: no oracle value")
    assert not problems, "\n".join(problems)


def test_oracle_parsers_find_sessions():
    """Guards the parsers: each tool's oracles must yield expectations (a format change that
    makes a parser return nothing would otherwise pass silently)."""
    loaded = _all_expectations()
    per_tool: dict[str, int] = {}
    for by_tool in loaded.values():
        for tool, exps in by_tool.items():
            per_tool[tool] = per_tool.get(tool, 0) + len(exps)
    # Counts of the corpus as shipped (SOURCES.md commits); a drop means a parser broke.
    minimum = {"ndpi": 51, "zeek": 55, "suricata": 33, "arkime": 26, "ja4": 286, "mercury": 100}
    low = {t: (per_tool.get(t, 0), m) for t, m in minimum.items() if per_tool.get(t, 0) < m}
    assert not low, f"parsers found fewer expectations than the corpus holds: {low}"
