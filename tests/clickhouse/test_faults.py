"""Faults in the ClickHouse sink, end to end: the real `mailtls read --clickhouse` against the
real Debian 12 clickhouse-server 18.16 (issue 7, "faults in the sink").

- repeated restarts: the server is killed with SIGKILL and started again RESTARTS times
  during one run, with and without a spool; the capture is fed through a FIFO, so records
  keep coming before, during and after every outage;
- throttled server: an asyncio TCP proxy in front of the server passes at most THROTTLE_BPS
  bytes/s towards it and holds every request back THROTTLE_LATENCY s, so batches back up:
  with a spool they go there (and are replayed), without one they wait in the bounded queue
  (the `sink_queue_depth` gauge of `sensor_stats` shows them);
- full disk: the spool lives on a 2 MiB tmpfs while the server is down: the sensor goes on,
  logs every drop, and written + spooled + dropped = emitted; a later run replays the
  spool into the restarted server.

In every case: count() and uniqExact(session_id) of `sessions` plus the rows reported
dropped equal the sessions the sensor reported (its `records` counter and the JSONL it
wrote in parallel); `sensor_stats` rows arrive once (their `records` deltas add up).
"""
import asyncio
import json
import os
import re
import struct
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import (
    PANIC_MARKERS, ch_query, cli_env, counters, fresh_db, jsonl_lines, key, read_cmd, rows_now,
    scalar, server_ctl, session_count, us, wait_for)

RESTARTS = 4
THROTTLE_BPS = 200_000  # bytes per second towards the server, over all connections
THROTTLE_LATENCY = 0.1  # seconds added before each request
SLOW_INSERTS, SLOW_INSERT_S = 2, 6.0  # the first batch INSERTs are held this long: longer
#                                       than the 5 s a closed batch waits before the spool


# ---------------------------------------------------------------------------- helpers

class Trickle(threading.Thread):
    """Writes a capture into a FIFO in `chunks` pieces, each only once the test has allowed
    it (`allow`), so records keep coming exactly when the test wants them: while the server
    is up, while it is down, and after the last restart (`allow_all`)."""

    def __init__(self, src, fifo, chunks=48, pause=0.05):
        super().__init__(daemon=True)
        self.data = Path(src).read_bytes()
        self.fifo = fifo
        self.chunks, self.pause = chunks, pause
        self.permitted = 0
        self.cond = threading.Condition()
        self.written = 0
        self.error = None

    def run(self):
        size = -(-len(self.data) // self.chunks)
        try:
            with open(self.fifo, "wb", buffering=0) as f:
                for i in range(self.chunks):
                    with self.cond:
                        if not self.cond.wait_for(lambda: i < self.permitted, timeout=300):
                            raise OSError("never allowed to go on")
                    part = self.data[i * size:(i + 1) * size]
                    f.write(part)
                    self.written += len(part)
                    time.sleep(self.pause)
        except OSError as e:  # the reader went away
            self.error = e

    def allow(self, chunks):
        with self.cond:
            self.permitted += chunks
            self.cond.notify_all()

    def allow_all(self):
        self.allow(self.chunks)

    def abort(self):
        """Unblocks a writer still waiting for a reader (the sensor failed to start)."""
        self.allow_all()
        try:
            fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass


def fifo_for(tmp_path):
    path = tmp_path / "capture.fifo"
    os.mkfifo(path)
    return path


def run_to_end(proc, timeout):
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError("mailtls did not finish: " + err[-3000:])
    return err


def stats_rows(server, db, sensor=None):
    """count(), sum(records), distinct rows of db.sensor_stats (for one sensor name)."""
    where = f" WHERE sensor = '{sensor}'" if sensor else ""
    out = ch_query(server, f"SELECT count(), sum(records), "
                           f"uniqExact(sensor, ts, interval_ms, packets, records) "
                           f"FROM {db}.sensor_stats{where}").split()
    return tuple(int(x) for x in out)


def dropped_in_log(stderr):
    """Rows named by the sink's DROPPED error lines."""
    return sum(int(m.group(1)) for m in re.finditer(r"DROPPED (\d+) rows", stderr))


def empty_pcap(path):
    """A capture without packets: a run on it only replays the spool."""
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    return path


def assert_clean_exit(proc_or_result, err):
    assert proc_or_result.returncode == 0, err[-3000:]
    assert not any(m in err for m in PANIC_MARKERS), err[-3000:]


def restart_repeatedly(server, db, proc, trickle, times, downtime=1.0):
    """Kills the server (SIGKILL) `times` times while `proc` runs, each time after rows
    arrived since the last restart; feeds the capture while the server is up and while it is
    down. Returns the row counts seen just before each kill."""
    per_phase = trickle.chunks // (2 * times + 2)
    seen = []
    last = 0
    for i in range(times):
        trickle.allow(per_phase)
        wait_for(f"new rows before kill {i + 1}", lambda: rows_now(server, db) > last, 60, proc)
        assert proc.poll() is None, f"the run ended before kill {i + 1}"
        last = rows_now(server, db)
        server_ctl("kill")
        seen.append(last)
        trickle.allow(per_phase)
        time.sleep(downtime)
        server_ctl("start")
    trickle.allow_all()
    return seen


# ---------------------------------------------------------------------------- 1. restarts

@pytest.mark.parametrize("spool", [False, True], ids=["no_spool", "spool"])
def test_server_killed_and_restarted_repeatedly(mailtls, server, big_capture, tmp_path, spool):
    capture, n = big_capture
    db = fresh_db(server, "restarts")
    fifo = fifo_for(tmp_path)
    out = tmp_path / "out.jsonl"
    extra = ["--jsonl", "-", "--clickhouse-batch-rows", "200", "--stats-interval", "1"]
    if spool:
        extra += ["--clickhouse-spool", tmp_path / "spool"]
    trickle = Trickle(capture, fifo)
    with open(out, "w") as stdout:
        proc = subprocess.Popen(read_cmd(mailtls, server, [fifo], db, *extra), env=cli_env(),
                                stdout=stdout, stderr=subprocess.PIPE, text=True)
    trickle.start()
    started = time.time()
    try:
        seen = restart_repeatedly(server, db, proc, trickle, RESTARTS)
        err = run_to_end(proc, 180)
    finally:
        trickle.abort()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        server_ctl("start")
    elapsed = time.time() - started
    assert_clean_exit(proc, err)
    assert trickle.error is None and trickle.written == capture.stat().st_size
    c = counters(err)
    records = jsonl_lines(out)
    assert c["records"] == len(records) == n
    assert len({key(r) for r in records}) == n
    assert seen == sorted(seen) and 0 < seen[-1] < n, f"every kill happened mid-run: {seen}"
    assert c["clickhouse_batches_retried"] > 0, "inserts failed and were retried"
    assert c["clickhouse_rows_rejected"] == 0
    assert c["clickhouse_spool_rows_pending"] == 0
    # Rows in the table + rows reported dropped = sessions reported; nothing twice.
    count, distinct_ids, distinct_keys = session_count(server, db)
    assert count + c["clickhouse_rows_dropped"] == n
    assert count == distinct_ids == distinct_keys == n
    # sensor_stats: every row once (the `records` deltas add up to the total).
    stats_count, stats_records, stats_distinct = stats_rows(server, db)
    assert stats_records == n and stats_distinct == stats_count >= 1
    if spool:
        assert c["clickhouse_rows_spooled"] > 0 and c["clickhouse_batches_replayed"] > 0
    else:
        assert c["clickhouse_rows_spooled"] == 0
    print(f"\n{RESTARTS} SIGKILL restarts ({'spool' if spool else 'no spool'}): rows before "
          f"each kill {seen}; {n} sessions + {stats_count} sensor_stats rows stored once; "
          f"retried {c['clickhouse_batches_retried']}, deduplicated "
          f"{c['clickhouse_batches_deduplicated']}, spooled {c['clickhouse_rows_spooled']}, "
          f"replayed batches {c['clickhouse_batches_replayed']}; run {elapsed:.1f} s")


# ---------------------------------------------------------------------------- 2. throttled

class ThrottleProxy:
    """A TCP proxy on 127.0.0.1 in front of `upstream_port`, a slow link to a slow server:
    bytes towards the server pass at `rate` bytes/s (one token bucket for all connections),
    every request is held `latency` s before its first byte goes on, and the first
    `slow_inserts` batch INSERTs are held `slow_insert_s` s instead (an overloaded server).
    A request is what the client sends after the server's last answer on that connection.
    When either side closes, both are closed (a client that gives up aborts its request)."""

    def __init__(self, upstream_port, rate, latency, slow_inserts=0, slow_insert_s=0.0):
        self.upstream_port, self.rate, self.latency = upstream_port, rate, latency
        self.slow_inserts, self.slow_insert_s = slow_inserts, slow_insert_s
        self.bytes_up = 0
        self.requests = 0
        self.inserts = 0
        self.connections = 0
        self._next_free = 0.0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = None

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        async def shutdown():
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    async def _connect(self, conn, client_w):
        """(Re)opens the server side: the server closes a keep-alive connection idle for 3 s,
        which it may be while a request is held here."""
        if conn["up"] is not None:
            conn["up"].close()
            conn["down"].cancel()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        conn["up"] = writer
        conn["down"] = asyncio.ensure_future(self._down(reader, client_w, conn))

    @staticmethod
    async def _down(reader, client_w, conn):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            conn["answered"] = True
            client_w.write(data)
            await client_w.drain()
        if conn["answered"] or conn["sent"]:
            # Closed between requests (keep-alive timeout) or in the middle of one: the client
            # sees the close, as it would without the proxy. A request held here and not yet
            # forwarded gets a new server connection instead.
            client_w.close()

    async def _handle(self, client_r, client_w):
        self.connections += 1
        loop = asyncio.get_running_loop()
        conn = {"answered": True, "sent": 0, "up": None, "down": None}
        try:
            while True:
                data = await client_r.read(16384)
                if not data:
                    return
                if conn["answered"]:  # a new request on this connection
                    conn["answered"], conn["sent"] = False, 0
                    self.requests += 1
                    hold = self.latency
                    if b"RowBinary" in data[:4096]:  # a batch, not a schema statement
                        self.inserts += 1
                        if self.inserts <= self.slow_inserts:
                            hold = self.slow_insert_s
                    await asyncio.sleep(hold)
                if conn["up"] is None or conn["down"].done():
                    if conn["sent"]:
                        return  # the server went away mid-request
                    await self._connect(conn, client_w)
                now = loop.time()
                self._next_free = max(self._next_free, now) + len(data) / self.rate
                await asyncio.sleep(self._next_free - now)
                conn["up"].write(data)
                await conn["up"].drain()
                conn["sent"] += len(data)
                self.bytes_up += len(data)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if conn["down"] is not None:
                conn["down"].cancel()
            for w in (client_w, conn["up"]):
                if w is not None:
                    w.close()


def upstream_port(server):
    return int(server["MAILTLS_TEST_CLICKHOUSE_URL"].rsplit(":", 1)[1])


@pytest.mark.parametrize("spool", [True, False], ids=["spool", "no_spool"])
def test_throttled_server(mailtls, server, big_capture, tmp_path, spool):
    """ClickHouse behind a slow link: batches back up. With a spool, batches that waited
    5 s for the inserter go to the spool and are replayed; without one, they wait in the
    bounded queue. Every row arrives once, nothing is dropped, exit 0."""
    capture, n = big_capture
    db = fresh_db(server, "throttle")
    out = tmp_path / "out.jsonl"
    extra = ["--jsonl", "-", "--clickhouse-batch-rows", "1000", "--stats-interval", "1",
             "--sensor", "throttled"]
    spool_dir = tmp_path / "spool"
    if spool:
        extra += ["--clickhouse-spool", spool_dir]
    with ThrottleProxy(upstream_port(server), THROTTLE_BPS, THROTTLE_LATENCY, SLOW_INSERTS,
                       SLOW_INSERT_S) as proxy:
        started = time.time()
        with open(out, "w") as stdout:
            p = subprocess.run(read_cmd(mailtls, server, [capture], db, *extra, url=proxy.url),
                               env=cli_env(), stdout=stdout, stderr=subprocess.PIPE, text=True,
                               timeout=300)
        elapsed = time.time() - started
        sent, requests, inserts = proxy.bytes_up, proxy.requests, proxy.inserts
    assert_clean_exit(p, p.stderr)
    c = counters(p.stderr)
    records = jsonl_lines(out)
    assert c["records"] == len(records) == n
    assert c["clickhouse_rows_dropped"] == c["clickhouse_rows_rejected"] == 0
    # The link and the slow INSERTs set the pace.
    assert inserts >= SLOW_INSERTS
    assert elapsed >= sent / THROTTLE_BPS + SLOW_INSERTS * SLOW_INSERT_S, (elapsed, sent)
    rate = sent / elapsed
    pending = c["clickhouse_spool_rows_pending"]
    drained = False
    if spool:
        assert c["clickhouse_rows_spooled"] > 0, "slow inserts sent batches to the spool"
        if pending:
            # The close timeout (30 s) ran out on the slow link: the rest waits in the spool
            # for the next run, which replays it at full speed.
            d = subprocess.run(read_cmd(mailtls, server, [empty_pcap(tmp_path / "empty.pcap")],
                                        db, "--jsonl", "-", "--clickhouse-spool", spool_dir,
                                        "--sensor", "drain"),
                               env=cli_env(), capture_output=True, text=True, timeout=120)
            assert_clean_exit(d, d.stderr)
            dc = counters(d.stderr)
            assert dc["clickhouse_spool_rows_pending"] == dc["clickhouse_rows_dropped"] == 0
            drained = True
    else:
        assert c["clickhouse_rows_spooled"] == pending == 0
    count, distinct_ids, distinct_keys = session_count(server, db)
    assert count + c["clickhouse_rows_dropped"] == n
    assert count == distinct_ids == distinct_keys == n
    stats_count, stats_records, stats_distinct = stats_rows(server, db, "throttled")
    assert stats_records == n and stats_distinct == stats_count >= 1
    # The sink's queue filled up while ClickHouse was slow (a gauge in sensor_stats).
    max_queue = scalar(server, f"SELECT max(sink_queue_depth) FROM {db}.sensor_stats")
    print(f"\nthrottled ({'spool' if spool else 'no spool'}): {sent} bytes in {requests} "
          f"requests ({inserts} INSERTs) through the proxy in {elapsed:.1f} s = "
          f"{rate / 1000:.0f} kB/s on average (limit {THROTTLE_BPS / 1000:.0f} kB/s, "
          f"+{THROTTLE_LATENCY * 1000:.0f} ms per request, first {SLOW_INSERTS} INSERTs held "
          f"{SLOW_INSERT_S:.0f} s); spooled {c['clickhouse_rows_spooled']}, pending at exit {pending}"
          f"{' (drained by a second run)' if drained else ''}; max sink queue {max_queue}; "
          f"{n} sessions stored once")
    if not spool:
        # Taken when each stats row is queued: the final row, at the end of the reading,
        # finds the records the slow INSERTs held back still ahead of it.
        assert max_queue > 0, "records waited in the sink's queue while ClickHouse was slow"


# ---------------------------------------------------------------------------- 3. full disk

@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 2 MiB tmpfs, unmounted afterwards; skips when mounting is not permitted."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): "
                    f"{p.stderr.strip() or p.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_spool_with_server_down_then_replay(mailtls, server, big_capture, tmp_path,
                                                      tiny_tmpfs):
    capture, n = big_capture
    db = fresh_db(server, "fulldisk")
    spool = tiny_tmpfs / "spool"
    sensor = f"fulldisk{uuid.uuid4().hex[:6]}"
    server_ctl("stop")
    try:
        started = time.time()
        first = subprocess.run(
            read_cmd(mailtls, server, [capture], db, "--jsonl", "-", "--clickhouse-spool", spool,
                     "--clickhouse-batch-rows", "500", "--sensor", sensor),
            env=cli_env(), capture_output=True, text=True, timeout=300)
        elapsed = time.time() - started
        df = os.statvfs(tiny_tmpfs)
        free_at_end = df.f_bavail * df.f_frsize
        segments = sorted(spool.glob("*.seg"))
        spooled_bytes = sum(s.stat().st_size for s in segments)
    finally:
        server_ctl("start")
    assert_clean_exit(first, first.stderr)
    c1 = counters(first.stderr)
    assert c1["records"] == len(first.stdout.splitlines()) == n
    assert c1["clickhouse_rows_written"] == 0
    dropped = c1["clickhouse_rows_dropped"]
    assert dropped > 0, "the disk filled up"
    assert "No space left on device" in first.stderr, first.stderr[-3000:]
    assert dropped_in_log(first.stderr) == dropped, "every drop is logged with its row count"
    spooled = c1["clickhouse_rows_spooled"]
    assert spooled > 0 and c1["clickhouse_spool_rows_pending"] == spooled
    # Emitted = sessions + sensor_stats rows (one per 10 s and one at the end); all of them
    # were either spooled or dropped (written is 0).
    stats_emitted = spooled + dropped - n
    assert 1 <= stats_emitted <= elapsed / 10 + 2, (stats_emitted, elapsed)
    assert spooled_bytes <= 2 << 20

    # The server is back: a run with the same spool replays it.
    second = subprocess.run(
        read_cmd(mailtls, server, [empty_pcap(tmp_path / "empty.pcap")], db, "--jsonl", "-",
                 "--clickhouse-spool", spool, "--sensor", "replay"),
        env=cli_env(), capture_output=True, text=True, timeout=120)
    assert_clean_exit(second, second.stderr)
    c2 = counters(second.stderr)
    assert c2["clickhouse_batches_replayed"] > 0
    assert c2["clickhouse_spool_rows_pending"] == c2["clickhouse_rows_dropped"] == 0
    assert not list(spool.glob("*.seg")) or all(s.stat().st_size <= 8 for s in spool.glob("*.seg"))
    count, distinct_ids, distinct_keys = session_count(server, db)
    assert count == distinct_ids == distinct_keys
    stats_count, _, stats_distinct = stats_rows(server, db, sensor)
    assert stats_distinct == stats_count
    # Every spooled row arrived, once; the rest is what was reported dropped.
    assert count + stats_count == spooled
    assert count + stats_count + dropped == n + stats_emitted
    keys = {(us(r["ts_start"]), r["client_port"]) for r in map(
        json.loads, first.stdout.splitlines())}
    stored = {(int(t), int(p)) for t, p in (line.split("\t") for line in ch_query(
        server, f"SELECT ts_start, client_port FROM {db}.sessions").splitlines())}
    assert stored <= keys
    print(f"\nfull disk (2 MiB tmpfs, server down): {n} sessions + {stats_emitted} stats rows "
          f"emitted; {spooled} rows spooled ({spooled_bytes} bytes, {len(segments)} segments, "
          f"{free_at_end} bytes free at exit), {dropped} dropped and logged; replayed "
          f"{c2['clickhouse_batches_replayed']} batches: {count} sessions + {stats_count} stats "
          f"rows stored once; run {elapsed:.1f} s")


def test_jsonl_on_a_full_disk_fails_loudly(mailtls, big_capture, tiny_tmpfs):
    """JSONL on a full disk: every session is still processed and counted, the error is
    reported on stderr, the exit status is 1. The file holds the lines written before the
    disk filled; its last line may be cut (no counter tells how many records are missing:
    compare `records` with the lines)."""
    capture, n = big_capture
    out = tiny_tmpfs / "sessions.jsonl"
    p = subprocess.run([mailtls, "read", str(capture), "--no-progress", "--jsonl", str(out)],
                       env=cli_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert not any(m in p.stderr for m in PANIC_MARKERS), p.stderr
    assert "mailtls: error: JSONL" in p.stderr and "No space left on device" in p.stderr
    assert counters(p.stdout)["records"] == n
    lines = out.read_bytes().split(b"\n")
    complete = [json.loads(line) for line in lines[:-1]]
    assert 0 < len(complete) < n
    print(f"\nJSONL on a 2 MiB tmpfs: exit 1, {len(complete)} of {n} records written whole, "
          f"last line cut: {bool(lines[-1])}")
