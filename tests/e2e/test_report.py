"""`mailtls report` on captures of real mail peers (the recorded one and a fresh one).

Ground truth never comes from mailtls: it is derived from the driver's manifest plus the
listener policies of mailpeers.sh (postfix_truth.expected_from_manifest):
* clients 127.0.1.x are "ours" (--local-net 127.0.1.0/24), so every session is outbound, to the
  servers 127.0.0.x;
* a session has a ClientHello when the expected mode is starttls or implicit_tls; its client
  offers exactly the version the manifest asked for, and when the server accepts it that version
  is negotiated;
* `--min-version V` must list exactly the sessions with a ClientHello whose asked-for version is
  below V (peer = the server), nothing for other directions;
* `--tlsrpt` must count as successful exactly the sessions expected to end in TLS, as
  starttls-not-supported those expected to be plaintext_not_offered or starttls_refused, as
  validation-failure those expected to be tls_failed (the servers refuse the version), and leave
  out those where STARTTLS was offered and not used.

The HTML report is rendered by headless Chromium (Debian's `chromium`, installed here when
missing); the screenshot must show the chart bars, and every <svg> chart must hold a bar.
"""
import collections
import json
import os
import pathlib
import re
import shutil
import struct
import subprocess
import zlib

import pytest

import postfix_truth
from conftest import REPO

LOCAL_NET = "127.0.1.0/24"
RANK = {v: i for i, v in enumerate(postfix_truth.VERSION_ORDER)}


@pytest.fixture(scope="module", params=["recorded_peers", "fresh_peers"])
def peers_jsonl(request, mailtls_bin, tmp_path_factory):
    cap = request.getfixturevalue(request.param)
    out = tmp_path_factory.mktemp("report") / "sessions.jsonl"
    proc = subprocess.run([str(mailtls_bin), "read", str(cap.pcap), "--jsonl", str(out),
                           "--local-net", LOCAL_NET], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cap.label}: {proc.stderr[-2000:]}"
    manifest = postfix_truth.read_manifest(cap.manifest)
    return cap.label, out, manifest


def run_report(mailtls_bin, *args):
    proc = subprocess.run([str(mailtls_bin), "report", *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"report {args}: {proc.stderr[-2000:]}"
    return proc.stdout


def expectations(manifest):
    return {port: (row, postfix_truth.expected_from_manifest(row)) for port, row in manifest.items()}


_SECTION = re.compile(r"^\[(\w+)\] (\d+) failing sessions, (\d+) peers")
_PEER = re.compile(r"^  peer (\S+) name \S+ ports \S+ offered (\S+) negotiated (\S+) sessions (\d+) ")
_SESSION = re.compile(r"^  session (\S+):(\d+) -> (\S+):(\d+) name \S+ offered (\S+) "
                      r"negotiated (\S+) outcome (\S+) ")


def parse_min_version(text):
    sessions, peers, section = collections.defaultdict(dict), collections.defaultdict(dict), None
    for line in text.splitlines():
        if m := _SECTION.match(line):
            section = m[1]
        elif section and (m := _PEER.match(line)):
            peers[section][m[1]] = (m[2], m[3], int(m[4]))
        elif section and (m := _SESSION.match(line)):
            sessions[section][(m[1], int(m[2]), m[3], int(m[4]))] = (m[5], m[6], m[7])
    return sessions, peers


@pytest.mark.parametrize("minimum", ["TLSv1.2", "TLSv1.3"])
def test_min_version_lists_exactly_the_manifest_sessions(peers_jsonl, mailtls_bin, minimum):
    label, jsonl, manifest = peers_jsonl
    want_sessions, want_peers = {}, collections.Counter()
    for row, e in expectations(manifest).values():
        if e.mode not in ("starttls", "implicit_tls"):
            continue  # no ClientHello: not judged by a TLS minimum
        asked = postfix_truth.MANIFEST_VERSION[row["version"]]
        if RANK[asked] < RANK[minimum]:
            key = (row["client_ip"], row["client_port"], row["server"], row["port"])
            want_sessions[key] = (asked, e.tls_version or "-", e.outcome)
            want_peers[row["server"]] += 1
    out = run_report(mailtls_bin, jsonl, "--min-version", minimum)
    sessions, peers = parse_min_version(out)
    assert set(sessions) <= {"outbound"}, f"{label}: non-outbound sections listed: {dict(sessions)}"
    got = sessions.get("outbound", {})
    missing = sorted(set(want_sessions) - set(got))
    extra = sorted(set(got) - set(want_sessions))
    assert not missing and not extra, f"{label} {minimum}: missing {missing[:10]}, extra {extra[:10]}"
    wrong = {k: (got[k], v) for k, v in want_sessions.items() if got[k] != v}
    assert not wrong, f"{label} {minimum}: (offered, negotiated, outcome) differ: {list(wrong.items())[:10]}"
    got_peers = {ip: n for ip, (_, _, n) in peers.get("outbound", {}).items()}
    assert got_peers == dict(want_peers), f"{label} {minimum}: peers {got_peers} != {dict(want_peers)}"
    m = re.search(r"\[outbound\] (\d+) failing sessions, (\d+) peers", out)
    assert m and int(m[1]) == len(want_sessions) and int(m[2]) == len(want_peers), label


TLSRPT_TYPE = {"tls_failed": "validation-failure", "starttls_refused": "starttls-not-supported",
               "plaintext_not_offered": "starttls-not-supported"}


def test_tlsrpt_counts_equal_the_manifest(peers_jsonl, mailtls_bin, tmp_path):
    label, jsonl, manifest = peers_jsonl
    want_ok, want_fail = 0, collections.Counter()
    for row, e in expectations(manifest).values():
        if e.outcome == "tls":
            want_ok += 1
        elif e.outcome in TLSRPT_TYPE:
            want_fail[(TLSRPT_TYPE[e.outcome], row["server"], row["client_ip"])] += 1
        else:
            assert e.outcome == "plaintext_offered", e  # not a TLS attempt: not counted
    out_dir = tmp_path / "tlsrpt"
    run_report(mailtls_bin, jsonl, "--tlsrpt", out_dir)
    files = sorted(out_dir.glob("*.json"))
    assert files, f"{label}: no TLSRPT file written"
    got_ok, got_fail, domains = 0, collections.Counter(), set()
    for f in files:
        doc = json.loads(f.read_text())
        for k in ("organization-name", "date-range", "contact-info", "report-id", "policies"):
            assert k in doc, (f.name, k)
        assert set(doc["date-range"]) == {"start-datetime", "end-datetime"}, f.name
        assert len(doc["policies"]) == 1, f.name
        pol = doc["policies"][0]
        assert pol["policy"]["policy-type"] == "no-policy-found", f.name
        domain = pol["policy"]["policy-domain"]
        assert domain not in domains, f"{label}: two files for {domain}"
        domains.add(domain)
        s = pol["summary"]
        details = pol["failure-details"]
        assert s["total-failure-session-count"] == sum(d["failed-session-count"] for d in details), f.name
        got_ok += s["total-successful-session-count"]
        for d in details:
            assert d["receiving-mx-hostname"] == domain, (f.name, d)
            if d["result-type"] == "validation-failure":
                assert d.get("additional-information"), (f.name, d)
            got_fail[(d["result-type"], d["receiving-ip"], d["sending-mta-ip"])] += d["failed-session-count"]
    assert got_ok == want_ok, f"{label}: {got_ok} successful sessions, manifest says {want_ok}"
    diff = {k: (got_fail.get(k, 0), want_fail.get(k, 0)) for k in set(got_fail) | set(want_fail)
            if got_fail.get(k, 0) != want_fail.get(k, 0)}
    assert not diff, f"{label}: failure counts (got, manifest) differ: {sorted(diff.items())[:10]}"


# ---- HTML ---------------------------------------------------------------------------------------

def _chromium():
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-qq", "chromium"]
        if subprocess.run(install, env=env, timeout=900, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, timeout=600, capture_output=True)
            subprocess.run(install, env=env, timeout=900, capture_output=True)
    if not os.path.exists(path):
        pytest.fail("chromium is not installed and `apt-get install -y chromium` failed")
    return path


def read_png_rgb(path):
    """Decodes an 8-bit RGB/RGBA non-interlaced PNG; returns (width, height, rows of bytes
    with `channels` bytes per pixel, channels)."""
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif ftype == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b, c = prev[i], prev[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        prev = line
    return width, height, rows, channels


def test_html_report_renders_charts_in_chromium(recorded_peers, mailtls_bin, tmp_path):
    chromium = _chromium()
    jsonl = tmp_path / "sessions.jsonl"
    subprocess.run([str(mailtls_bin), "read", str(recorded_peers.pcap), "--jsonl", str(jsonl),
                    "--local-net", LOCAL_NET], check=True, capture_output=True, timeout=600)
    html = tmp_path / "report.html"
    run_report(mailtls_bin, jsonl, "--html", html)
    page = html.read_text()

    # Self-contained: no script, no fetched resource of any kind.
    assert "<script" not in page.lower()
    assert not re.search(r"\b(src|href)\s*=", page, re.I), "the page refers to a resource"
    assert "url(" not in page and "@import" not in page
    svgs = re.findall(r"<svg\b.*?</svg>", page, re.S)
    assert len(svgs) >= 4, f"{len(svgs)} charts"
    for svg in svgs:
        widths = [float(w) for w in re.findall(r"<rect\b[^>]*\bwidth=\"([\d.]+)\"", svg)]
        assert any(w > 0 for w in widths), f"chart without a bar: {svg[:200]}"

    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2000",
           "--hide-scrollbars", html.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert shot.exists() and shot.stat().st_size > 0, f"no screenshot: {proc.stderr[-2000:]}"
    width, height, rows, ch = read_png_rgb(shot)
    assert (width, height) == (1280, 2000), (width, height)
    non_white = bar_blue = 0
    for line in rows:
        for x in range(0, width * ch, ch):
            r, g, b = line[x], line[x + 1], line[x + 2]
            if r < 240 or g < 240 or b < 240:
                non_white += 1
            # the first bar colour of every chart, #2b6cb0 (43, 108, 176)
            if abs(r - 43) < 12 and abs(g - 108) < 12 and abs(b - 176) < 12:
                bar_blue += 1
    assert non_white > 20_000, f"screenshot nearly blank: {non_white} non-white pixels"
    # Five charts, each with a first bar at least 2 x 18 px (usually 420 x 18).
    assert bar_blue > 5 * 2 * 18, f"chart bars not visible in the screenshot: {bar_blue} px"
    docs = REPO / "docs"
    docs.mkdir(exist_ok=True)
    shutil.copyfile(shot, docs / "report-screenshot.png")


# ---- ClickHouse input ---------------------------------------------------------------------------

def _without_sources(text):
    """The report minus the lines naming its input (file path or ClickHouse URL)."""
    return "\n".join(line for line in text.splitlines()
                     if " records" not in line and not line.startswith("  wrote "))


def test_clickhouse_input_equals_jsonl_input(recorded_peers, mailtls_bin, tmp_path):
    """The same capture, once through ClickHouse (Debian's 18.16 server of
    scripts/clickhouse-server.sh) and once as JSONL, gives the same report, whole and for a
    time window."""
    if not os.path.exists("/usr/sbin/clickhouse-server"):
        pytest.skip("clickhouse-server not installed (scripts/clickhouse-server.sh installs it)")
    server_sh = REPO / "scripts" / "clickhouse-server.sh"
    was_running = subprocess.run(["bash", str(server_sh), "status"], capture_output=True).returncode == 0
    url = subprocess.run(["bash", str(server_sh), "start"], check=True, capture_output=True,
                         text=True, timeout=300).stdout.strip().splitlines()[-1]
    db = f"mailtls_report_test_{os.getpid()}"
    jsonl = tmp_path / "sessions.jsonl"
    read = subprocess.run([str(mailtls_bin), "read", str(recorded_peers.pcap), "--jsonl", str(jsonl),
                           "--local-net", LOCAL_NET, "--clickhouse", url, "--clickhouse-database", db],
                          capture_output=True, text=True, timeout=600)
    assert read.returncode == 0, read.stderr[-2000:]
    try:
        for window in ([], ["--from", "2026-11-22T21:45:30Z", "--to", "2026-11-22T21:45:45Z"]):
            args = ["--min-version", "TLSv1.2", *window]
            from_ch = run_report(mailtls_bin, "--clickhouse", url, "--clickhouse-database", db,
                                 "--tlsrpt", tmp_path / "ch", *args)
            from_jsonl = run_report(mailtls_bin, jsonl, "--tlsrpt", tmp_path / "jsonl", *args)
            n_ch = re.search(rf"{db}\.sessions: (\d+) records", from_ch)
            n_jsonl = re.search(r"sessions\.jsonl: (\d+) records", from_jsonl)
            assert n_ch and n_jsonl and n_ch[1] == n_jsonl[1] and int(n_ch[1]) > 0, window
            assert _without_sources(from_ch) == _without_sources(from_jsonl), window
            for f in (tmp_path / "jsonl").glob("*.json"):
                assert json.loads(f.read_text()) == json.loads((tmp_path / "ch" / f.name).read_text()), f.name
            shutil.rmtree(tmp_path / "ch")
            shutil.rmtree(tmp_path / "jsonl")
    finally:
        import urllib.request
        urllib.request.urlopen(urllib.request.Request(url, data=f"DROP DATABASE IF EXISTS {db}".encode()),
                               timeout=60).read()
        if not was_running:
            subprocess.run(["bash", str(server_sh), "stop"], capture_output=True, timeout=120)


@pytest.mark.parametrize("local_net", [LOCAL_NET, None], ids=["outbound", "external"])
def test_report_does_not_depend_on_record_order(recorded_peers, mailtls_bin, tmp_path, local_net):
    """Workers interleave their records and ClickHouse answers in no fixed order, so the same
    sessions in the recorded order, reversed and shuffled must give the same report, HTML page
    and TLSRPT reports. Peers here are seen under several names (a client sends a new EHLO name
    on every connection), which is what a first-name-wins choice got wrong."""
    jsonl = tmp_path / "sessions.jsonl"
    read = [str(mailtls_bin), "read", str(recorded_peers.pcap), "--jsonl", str(jsonl)]
    proc = subprocess.run(read + (["--local-net", local_net] if local_net else []),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in jsonl.read_text().splitlines() if line.strip()]
    names = collections.defaultdict(set)
    for r in map(json.loads, lines):
        names[r["client_ip"]].add(r["ehlo_host"])
    assert max(map(len, names.values())) > 1, "the capture must hold a client seen under several names"
    orders = {"recorded": lines, "reversed": lines[::-1],
              "shuffled": sorted(lines, key=lambda line: zlib.crc32(line.encode()))}
    outputs = {}
    for label, order in orders.items():
        path = tmp_path / f"{label}.jsonl"
        path.write_text("\n".join(order) + "\n")
        html, tlsrpt = tmp_path / f"{label}.html", tmp_path / f"{label}-tlsrpt"
        text = run_report(mailtls_bin, path, "--min-version", "TLSv1.3", "--html", html,
                          "--tlsrpt", tlsrpt)
        reports = sorted((f.name, f.read_text()) for f in tlsrpt.iterdir())
        # The paths of the input and output files are the only thing that may differ.
        stem = str(tmp_path / label)
        outputs[label] = (*(t.replace(stem, "ORDER").splitlines() for t in (text, html.read_text())),
                          reports)
    assert "peer " in "\n".join(outputs["recorded"][0]), "no peer listed: nothing compared"
    assert outputs["recorded"][2], "no TLSRPT report written: nothing compared"
    for label in ("reversed", "shuffled"):
        assert outputs[label][0] == outputs["recorded"][0], f"text report of the {label} records"
        assert outputs[label][1] == outputs["recorded"][1], f"HTML page of the {label} records"
        assert outputs[label][2] == outputs["recorded"][2], f"TLSRPT reports of the {label} records"


@pytest.fixture(scope="module")
def many_sessions(tmp_path_factory):
    """A capture of ~6,600 sessions copied from the recorded peers' sessions (the benchmark's
    generator, deterministic): more than one part of a worker's summary (4,096 records)."""
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "mailtls-sensor", "--example",
                    "benchgen"], cwd=REPO, check=True, timeout=1200)
    out = tmp_path_factory.mktemp("benchgen") / "mail-20M.pcap"
    subprocess.run([str(REPO / "target" / "release" / "examples" / "benchgen"), "--mix", "mail",
                    "--size", "20M", "--seed", "1", "--out", str(out)], check=True,
                   capture_output=True, timeout=600)
    return out


def _until_statistics(text):
    head, sep, _ = text.partition("\nCapture statistics\n")
    assert sep, f"no statistics section in:\n{text[-2000:]}"
    return head


@pytest.mark.parametrize("workers", ["1", "4"])
@pytest.mark.parametrize("capture", ["recorded_peers", "fresh_peers", "many_sessions"])
def test_read_report_equals_the_report_of_its_records(capture, workers, request, mailtls_bin,
                                                      tmp_path):
    """`mailtls read` folds its terminal report in the workers, in parts that the sink stage
    merges; `mailtls report` folds the records one at a time. For the same records both must
    print the same report (up to the run's statistics), and a read that writes no JSONL the same
    as one that does."""
    value = request.getfixturevalue(capture)
    pcap = getattr(value, "pcap", value)
    jsonl = tmp_path / "sessions.jsonl"
    read = [str(mailtls_bin), "read", str(pcap), "--workers", workers, "--no-progress"]
    texts = {}
    for label, extra in (("with JSONL", ["--jsonl", str(jsonl)]), ("report only", [])):
        proc = subprocess.run(read + extra, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        texts[label] = _until_statistics(proc.stdout)
    records = sum(1 for line in jsonl.read_text().splitlines() if line.strip())
    assert records > 0
    if capture == "many_sessions":
        assert records > 4096, f"{records} records: one worker would fold a single part"
    from_records = _until_statistics(run_report(mailtls_bin, jsonl))
    assert f"mailtls report: {records} sessions" in from_records
    assert "%  TLSv1." in from_records, "no TLS session: little compared"
    assert texts["with JSONL"] == from_records
    assert texts["report only"] == from_records
