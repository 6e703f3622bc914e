"""Parsers for the oracle files of the public capture corpus (shared/corpus/public).

Every capture there may have `<capture>.expected.<tool>.txt` beside it: the output that
tool's own test suite records for that capture. This module turns each of those files into
expectations written in mailtls's vocabulary (JSON keys of a session record, see
storage/src/record.rs), so test_public_corpus.py can compare them with what `mailtls read`
prints. Standard library only (no PyYAML): the two YAML dialects used (JA4 insta snapshots,
suricata-verify test.yaml) are read by the small subset parser at the bottom.

Three shapes of expectation:

* SessionExpectation: one TCP connection (by its two endpoints, in either orientation, or
  by its two addresses when the oracle gives no ports) and the values the oracle reports
  for it. nDPI, Zeek, Arkime and the JA4 reference give these.
* CountExpectation: suricata-verify checks are eve.json filters "exactly `count` events
  match these keys" with no flow identity; they become "exactly/at least N TLS records of
  the capture have these values".
* MercuryFingerprint: mercury's top_100 oracle is one fingerprint per ClientHello, no
  flow identity and no name/hash that mailtls computes; it becomes a multiset of
  (client version, cipher list, extension list, selected extension contents) to compare
  with the same tuple rebuilt from the records.

Field keys are record keys, plus these virtual keys (see `compare_fields`):

* `version_any`: Suricata's `tls.version` is the ServerHello version when a ServerHello was
  seen and the ClientHello version otherwise (suricata-verify bug-5713-01 checks exactly
  that), so it is compared with `tls_version_code` when the record has one, else with
  `tls_client_version`.
* `cert_subject_cn_ci_in`: Arkime lower-cases certificate CNs and does not keep the chain
  order, so the record's `cert_subject_cn` must be one of the CNs, case-insensitively.
* `cert_sans_ci`: nDPI lower-cases the SANs it prints: the record's `cert_sans`, as a set,
  compared case-insensitively.

Version and cipher naming differs per tool and is normalised to codes: nDPI "TLSv1",
"TLSv1.2", "TLSv1.3 (Fizz)"; Zeek "TLSv10", "TLSv12", "TLSv13-draft23"; Suricata "TLSv1",
"TLS 1.2", "TLS 1.3 draft-28", "TLS 1.3 draft-<16"; Arkime "TLSv1", "TLSv1.2",
"TLSv1.3-draft-18". All four tools print IANA cipher suite names (checked for every name in
the corpus), so the name is compared as is and, through IANA_CIPHERS, as a code.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

# ---------------------------------------------------------------------------------------
# Vocabulary

GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))

# mailtls keeps at most this many subjectAltNames per certificate (parsers/src/tls/certificate.rs).
MAILTLS_MAX_SANS = 64

# mailtls's names for the version codes (record.rs: "SSLv3" ... "TLSv1.3").
MAILTLS_VERSION_NAMES = {
    0x0300: "SSLv3",
    0x0301: "TLSv1.0",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}

# IANA TLS cipher suite registry: every name any oracle of the corpus prints, plus the
# usual ones. (Values checked against Wireshark 4.0's table.)
IANA_CIPHERS = {
    "TLS_RSA_WITH_NULL_MD5": 0x0001,
    "TLS_RSA_WITH_NULL_SHA": 0x0002,
    "TLS_RSA_WITH_RC4_128_MD5": 0x0004,
    "TLS_RSA_WITH_RC4_128_SHA": 0x0005,
    "TLS_RSA_WITH_DES_CBC_SHA": 0x0009,
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": 0x000A,
    "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA": 0x0016,
    "TLS_RSA_WITH_AES_128_CBC_SHA": 0x002F,
    "TLS_DHE_DSS_WITH_AES_128_CBC_SHA": 0x0032,
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA": 0x0033,
    "TLS_RSA_WITH_AES_256_CBC_SHA": 0x0035,
    "TLS_DHE_DSS_WITH_AES_256_CBC_SHA": 0x0038,
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA": 0x0039,
    "TLS_RSA_WITH_AES_128_CBC_SHA256": 0x003C,
    "TLS_RSA_WITH_AES_256_CBC_SHA256": 0x003D,
    "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA": 0x0045,
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256": 0x0067,
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256": 0x006B,
    "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA": 0x0088,
    "TLS_RSA_WITH_AES_128_GCM_SHA256": 0x009C,
    "TLS_RSA_WITH_AES_256_GCM_SHA384": 0x009D,
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": 0x009E,
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": 0x009F,
    "TLS_EMPTY_RENEGOTIATION_INFO_SCSV": 0x00FF,
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "TLS_AES_128_CCM_SHA256": 0x1304,
    "TLS_AES_128_CCM_8_SHA256": 0x1305,
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": 0xC007,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": 0xC009,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": 0xC00A,
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": 0xC011,
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": 0xC012,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": 0xC013,
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": 0xC014,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": 0xC023,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384": 0xC024,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": 0xC027,
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": 0xC028,
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": 0xC02B,
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": 0xC02C,
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": 0xC02F,
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": 0xC030,
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA8,
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA9,
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCAA,
}

# Version names per tool -> wire code. Unknown names raise: a parser that silently drops a
# version it does not know would hide a whole class of checks.
_NDPI_VERSIONS = {
    "SSLv2": 0x0002,
    "SSLv3": 0x0300,
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
    # Facebook's Fizz TLS 1.3 (draft 26 variant), code 0xfb1a; tshark shows the same code
    # in the ServerHello's supported_versions (ndpi/tls_2_reasms*.pcapng).
    "TLSv1.3 (Fizz)": 0xFB1A,
}
_ZEEK_VERSIONS = {
    "SSLv2": 0x0002,
    "SSLv3": 0x0300,
    "TLSv10": 0x0301,
    "TLSv11": 0x0302,
    "TLSv12": 0x0303,
    "TLSv13": 0x0304,
}
_SURICATA_VERSIONS = {
    "SSLv2": 0x0002,
    "SSLv3": 0x0300,
    "TLSv1": 0x0301,
    "TLS 1.1": 0x0302,
    "TLS 1.2": 0x0303,
    "TLS 1.3": 0x0304,
    # Drafts before 16 had no supported_versions: 0x0304 sat in server_version itself
    # (suricata-verify tls13-draft14: tshark shows ServerHello version 0x0304).
    "TLS 1.3 draft-<16": 0x0304,
}
_ARKIME_VERSIONS = {
    "SSLv2": 0x0002,
    "SSLv3": 0x0300,
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}


def version_code(tool: str, name: str) -> int:
    """Wire code of a version name as `tool` prints it; raises ValueError when unknown."""
    table = {
        "ndpi": _NDPI_VERSIONS,
        "zeek": _ZEEK_VERSIONS,
        "suricata": _SURICATA_VERSIONS,
        "arkime": _ARKIME_VERSIONS,
    }[tool]
    if name in table:
        return table[name]
    draft = {
        "zeek": r"TLSv13-draft(\d+)",
        "suricata": r"TLS 1\.3 draft-(\d+)",
        "arkime": r"TLSv1\.3-draft-(\d+)",
        "ndpi": r"TLSv1\.3 \(draft (\d+)\)",
    }[tool]
    m = re.fullmatch(draft, name)
    if m:
        return 0x7F00 + int(m.group(1))
    raise ValueError(f"{tool}: unknown TLS version name {name!r}")


def version_fields(code: int) -> dict[str, Any]:
    """Record fields for a negotiated version: the code always, the name when mailtls has
    one for it (drafts and experimental codes are compared by code only)."""
    out: dict[str, Any] = {"tls_version_code": code}
    if code in MAILTLS_VERSION_NAMES:
        out["tls_version"] = MAILTLS_VERSION_NAMES[code]
    return out


def cipher_fields(name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"tls_cipher": name}
    if name in IANA_CIPHERS:
        out["tls_cipher_code"] = IANA_CIPHERS[name]
    return out


def norm_ip(ip: str) -> str:
    return ipaddress.ip_address(ip.strip("[]")).compressed


def endpoints(a_ip: str, a_port: int | str, b_ip: str, b_port: int | str) -> frozenset:
    return frozenset({(norm_ip(a_ip), int(a_port)), (norm_ip(b_ip), int(b_port))})


def record_endpoints(rec: dict) -> frozenset:
    return endpoints(rec["client_ip"], rec["client_port"], rec["server_ip"], rec["server_port"])


def record_ips(rec: dict) -> frozenset:
    return frozenset({norm_ip(rec["client_ip"]), norm_ip(rec["server_ip"])})


def describe_endpoints(eps: frozenset | None) -> str:
    if not eps:
        return "?"
    parts = sorted(eps, key=lambda e: e[1])
    return " <-> ".join(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}" for ip, port in parts)


# ---------------------------------------------------------------------------------------
# Expectation types


@dataclasses.dataclass
class SessionExpectation:
    tool: str
    capture: str  # path relative to the corpus root
    label: str  # the oracle's own words for the flow (for messages)
    endpoints: frozenset | None = None  # {(ip, port), (ip, port)}
    ips: frozenset | None = None  # {ip, ip} when the oracle gives no ports
    vlan: int | None = None
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    source: str = ""  # which part of the oracle file
    tunnel: str | None = None  # encapsulation the oracle itself names for this flow

    def key(self) -> str:
        return describe_endpoints(self.endpoints) if self.endpoints else "ips " + " <-> ".join(sorted(self.ips or ()))


@dataclasses.dataclass
class CountExpectation:
    tool: str
    capture: str
    label: str
    fields: dict[str, Any]
    count: int
    exact: bool  # False when some of the filter's keys have no mailtls counterpart
    dropped: list[str]
    source: str = ""


@dataclasses.dataclass
class MercuryFingerprint:
    capture: str
    line_no: int
    text: str
    canon: tuple  # see mercury_canon / record_mercury_canon


# ---------------------------------------------------------------------------------------
# Comparison of one record with a dict of expected fields


def _no_grease(values: Iterable[int]) -> list[int]:
    return [v for v in values if v not in GREASE]


def record_value(rec: dict, key: str) -> Any:
    if key == "version_any":
        return rec.get("tls_version_code") or rec.get("tls_client_version") or 0
    if key == "cert_subject_cn_ci_in":
        return rec.get("cert_subject_cn", "")
    if key in ("tls_client_versions", "tls_client_groups"):
        return _no_grease(rec.get(key) or [])
    if key == "cert_sans_ci":
        return sorted({s.lower() for s in rec.get("cert_sans") or []})
    return rec.get(key)


def field_matches(rec: dict, key: str, expected: Any) -> bool:
    got = record_value(rec, key)
    if key == "cert_subject_cn_ci_in":
        return isinstance(got, str) and got.lower() in expected
    if key in ("tls_client_versions", "tls_client_groups"):
        return got == _no_grease(expected)
    if key == "cert_sans_ci":
        # mailtls keeps at most MAILTLS_MAX_SANS names, the first ones of the certificate
        # (parsers/src/tls/certificate.rs: MAX_SANS); nDPI prints them in certificate order.
        return got == sorted({s.lower() for s in expected[:MAILTLS_MAX_SANS]})
    return got == expected


def compare_fields(rec: dict, fields: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """[(field, expected, got)] for every field that differs."""
    return [
        (k, v, record_value(rec, k)) for k, v in fields.items() if not field_matches(rec, k, v)
    ]


_TLS_EVIDENCE = (
    "tls_client_version", "tls_version_code", "tls_version", "tls_cipher", "tls_cipher_code",
    "ja3", "ja3_hash", "ja3s", "ja3s_hash", "ja4", "tls_sni", "cert_sha256", "cert_subject_cn",
)


def has_tls(rec: dict) -> bool:
    """Whether the record reports anything of a TLS handshake (a hello, a version, a cipher,
    a fingerprint, an SNI or a certificate)."""
    return any(rec.get(k) for k in _TLS_EVIDENCE)


# ---------------------------------------------------------------------------------------
# Discovery

TOOLS = ("ndpi", "zeek", "suricata", "arkime", "ja4", "mercury")


def oracle_files(capture: Path) -> dict[str, Path]:
    out = {}
    for tool in TOOLS:
        p = capture.with_name(capture.name + f".expected.{tool}.txt")
        if p.exists():
            out[tool] = p
    return out


def _strip_header(text: str) -> list[str]:
    return [l for l in text.splitlines() if not l.startswith("###")]


# ---------------------------------------------------------------------------------------
# nDPI: ndpiReader `.out` (tests/cfgs/default/result/<file>.out)
#
# One line per flow: "N  TCP a:p <-> b:p [proto: M.A/Name]...[TLSv1.2][JA3C: ..]...".
# The first endpoint is the side nDPI saw first, not necessarily the client.
# Annotations used:
#   [TLSvX]          ssl_version: the ClientHello version, overwritten by the ServerHello's
#                    (supported_versions for 1.3) once one is parsed. So: with a ServerHello
#                    (a [Cipher:] or [JA3S:] annotation) it is tls_version_code, without one
#                    it is tls_client_version.
#   [Cipher: X]      IANA name of the ServerHello's suite -> tls_cipher(_code).
#   [JA3C: h]        JA3 of the ClientHello -> ja3_hash.
#   [JA3S: h (..)]   JA3S -> ja3s_hash (the "(WEAK)"/"(INSECURE)" tag is nDPI's cipher note).
#   [JA4: x]         -> ja4.
#   [Hostname/SNI: x] is the SNI only for flows whose master protocol is TLS (91): for
#                    SMTPS/POPS/IMAPS/FTPS flows (STARTTLS) nDPI fills it from the clear-text
#                    dialogue (SMTP banner/EHLO), e.g. ndpi/smtp-starttls.pcap flow 1 shows
#                    "mx.google.com" though its ClientHello has no server_name extension
#                    (tshark). So SNI is checked for TLS flows only, and an absent
#                    Hostname/SNI on a TLS flow with a ClientHello means tls_sni == "".
#   [(Advertised) ALPNs: a;b] -> tls_alpn.  [TLS Supported Versions: ...] -> tls_client_versions.
#   [ServerNames: a,b] leaf certificate DNS SANs, lower-cased by nDPI (ndpi/ftp-start-tls.pcap:
#                    the certificate says "OSS.huawei.com") -> cert_sans_ci: the record's
#                    cert_sans as a set, compared case-insensitively.
#   [Subject: ..., CN=x] leaf subject -> cert_subject_cn (when it has exactly one CN).
# UDP flows (QUIC/DTLS) are not TLS-over-TCP: skipped.

_NDPI_FLOW = re.compile(r"^\s*\d+\s+TCP\s+(\S+)\s+(?:<->|->)\s+(\S+)\s+(.*)$")
_NDPI_VERSION = re.compile(r"\[((?:TLSv1(?:\.[0-3])?|SSLv[23])(?: \((?:Fizz|draft \d+)\))?)\]")


def _ndpi_endpoint(s: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([0-9.]+):(\d+)", s)
    if not m:
        raise ValueError(f"nDPI endpoint {s!r}")
    return (m.group(1) or m.group(3)), int(m.group(2) or m.group(4))


def _ndpi_ann(rest: str, key: str) -> str | None:
    m = re.search(r"\[" + re.escape(key) + r": ([^\]]*)\]", rest)
    return m.group(1) if m else None


def parse_ndpi(path: Path, capture: str) -> list[SessionExpectation]:
    out = []
    for line in _strip_header(path.read_text(errors="replace")):
        m = _NDPI_FLOW.match(line)
        if not m:
            continue
        (aip, aport), (bip, bport), rest = _ndpi_endpoint(m.group(1)), _ndpi_endpoint(m.group(2)), m.group(3)
        proto = _ndpi_ann(rest, "proto") or ""
        fields: dict[str, Any] = {}
        ja3c = _ndpi_ann(rest, "JA3C")
        ja3s = _ndpi_ann(rest, "JA3S")
        cipher = _ndpi_ann(rest, "Cipher")
        ja4 = _ndpi_ann(rest, "JA4")
        if ja3c:
            fields["ja3_hash"] = ja3c
        if ja4:
            fields["ja4"] = ja4
        if ja3s:
            fields["ja3s_hash"] = ja3s.split()[0]
        if cipher:
            fields.update(cipher_fields(cipher))
        vm = _NDPI_VERSION.search(rest)
        if vm:
            code = version_code("ndpi", vm.group(1))
            if cipher or ja3s:
                fields.update(version_fields(code))
            else:
                fields["tls_client_version"] = code
        saw_ch = bool(ja3c or ja4)
        master = proto.split("/")[0].split(":")[-1].split(".")[0]
        if master == "91" and saw_ch:
            fields["tls_sni"] = _ndpi_ann(rest, "Hostname/SNI") or ""
        alpns = _ndpi_ann(rest, "(Advertised) ALPNs")
        if alpns is not None:
            fields["tls_alpn"] = alpns.split(";")
        svs = _ndpi_ann(rest, "TLS Supported Versions")
        if svs is not None:
            fields["tls_client_versions"] = [version_code("ndpi", v) for v in svs.split(";") if v != "GREASE"]
        sans = _ndpi_ann(rest, "ServerNames")
        if sans:
            fields["cert_sans_ci"] = sans.split(",")
        subject = _ndpi_ann(rest, "Subject")
        if subject:
            cns = {p.strip()[3:] for p in subject.split(",") if p.strip().startswith("CN=")}
            if len(cns) == 1:
                fields["cert_subject_cn"] = cns.pop()
        if not fields:
            continue  # no TLS handshake data reported for this flow
        vlan = _ndpi_ann(rest, "VLAN")
        out.append(
            SessionExpectation(
                tool="ndpi",
                capture=capture,
                label=f"{m.group(1)} <-> {m.group(2)} [proto: {proto}]",
                endpoints=endpoints(aip, aport, bip, bport),
                vlan=int(vlan) if vlan else None,
                fields=fields,
                source="flow line",
                tunnel="GTP" if proto.startswith("GTP:") else None,
            )
        )
    return out


# ---------------------------------------------------------------------------------------
# Zeek btest baselines
#
# The file is a concatenation of sections, each starting "### zeek btest <test>: <file>".
# Used:
#   * ssl.log (any "#path ssl" TSV, incl. ssl-log-ext's ssl-all.log): version,
#     cipher, server_name, cert_chain_fps[0] (SHA-256 of the leaf, Zeek's default hash),
#     and from ssl-log-ext: client_version, client_ciphers, ssl_client_exts,
#     client_supported_versions, orig_alpn, point_formats, client_curves,
#     server_supported_version. server_name "-" with a ClientHello in ssl_history ("C")
#     means no SNI extension: tls_sni == "".
#   * conn.log rows whose service includes "ssl" and smtp.log rows with tls=T: the session
#     must exist (no field values: those logs carry none of the TLS fields).
#   * the ssl.dpd test's .stdout lines "Client hello, <orig_h>, <resp_h>, <client_version>"
#     (addresses only, no ports) -> tls_client_version of a session between those addresses.
# Not used (nothing mailtls records, or test-script-specific text): x509.log (no connection
# id), notice/weird/files/http/tunnel logs, and the other scripts' .stdout printouts.


def _zeek_sections(text: str) -> list[tuple[str, list[str]]]:
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("### zeek btest"):
            sections.append((line[4:], []))
        elif line.startswith("###"):
            continue
        elif sections:
            sections[-1][1].append(line)
    return sections


def _zeek_tables(lines: list[str]) -> list[tuple[str, list[dict[str, str]]]]:
    tables = []
    path, fields, rows = None, None, []
    for line in lines:
        if line.startswith("#path"):
            path, fields, rows = line.split("\t")[1], None, []
        elif line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line.startswith("#close"):
            if path and fields:
                tables.append((path, rows))
            path, fields, rows = None, None, []
        elif line.startswith("#"):
            continue
        elif path and fields and line.strip():
            rows.append(dict(zip(fields, line.split("\t"))))
    return tables


def _zeek_list(v: str) -> list[str] | None:
    if v in ("-", ""):
        return None
    if v == "(empty)":
        return []
    return v.split(",")


def parse_zeek(path: Path, capture: str) -> list[SessionExpectation]:
    out = []
    for title, lines in _zeek_sections(path.read_text(errors="replace")):
        test = title.split(":")[0]
        for log, rows in _zeek_tables(lines):
            if log not in ("ssl", "conn", "smtp"):
                continue
            for row in rows:
                eps = endpoints(row["id.orig_h"], row["id.orig_p"], row["id.resp_h"], row["id.resp_p"])
                label = f"{row['id.orig_h']}:{row['id.orig_p']} -> {row['id.resp_h']}:{row['id.resp_p']}"
                fields: dict[str, Any] = {}
                if log == "ssl":
                    if row.get("version", "-") != "-":
                        fields.update(version_fields(version_code("zeek", row["version"])))
                    ssv = row.get("server_supported_version", "-")
                    if ssv not in ("-", ""):
                        fields["tls_version_code"] = int(ssv)
                    if row.get("cipher", "-") != "-":
                        fields.update(cipher_fields(row["cipher"]))
                    sni = row.get("server_name", "-")
                    if sni != "-":
                        fields["tls_sni"] = sni
                    elif "C" in row.get("ssl_history", ""):
                        fields["tls_sni"] = ""
                    fps = _zeek_list(row.get("cert_chain_fps", "-"))
                    if fps and len(fps[0]) == 64:
                        fields["cert_sha256"] = fps[0]
                    if row.get("client_version", "-") not in ("-", ""):
                        fields["tls_client_version"] = int(row["client_version"])
                    for col, key in (
                        ("client_ciphers", "tls_client_ciphers"),
                        ("ssl_client_exts", "tls_client_extensions"),
                        ("client_supported_versions", "tls_client_versions"),
                        ("point_formats", "tls_client_point_formats"),
                        ("client_curves", "tls_client_groups"),
                    ):
                        vals = _zeek_list(row.get(col, "-"))
                        if vals is not None and vals != []:
                            fields[key] = [int(x) for x in vals]
                    alpn = _zeek_list(row.get("orig_alpn", "-"))
                    if alpn:
                        fields["tls_alpn"] = alpn
                elif log == "conn":
                    if "ssl" not in (row.get("service") or "").split(","):
                        continue
                elif log == "smtp":
                    if row.get("tls") != "T":
                        continue
                else:
                    continue
                out.append(
                    SessionExpectation(
                        tool="zeek",
                        capture=capture,
                        label=label,
                        endpoints=eps,
                        fields=fields,
                        source=f"{test} {log}.log",
                    )
                )
        if test.endswith("ssl.dpd"):
            for line in lines:
                m = re.fullmatch(r"Client hello, (\S+), (\S+), (\d+)", line.strip())
                if m:
                    out.append(
                        SessionExpectation(
                            tool="zeek",
                            capture=capture,
                            label=f"{m.group(1)} -> {m.group(2)}",
                            ips=frozenset({norm_ip(m.group(1)), norm_ip(m.group(2))}),
                            fields={"tls_client_version": int(m.group(3))},
                            source=f"{test} .stdout (Client hello)",
                        )
                    )
    return out


# ---------------------------------------------------------------------------------------
# Arkime tests/pcap/<name>.test: {"sessions3": [{"body": {...}}]}
#
# Per TCP session with a "tls" object: tls.version[0], tls.cipher[0], tls.ja3[0]
# (-> ja3_hash), tls.ja3string[0] (-> ja3), tls.ja3s[0] / tls.ja3sstring[0], tls.ja4[0].
# SNI: Arkime files it under http.host (shared with HTTP Host headers); it is used when the
# session's JA4 says the ClientHello had a server_name ("d") and there is exactly one host,
# and a JA4 "i" (no server_name extension) means tls_sni == "".
# Certificates: Arkime lower-cases subject CNs and does not keep the chain order ->
# cert_subject_cn_ci_in. (cert.hash is SHA-1; mailtls keeps SHA-256.)
# Arkime splits a re-used 5-tuple into several sessions (rootId "SET"); the parts without
# tls data are skipped. UDP sessions (DTLS, QUIC) are skipped.


def parse_arkime(path: Path, capture: str) -> list[SessionExpectation]:
    data = json.loads("\n".join(_strip_header(path.read_text())))
    out = []
    for s in data.get("sessions3", []):
        b = s["body"]
        tls = b.get("tls") or {}
        if b.get("ipProtocol") != 6 or not tls:
            continue
        fields: dict[str, Any] = {}
        first = lambda k: (tls.get(k) or [None])[0]
        if first("version"):
            fields.update(version_fields(version_code("arkime", first("version"))))
        if first("cipher"):
            fields.update(cipher_fields(first("cipher")))
        if first("ja3"):
            fields["ja3_hash"] = first("ja3")
        if first("ja3string") is not None:
            fields["ja3"] = first("ja3string")
        if first("ja3s"):
            fields["ja3s_hash"] = first("ja3s")
        if first("ja3sstring") is not None:
            fields["ja3s"] = first("ja3sstring")
        if first("ja4"):
            fields["ja4"] = first("ja4")
        protos = set(b.get("protocol") or [])
        hosts = (b.get("http") or {}).get("host") or []
        ja4 = first("ja4") or ""
        if ja4[3:4] == "d" and len(hosts) == 1:
            fields["tls_sni"] = hosts[0]
        elif ja4[3:4] == "i":
            fields["tls_sni"] = ""
        cns = {cn.lower() for c in b.get("cert") or [] for cn in c.get("subjectCN") or []}
        if cns:
            fields["cert_subject_cn_ci_in"] = cns
        if not fields:
            continue
        src, dst = b["source"], b["destination"]
        tunnel = None
        if b.get("srcOuterIp") or b.get("vni") or "gre" in protos or "gtp" in protos:
            tunnel = "outer IP/VXLAN/GRE/GTP"
        out.append(
            SessionExpectation(
                tool="arkime",
                capture=capture,
                label=f"{src['ip']}:{src['port']} -> {dst['ip']}:{dst['port']} {sorted(protos)}",
                endpoints=endpoints(src["ip"], src["port"], dst["ip"], dst["port"]),
                fields=fields,
                source="sessions3 body.tls",
                tunnel=tunnel,
            )
        )
    return out


# ---------------------------------------------------------------------------------------
# JA4 reference: rust insta snapshot (YAML list of streams) + python test JSON.
#
# Rust, per TCP stream: ja4 (first ClientHello of the stream: the tool keeps the first one
# only), tls_server_name (absent when the ClientHello has no SNI -> tls_sni == ""), ja4s
# (t<ver><n_ext><alpn>_<cipher hex>_<hash>: the version part is the negotiated one, so it
# gives tls_version_code and the cipher part tls_cipher_code; JA4S itself is not computed by
# mailtls), and the subjectCommonName of the first certificate when the stream carried
# exactly one Certificate message (the server's).
# Python, per stream: JA4.1 (first ClientHello; JA4.2 is the second one after a
# HelloRetryRequest), domain, JA4S. It has no transport field: entries whose JA4 starts
# with "q" (QUIC) or "d" (DTLS) are UDP and skipped, as are rust "transport: udp" entries.

_JA4_VERSIONS = {"13": 0x0304, "12": 0x0303, "11": 0x0302, "10": 0x0301, "s3": 0x0300, "s2": 0x0002}


def _ja4s_fields(ja4s: str) -> dict[str, Any]:
    m = re.fullmatch(r"t(..)\d\d.._([0-9a-f]{4})_[0-9a-f]{12}", ja4s)
    if not m:
        raise ValueError(f"unexpected JA4S {ja4s!r}")
    out: dict[str, Any] = {"tls_cipher_code": int(m.group(2), 16)}
    if m.group(1) in _JA4_VERSIONS:
        out["tls_version_code"] = _JA4_VERSIONS[m.group(1)]
    return out


def parse_ja4(path: Path, capture: str) -> list[SessionExpectation]:
    text = path.read_text()
    parts = re.split(r"^### (ja4 .*)$", text, flags=re.M)
    out = []
    for title, body in zip(parts[1::2], parts[2::2]):
        if title.startswith("ja4 rust"):
            docs = [d for d in re.split(r"^---\s*$", body, flags=re.M) if d.strip()]
            streams = parse_yaml_subset(docs[-1])
            for st in streams or []:
                if st.get("transport") != "tcp":
                    continue
                fields: dict[str, Any] = {}
                if "ja4" in st:
                    fields["ja4"] = st["ja4"]
                    fields["tls_sni"] = st.get("tls_server_name", "")
                if "ja4s" in st:
                    fields.update(_ja4s_fields(st["ja4s"]))
                certs = st.get("tls_certs") or []
                if len(certs) == 1 and certs[0].get("x509"):
                    cn = certs[0]["x509"][0].get("subjectCommonName")
                    if cn:
                        fields["cert_subject_cn"] = str(cn)
                if fields:
                    out.append(
                        SessionExpectation(
                            tool="ja4",
                            capture=capture,
                            label=f"rust stream {st['stream']} {st['src']}:{st['src_port']} -> {st['dst']}:{st['dst_port']}",
                            endpoints=endpoints(st["src"], st["src_port"], st["dst"], st["dst_port"]),
                            fields=fields,
                            source="rust insta snapshot",
                        )
                    )
        elif title.startswith("ja4 python"):
            for st in json.loads(body):
                ja4 = st.get("JA4.1") or st.get("JA4S") or ""
                if not ja4.startswith("t"):
                    continue
                fields = {}
                if "JA4.1" in st:
                    fields["ja4"] = st["JA4.1"]
                    fields["tls_sni"] = st.get("domain", "")
                if "JA4S" in st:
                    fields.update(_ja4s_fields(st["JA4S"]))
                if fields:
                    out.append(
                        SessionExpectation(
                            tool="ja4",
                            capture=capture,
                            label=f"python stream {st['stream']} {st['src']}:{st['srcport']} -> {st['dst']}:{st['dstport']}",
                            endpoints=endpoints(st["src"], st["srcport"], st["dst"], st["dstport"]),
                            fields=fields,
                            source="python test JSON",
                        )
                    )
    return out


# ---------------------------------------------------------------------------------------
# suricata-verify: README + test.yaml of the tests that read the pcap.
#
# Only sections that run Suricata as a passive IDS with default settings are used: a test
# whose `args` contain anything but "-k none" (checksums off), "--runmode=single" or the
# ja4-fingerprints switch (e.g. --simulate-ips, memcap/exception-policy simulations, which
# drop or bypass the flow on purpose), which requires QA_SIMULATION or HAVE_LUA, or which
# pins an older Suricata (`lt-version`, `version`), describes a different run and is skipped.
# Within a used section, filters on event_type "tls" are used; keys map as
#   tls.sni -> tls_sni, tls.version -> version_any, tls.ja3.hash -> ja3_hash,
#   tls.ja3.string -> ja3, tls.ja3s.hash -> ja3s_hash, tls.ja3s.string -> ja3s,
#   tls.ja4 -> ja4, tls.client_handshake.{version,ciphers,exts,sig_algs} ->
#   tls_client_{version,ciphers,extensions,sigalgs}, tls.subject -> cert_subject_cn (its CN),
#   src_ip/dest_ip/src_port/dest_port -> the endpoints (checked as a set).
# Other keys (tls.fingerprint is SHA-1, issuerdn/serial/notbefore/notafter) are dropped; a
# filter with dropped keys can only be checked as "at least `count`".

_SURI_ALLOWED_ARGS = {"-k none", "--runmode=single", "--set app-layer.protocols.tls.ja4-fingerprints=yes"}


def _suri_args_ok(args: Any) -> bool:
    if args is None:
        return True
    items = args if isinstance(args, list) else [args]
    for item in items:
        s = str(item).strip()
        # "-k none --set x=y" in one item
        tokens = re.findall(r"--set \S+|-k \S+|--\S+", s)
        if not tokens or any(t not in _SURI_ALLOWED_ARGS for t in tokens):
            return False
    return True


def _suri_requires_ok(req: Any) -> bool:
    if not req:
        return True
    if "lt-version" in req or "version" in req:
        return False
    feats = req.get("features") or []
    return not any(f in ("QA_SIMULATION", "HAVE_LUA") for f in feats)


def parse_suricata(path: Path, capture: str) -> list[CountExpectation]:
    text = path.read_text()
    parts = re.split(r"^### (suricata-verify .*)$", text, flags=re.M)
    out = []
    for title, body in zip(parts[1::2], parts[2::2]):
        if "test.yaml" not in title:
            continue
        doc = parse_yaml_subset(body) or {}
        test = title.split()[1]
        if not _suri_args_ok(doc.get("args")) or not _suri_requires_ok(doc.get("requires")):
            continue
        for check in doc.get("checks") or []:
            flt = check.get("filter") if isinstance(check, dict) else None
            if not flt or not _suri_requires_ok(flt.get("requires")):
                continue
            if flt.get("filename", "eve.json") != "eve.json":
                continue
            match = flt.get("match") or {}
            if match.get("event_type") != "tls":
                continue
            fields: dict[str, Any] = {}
            dropped = []
            eps: dict[str, Any] = {}
            for k, v in match.items():
                if k == "event_type":
                    continue
                if k == "tls.sni":
                    fields["tls_sni"] = str(v)
                elif k == "tls.version":
                    fields["version_any"] = version_code("suricata", str(v))
                elif k == "tls.ja3.hash":
                    fields["ja3_hash"] = str(v)
                elif k == "tls.ja3.string":
                    fields["ja3"] = str(v)
                elif k == "tls.ja3s.hash":
                    fields["ja3s_hash"] = str(v)
                elif k == "tls.ja3s.string":
                    fields["ja3s"] = str(v)
                elif k == "tls.ja4":
                    fields["ja4"] = str(v)
                elif k == "tls.client_handshake.version":
                    fields["tls_client_version"] = version_code("suricata", str(v))
                elif k == "tls.client_handshake.ciphers":
                    fields["tls_client_ciphers"] = list(v)
                elif k == "tls.client_handshake.exts":
                    fields["tls_client_extensions"] = list(v)
                elif k == "tls.client_handshake.sig_algs":
                    fields["tls_client_sigalgs"] = list(v)
                elif k == "tls.subject":
                    cns = [p.strip()[3:] for p in str(v).split(",") if p.strip().startswith("CN=")]
                    if len(cns) == 1:
                        fields["cert_subject_cn"] = cns[0]
                    dropped.append(k + " (other RDNs)")
                elif k in ("src_ip", "dest_ip", "src_port", "dest_port"):
                    eps[k] = v
                else:
                    dropped.append(k)
            if eps:
                if len(eps) == 4:
                    fields["_endpoints"] = endpoints(eps["src_ip"], eps["src_port"], eps["dest_ip"], eps["dest_port"])
                else:
                    dropped.extend(eps)
            out.append(
                CountExpectation(
                    tool="suricata",
                    capture=capture,
                    label=f"{test}: {json.dumps(match, default=str)}",
                    fields=fields,
                    count=int(flt.get("count", 0)),
                    exact=not dropped,
                    dropped=dropped,
                    source=test,
                )
            )
    return out


def count_matching(records: list[dict], fields: dict[str, Any]) -> int:
    n = 0
    for rec in records:
        if not has_tls(rec):
            continue
        f = dict(fields)
        eps = f.pop("_endpoints", None)
        if eps is not None and record_endpoints(rec) != eps:
            continue
        if not compare_fields(rec, f):
            n += 1
    return n


# ---------------------------------------------------------------------------------------
# Mercury: test/data/top_100_fingerprints.fp, one "tls/(version)(ciphers)((ext)...)" per
# ClientHello. GREASE values are written as 0a0a. Extension items are the type, followed for
# some types by their data. Comparable with mailtls: the ClientHello version, the cipher list
# and the extension type list (GREASE folded to 0x0a0a on both sides) and, where mercury keeps
# the data, supported_groups (000a), ec_point_formats (000b), signature_algorithms (000d),
# ALPN (0010) and supported_versions (002b). mercury's own fingerprint strings / hashes and
# its "tls/1" and "tls/2" normalised formats are not computed by mailtls and not compared.


def _fold_grease(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(0x0A0A if v in GREASE else v for v in values)


def _u16s(h: str) -> list[int]:
    return [int(h[i : i + 4], 16) for i in range(0, len(h), 4)]


def _mercury_groups(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
            if depth == 1:
                cur = ""
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                out.append(cur)
                continue
        if depth >= 1:
            cur += ch
    return out


def mercury_canon(fp: str) -> tuple:
    if not fp.startswith("tls/"):
        raise ValueError(fp)
    version, ciphers, exts = _mercury_groups(fp[4:])
    ext_items = _mercury_groups(exts)
    types = []
    data: dict[str, Any] = {}
    for item in ext_items:
        t = int(item[:4], 16)
        types.append(t)
        body = item[8:]  # skip the 2-byte extension length
        if not body:
            continue
        if t == 0x000A:
            data["groups"] = tuple(v for v in _u16s(body[4:]) if v not in GREASE)
        elif t == 0x000B:
            data["point_formats"] = tuple(int(body[i : i + 2], 16) for i in range(2, len(body), 2))
        elif t == 0x000D:
            data["sigalgs"] = tuple(_u16s(body[4:]))
        elif t == 0x002B:
            data["versions"] = tuple(v for v in _u16s(body[2:]) if v not in GREASE)
        elif t == 0x0010:
            raw, names = bytes.fromhex(body[4:]), []
            while raw:
                n = raw[0]
                names.append(raw[1 : 1 + n].decode("latin-1"))
                raw = raw[1 + n :]
            data["alpn"] = tuple(names)
    return (
        int(version, 16),
        _fold_grease(_u16s(ciphers)),
        _fold_grease(types),
        tuple(sorted(data.items())),
    )


def record_mercury_canon(rec: dict, keys: Iterable[str]) -> tuple:
    """The same tuple built from a record, for the extension-data keys the oracle line has."""
    data = {}
    for k in keys:
        if k == "groups":
            data[k] = tuple(v for v in rec.get("tls_client_groups") or [] if v not in GREASE)
        elif k == "point_formats":
            data[k] = tuple(rec.get("tls_client_point_formats") or [])
        elif k == "sigalgs":
            data[k] = tuple(rec.get("tls_client_sigalgs") or [])
        elif k == "versions":
            data[k] = tuple(v for v in rec.get("tls_client_versions") or [] if v not in GREASE)
        elif k == "alpn":
            data[k] = tuple(rec.get("tls_alpn") or [])
    return (
        rec.get("tls_client_version") or 0,
        _fold_grease(rec.get("tls_client_ciphers") or []),
        _fold_grease(rec.get("tls_client_extensions") or []),
        tuple(sorted(data.items())),
    )


def parse_mercury(path: Path, capture: str) -> list[MercuryFingerprint]:
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("tls/"):
            out.append(MercuryFingerprint(capture, i, line, mercury_canon(line)))
    return out


def mercury_compare(fps: list[MercuryFingerprint], records: list[dict]) -> tuple[list, list]:
    """(oracle fingerprints with no record, records with no oracle fingerprint)."""
    want = Counter(fp.canon for fp in fps)
    have = Counter()
    ch_records = [r for r in records if r.get("tls_client_version")]
    # The data keys present differ per line; a record is rendered with the keys of each
    # distinct oracle key set, and counted once, under the first rendering that matches.
    key_sets = {tuple(k for k, _ in fp.canon[3]) for fp in fps}
    unmatched_records = []
    for r in ch_records:
        for ks in key_sets:
            c = record_mercury_canon(r, ks)
            if want[c] - have[c] > 0:
                have[c] += 1
                break
        else:
            unmatched_records.append(r)
    missing = []
    left = want - have
    for fp in fps:
        if left[fp.canon] > 0:
            missing.append(fp)
            left[fp.canon] -= 1
    return missing, unmatched_records


# ---------------------------------------------------------------------------------------
# Entry point


def load(capture: Path, corpus_root: Path) -> dict[str, list]:
    """{tool: [expectations]} for every oracle beside `capture`."""
    rel = str(capture.relative_to(corpus_root))
    parsers = {
        "ndpi": parse_ndpi,
        "zeek": parse_zeek,
        "suricata": parse_suricata,
        "arkime": parse_arkime,
        "ja4": parse_ja4,
        "mercury": parse_mercury,
    }
    return {tool: parsers[tool](p, rel) for tool, p in oracle_files(capture).items()}


# ---------------------------------------------------------------------------------------
# A YAML subset: block mappings and sequences by indentation, "- key: v" items, plain,
# single- and double-quoted scalars, flow sequences of scalars, full-line and trailing
# comments. Enough for insta snapshots and suricata-verify test.yaml files.


def _yaml_scalar(s: str) -> Any:
    s = s.strip()
    if not s:
        return None
    if s[0] == '"' and s.endswith('"') and len(s) >= 2:
        return bytes(s[1:-1], "utf-8").decode("unicode_escape") if "\\" in s else s[1:-1]
    if s[0] == "'" and s.endswith("'") and len(s) >= 2:
        return s[1:-1].replace("''", "'")
    if s[0] == "[" and s.endswith("]"):
        inner = s[1:-1].strip()
        return [_yaml_scalar(x) for x in inner.split(",")] if inner else []
    if re.fullmatch(r"-?\d+", s) and not (len(s) > 1 and s.lstrip("-").startswith("0")):
        return int(s)
    if s in ("true", "false"):
        return s == "true"
    return s


def _strip_comment(s: str) -> str:
    if s.lstrip().startswith("#"):
        return ""
    out, q = [], None
    for i, ch in enumerate(s):
        if q:
            if ch == q:
                q = None
        elif ch in "'\"" and (i == 0 or s[i - 1] in " :-[,"):
            q = ch
        elif ch == "#" and (i == 0 or s[i - 1] == " "):
            break
        out.append(ch)
    return "".join(out).rstrip()


def parse_yaml_subset(text: str) -> Any:
    lines = []
    for raw in text.splitlines():
        s = _strip_comment(raw)
        if s.strip():
            lines.append([len(s) - len(s.lstrip(" ")), s.strip()])

    def block(i: int, indent: int) -> tuple[Any, int]:
        if i >= len(lines):
            return None, i
        if lines[i][1].startswith("- ") or lines[i][1] == "-":
            seq = []
            while i < len(lines) and lines[i][0] == indent and (lines[i][1].startswith("- ") or lines[i][1] == "-"):
                rest = lines[i][1][2:].strip() if lines[i][1] != "-" else ""
                if not rest:
                    val, i = block(i + 1, lines[i + 1][0]) if i + 1 < len(lines) and lines[i + 1][0] > indent else (None, i + 1)
                    seq.append(val)
                elif re.match(r"^[^'\"\[][^:]*:(\s|$)", rest):
                    lines[i] = [indent + 2, rest]  # "- key: v" opens a mapping at indent+2
                    val, i = block(i, indent + 2)
                    seq.append(val)
                else:
                    seq.append(_yaml_scalar(rest))
                    i += 1
            return seq, i
        mapping: dict[str, Any] = {}
        while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
            key, _, rest = lines[i][1].partition(":")
            key, rest = key.strip().strip("'\""), rest.strip()
            i += 1
            if rest:
                # a plain scalar may continue on more-indented lines (folded with spaces)
                while i < len(lines) and lines[i][0] > indent and rest[0] not in "'\"[":
                    rest += " " + lines[i][1]
                    i += 1
                mapping[key] = _yaml_scalar(rest)
            elif i < len(lines) and (lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("- "))):
                mapping[key], i = block(i, lines[i][0])
            else:
                mapping[key] = None
        return mapping, i

    if not lines:
        return None
    val, _ = block(0, lines[0][0])
    return val
