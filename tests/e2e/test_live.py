"""Live capture (`mailtls capture`) in network namespaces the test makes itself.

- tcpreplay replays a real capture at top speed onto one end of a veth pair while
  `mailtls capture` listens on the other end (in its own namespace): every session of
  `mailtls read` on the same file is recorded, field by field (less the clock-derived fields),
  and the kernel/own drop counters are reported;
- real live traffic: real Postfix/OpenSSL/swaks sessions (../shared/tools/mailpeers.sh) on
  loopback, captured live, equal `mailtls read` of the capture tcpdump took of the same traffic;
- the parsers do not run as root (uid after start);
- SIGTERM in the middle of a run: exit 0, nothing complete is lost.

Needs root (namespaces, capture), like CI.
"""
import fcntl
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import BIN, PEERS, SHARED, run_read

# Fields that depend on the clock of the capture (live: arrival time; file: recorded time).
CLOCK_FIELDS = {"ts_start", "ts_end", "tls_handshake_us", "sensor"}


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module", autouse=True)
def need_root():
    if os.geteuid() != 0:
        pytest.fail("the live-capture tests need root (network namespaces, capture)")


@pytest.fixture
def veth(tmp_path):
    """Two namespaces joined by a veth pair: (replay side, capture side)."""
    tag = f"{os.getpid() % 10000}"
    a, b = f"mtlsA{tag}", f"mtlsB{tag}"
    sh("ip", "netns", "add", a)
    sh("ip", "netns", "add", b)
    try:
        sh("ip", "link", "add", "vA", "netns", a, "type", "veth", "peer", "name", "vB", "netns", b)
        for ns, dev in ((a, "vA"), (b, "vB")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield a, b
    finally:
        sh("ip", "netns", "del", a, check=False)
        sh("ip", "netns", "del", b, check=False)


class LiveSensor:
    """A `mailtls capture` process writing JSONL, optionally inside a namespace."""

    def __init__(self, tmp_path, iface, netns=None, extra=()):
        self.jsonl = tmp_path / "live.jsonl"
        self.err = tmp_path / "live.err"
        cmd = [str(BIN), "capture", "-i", iface, "--jsonl", str(self.jsonl), "--workers", "1",
               "--log-interval", "1", "--stats-interval", "1", "--buffer-mb", "64", *extra]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.err, "w"))
        deadline = time.time() + 20
        while "capturing on" not in self.err.read_text():
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"capture did not start: {self.err.read_text()}")
            time.sleep(0.1)
        time.sleep(0.3)

    def pid(self):
        """PID of mailtls itself (the child of `ip netns exec` execs in place)."""
        return self.proc.pid

    def stop(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        return rc, self.err.read_text()

    def records(self):
        return [json.loads(l) for l in self.jsonl.read_text().splitlines() if l.strip()]


def key(r):
    return (r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])


def comparable(r):
    return json.dumps({k: v for k, v in r.items() if k not in CLOCK_FIELDS}, sort_keys=True)


def counters(stderr):
    out = {}
    for line in stderr.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            out[name.strip()] = int(value)
    return out


def assert_same_sessions(live, offline, what):
    assert len(live) == len(offline), f"{what}: {len(live)} live records, {len(offline)} offline"
    live_by = sorted(comparable(r) for r in live)
    off_by = sorted(comparable(r) for r in offline)
    if live_by != off_by:
        lk = {key(r): r for r in live}
        for r in offline:
            l = lk.get(key(r))
            assert l is not None, f"{what}: no live record for {key(r)}"
            diff = {k: (r[k], l[k]) for k in r if k not in CLOCK_FIELDS and r[k] != l[k]}
            assert not diff, f"{what}: {key(r)} differs (offline, live): {diff}"
        raise AssertionError(f"{what}: records differ")


def test_tcpreplay_at_top_speed_equals_read(veth, tmp_path):
    replay_ns, capture_ns = veth
    # Ten copies of the recorded peers capture, an hour apart: 1200 sessions.
    copies = []
    for i in range(10):
        p = tmp_path / f"c{i}.pcap"
        sh("editcap", "-t", str(i * 3600), str(PEERS / "mailpeers-2026.pcap"), str(p))
        copies.append(str(p))
    replay = tmp_path / "replay.pcap"
    sh("mergecap", "-a", "-w", str(replay), *copies)
    offline, _ = run_read([replay], "--workers", "1")

    sensor = LiveSensor(tmp_path, "vB", netns=capture_ns)
    out = sh("ip", "netns", "exec", replay_ns, "tcpreplay", "-i", "vA", "--topspeed", str(replay))
    print(out.stdout[-600:])
    time.sleep(2)
    rc, err = sensor.stop()
    assert rc == 0, err[-2000:]
    c = counters(err)
    assert "kernel_drops" in c and "kernel_if_drops" in c, "drop counters are reported"
    print(f"tcpreplay: {c.get('packets')} packets, kernel_drops={c['kernel_drops']}, "
          f"kernel_if_drops={c['kernel_if_drops']}")
    live = sensor.records()
    if c["kernel_drops"] == 0:
        assert_same_sessions(live, offline, "tcpreplay --topspeed")
    else:
        # The kernel dropped packets: the sessions it hit cannot be equal, the others must be.
        assert len(live) >= len(offline) * 0.9, f"{c['kernel_drops']} kernel drops"


def test_real_postfix_traffic_captured_live(tmp_path):
    out = tmp_path / "peers"
    with open("/tmp/mailtls-mailpeers.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sensor = LiveSensor(tmp_path, "lo", extra=["--ports", "25,587,465"])
        proc = subprocess.run(["bash", str(SHARED / "tools" / "mailpeers.sh"), str(out), "4711", "30"],
                              capture_output=True, text=True, timeout=900)
        time.sleep(1.5)
        rc, err = sensor.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert rc == 0, err[-2000:]
    offline, _ = run_read([out / "capture.pcap"], "--workers", "1")
    assert len(offline) >= 20, "mailpeers.sh recorded too few sessions"
    # The live sensor also saw what happened before mailpeers.sh started its tcpdump (its own
    # readiness probe of Postfix): only sessions inside tcpdump's time span are compared.
    first = min(r["ts_start"] for r in offline)
    last = max(r["ts_end"] for r in offline)
    live = [r for r in sensor.records() if first <= r["ts_start"] <= last]
    outside = [r for r in sensor.records() if not first <= r["ts_start"] <= last]
    assert len(outside) <= 2, f"unexpected live sessions outside the capture: {outside}"
    assert_same_sessions(live, offline, "live Postfix sessions")


def test_parsers_do_not_run_as_root(veth, tmp_path):
    _, capture_ns = veth
    sensor = LiveSensor(tmp_path, "vB", netns=capture_ns)
    try:
        status = pathlib.Path(f"/proc/{sensor.pid()}/status").read_text()
        uids = next(l for l in status.splitlines() if l.startswith("Uid:")).split()[1:]
        assert all(u != "0" for u in uids), f"still root: Uid {uids}"
        assert "running as nobody" in sensor.err.read_text()
    finally:
        rc, err = sensor.stop()
    assert rc == 0, err


def test_sigterm_mid_run_loses_nothing_complete(veth, tmp_path):
    replay_ns, capture_ns = veth
    sensor = LiveSensor(tmp_path, "vB", netns=capture_ns)
    # Replay slowly (real timing, multiplied) in the background and stop the sensor midway.
    replay = subprocess.Popen(["ip", "netns", "exec", replay_ns, "tcpreplay", "-i", "vA",
                               "--multiplier", "2", str(PEERS / "mailpeers-2026.pcap")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4)
    rc, err = sensor.stop()
    replay.wait(timeout=120)
    assert rc == 0, err[-2000:]
    c = counters(err)
    live = sensor.records()
    assert c["records"] == len(live), "every record emitted was written"
    assert len(live) > 0
    # Every session that had finished (FIN/RST) before the stop is complete and equal to the
    # offline reading of the same session.
    offline = {key(r): r for r in run_read([PEERS / "mailpeers-2026.pcap"], "--workers", "1")[0]}
    finished = [r for r in live if r["end_reason"] in ("fin", "rst")]
    assert finished, "some sessions finished before SIGTERM"
    for r in finished:
        o = offline[key(r)]
        diff = {k: (o[k], r[k]) for k in o if k not in CLOCK_FIELDS and o[k] != r[k]}
        assert not diff, f"{key(r)} differs (offline, live): {diff}"
