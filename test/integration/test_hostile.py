"""Hostile clients against build/lookout, while well-behaved clients go on.

Every test starts an in-process OTLP/gRPC sink (otlp_sink.py) and an agent with an
OTLP receiver (gRPC and HTTP), a lines socket and the admin listener, then runs
helpers.WellBehaved (one client per listener, every call timed in a thread of its
own) for a normal phase and a hostile phase in which the test attacks every
listener. Each test asserts:

- every well-behaved call succeeded, and the worst latency of each kind in the
  hostile phase is less than helpers.LATENCY_SLACK (1 s) over its normal latency;
- every span the well-behaved clients had acknowledged, and every line they wrote,
  arrived at the sink;
- the agent's peak RSS (sampled VmRSS and VmHWM) stayed within memory_limit
  (default 256 MiB) plus helpers.MEMORY_OVERHEAD_MIB;
- the attack itself got the answers the docs promise (413, RESOURCE_EXHAUSTED ...);
- the agent exits 0 on SIGTERM afterwards.

Each prints one line "RESULT test_... sent=... acked=... delivered=... dropped=...
peak_rss_mib=... worst_latency_ms=...".

test_idle_connections_2000 needs the connection work of the same issue (evicting
the longest-idle connection at max_connections, handshake_timeout); it is skipped
while `lookout --check-config` rejects `handshake_timeout`.

Run all: sh test/integration/run.sh test_hostile (from the repo root, after `make`).
"""

import http.client
import os
import shutil
import signal
import socket
import sys
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import (DEFAULT_MEMORY_LIMIT_MIB, DELIVERY_TIMEOUT, LATENCY_SLACK,  # noqa: E402
                     MEMORY_OVERHEAD_MIB, H2Client, RssSampler, WellBehaved, YamlAgent,
                     grpc_frame, make_request, result_line, wait_until)

import otlp_sink  # noqa: E402

# Where the connections feature puts its key (docs/configuration.md, receivers).
HANDSHAKE_TIMEOUT_KEY = "handshake_timeout"


def agent_config(sink_port, top="", grpc_extra="", http_extra=""):
    """The YamlAgent body: otlp receiver (gRPC, HTTP), a lines socket, one OTLP
    exporter to the sink for traces and logs. |top|: top-level lines before
    receivers (e.g. memory_limit)."""
    return (top + "receivers:\n  otlp:\n    protocols:\n"
            "      grpc:\n        endpoint: 127.0.0.1:@GRPC_PORT@\n" + grpc_extra +
            "      http:\n        endpoint: 127.0.0.1:@HTTP_PORT@\n" + http_extra +
            "  lines:\n    path: @DIR@/lines.sock\n"
            "exporters:\n  otlp/sink:\n    endpoint: 127.0.0.1:%d\n"
            "    retry: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}\n"
            "    batch: {timeout: 50ms}\n"
            "pipelines:\n"
            "  traces:\n    receivers: [otlp]\n    exporters: [otlp/sink]\n"
            "  logs:\n    receivers: [lines]\n    exporters: [otlp/sink]\n" % sink_port)


def full_config(agent_body):
    """What YamlAgent writes, for lookout --check-config before starting."""
    return ("log_level: info\nshutdown_timeout: 5s\nadmin:\n  endpoint: 127.0.0.1:1\n"
            + agent_body.replace("@GRPC_PORT@", "2").replace("@HTTP_PORT@", "3")
            .replace("@DIR@", "/tmp"))


_BOMB = []


def gzip_bomb():
    """1 GiB of zeros, gzip-compressed (about 1 MiB); made once per process."""
    if not _BOMB:
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        zeros = bytes(1 << 20)
        parts = [c.compress(zeros) for _ in range(1024)]
        parts.append(c.flush())
        _BOMB.append(b"".join(parts))
    return _BOMB[0]


def tcp(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


def unix(path, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def read_http_status(sock, timeout=10.0):
    """The status code of the first HTTP response on |sock|, or None if the
    connection closed without one."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    parts = data.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/1."):
        return int(parts[1])
    return None


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


class ReliabilityCase(unittest.TestCase):
    """Sink, agent, RSS sampler and well-behaved clients per test."""

    maxDiff = 4000
    memory_limit_mib = DEFAULT_MEMORY_LIMIT_MIB

    def start(self, top="", grpc_extra="", http_extra="", sink=None, log_level="info",
              memory_limit_mib=None):
        helpers.raise_fd_limit()
        if sink is None:
            sink = otlp_sink.OtlpSink(workers=16)
            sink.start()
            self.addCleanup(sink.stop)
        self.sink = sink
        if memory_limit_mib is not None:
            self.memory_limit_mib = memory_limit_mib
        self.agent = YamlAgent(agent_config(sink.port, top, grpc_extra, http_extra),
                               log_level=log_level)
        self.addCleanup(shutil.rmtree, self.agent.dir, True)
        self.agent.start()
        self.addCleanup(self.agent.kill)
        self.agent.wait_ready()
        self.rss = RssSampler(self.agent.proc.pid).start()
        self.addCleanup(self.rss.stop)
        self.lines_path = os.path.join(self.agent.dir, "lines.sock")
        wait_until(lambda: os.path.exists(self.lines_path), 5)
        self.wb = WellBehaved(self.agent, lines_path=self.lines_path, tag=self.id().split(".")[-1])
        self.wb.start()
        self.addCleanup(self.wb.stop)
        self.wb.begin_hostile()

    @property
    def budget_mib(self):
        return self.memory_limit_mib + MEMORY_OVERHEAD_MIB

    def finish(self, sent_extra=0, acked_extra=0, delivered_extra=0, extra=None):
        """Stops the well-behaved clients, checks their latency, delivery and the
        RSS budget, prints the RESULT line, stops the agent (exit 0)."""
        time.sleep(0.5)   # a few calls after the attack
        self.wb.stop()
        self.assertTrue(self.agent.alive, "agent died\n" + self.agent.log_tail())
        self.rss.stop()
        wb = self.wb
        errors = {k: v[:3] for k, v in wb.errors.items() if v}
        # What was acknowledged (spans) or written (lines) must arrive.
        acked = set(wb.acked_spans)
        lines = set(wb.lines_written)

        def arrived():
            spans = {sp.span_id for _, _, sp in self.sink.spans()}
            bodies = {item.body.string_value for _, _, item in self.sink.items(otlp_sink.LOGS)}
            return acked <= spans and lines <= bodies, spans, bodies
        ok = wait_until(lambda: arrived()[0], DELIVERY_TIMEOUT)
        _, spans, bodies = arrived()
        delivered = len(acked & spans) + len(lines & bodies)
        dropped = int(self.agent.metric("lookout_dropped_items_total") or 0)
        kind, over = wb.worst_over_normal()
        peak = self.rss.peak_mib()
        fields = dict(sent=wb.sent + sent_extra, acked=len(acked) + len(lines) + acked_extra,
                      delivered=delivered + delivered_extra, dropped=dropped,
                      peak_rss_mib=peak, worst_latency_ms=wb.worst_ms())
        fields.update(extra or {})
        result_line(self.id().split(".")[-1], **fields)
        self.assertEqual(errors, {}, "well-behaved calls that failed (%s)\n%s"
                         % (wb.report(), self.agent.log_tail()))
        for k in wb.KINDS:
            if wb.lat[k]:
                self.assertGreater(wb.calls_during(k), 0, "no %s call in the hostile phase" % k)
        self.assertLess(over, LATENCY_SLACK, "%s served %.0f ms over its normal latency (%s)"
                        % (kind, over * 1000, wb.report()))
        self.assertTrue(ok, "acknowledged items missing at the sink: %d of %d spans, %d of %d "
                        "lines\n%s" % (len(acked - spans), len(acked), len(lines - bodies),
                                       len(lines), self.agent.log_tail()))
        self.assertLess(peak, self.budget_mib, "peak RSS %.1f MiB over memory_limit %d MiB + "
                        "%d MiB" % (peak, self.memory_limit_mib, MEMORY_OVERHEAD_MIB))
        rc = self.agent.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, "exit status after SIGTERM\n" + self.agent.log_tail())


class HostileTest(ReliabilityCase):

    def test_idle_connections_2000(self):
        """2,000 connections that never send anything, spread over the gRPC,
        HTTP, admin ports and the lines socket (more than max_connections, 256,
        on each): the longest-idle are evicted for newcomers."""
        body = agent_config(1, grpc_extra="        %s: 10s\n" % HANDSHAKE_TIMEOUT_KEY,
                            http_extra="        %s: 10s\n" % HANDSHAKE_TIMEOUT_KEY)
        helpers.skip_unless_accepted(self, full_config(body),
                                     "the connections work (handshake_timeout, eviction)")
        self.start(grpc_extra="        %s: 10s\n" % HANDSHAKE_TIMEOUT_KEY,
                   http_extra="        %s: 10s\n" % HANDSHAKE_TIMEOUT_KEY)
        socks = []
        self.addCleanup(close_all, socks)
        targets = [lambda: tcp(self.agent.grpc_port), lambda: tcp(self.agent.http_port),
                   lambda: tcp(self.agent.admin_port), lambda: unix(self.lines_path)]
        opened = 0
        transient = {}
        for i in range(2000):
            # A listener whose backlog is momentarily full answers a Unix
            # connect with EAGAIN at once (Python's timeout makes the socket
            # non-blocking): the kernel's backpressure, which a client meets
            # by trying again. Errors that persist fail the test below.
            for attempt in range(20):
                try:
                    socks.append(targets[i % 4]())
                    opened += 1
                    break
                except OSError as e:
                    key = "%s/%s" % (("grpc", "http", "admin", "lines")[i % 4], e.errno)
                    transient[key] = transient.get(key, 0) + 1
                    time.sleep(0.05)
        self.assertEqual(opened, 2000, "connections opened (failed attempts: %r)" % transient)
        time.sleep(5.0)   # the well-behaved clients go on meanwhile
        # New connections (not only the ones opened before) are served too.
        st, _ = self.agent.http_get("/healthz")
        self.assertEqual(st, 200)
        client = helpers.Client(self.agent.grpc_endpoint, own_connection=True)
        self.addCleanup(client.close)
        req = make_request("idle-new", resources=1, scopes=1, spans=2)
        client.export(req, timeout=5)
        self.wb.acked_spans.update(sp.span_id for rs in req.resource_spans
                                   for ss in rs.scope_spans for sp in ss.spans)
        conns = self.agent.metrics().value("lookout_receiver_connections") or 0
        close_all(socks)
        self.finish(sent_extra=2, acked_extra=0, extra=dict(idle_conns=opened,
                                                            agent_conns=int(conns)))

    def test_slowloris(self):
        """Headers and bodies dribbled a byte at a time on every listener (HTTP,
        admin, gRPC preface and frames, a partial line on the lines socket)."""
        self.start(http_extra="        read_timeout: 5s\n")
        per_port = 60
        socks, stop = [], threading.Event()
        self.addCleanup(close_all, socks)
        head = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                b"X-Slow: " + b"a" * 200)
        body_head = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf"
                     b"\r\nContent-Length: 100000\r\n\r\n")
        admin_head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        grpc_conn = helpers.H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + b"\x00" * 100
        plan = []   # (socket, bytes to dribble)
        for i in range(per_port):
            plan.append((tcp(self.agent.http_port), head if i % 2 else body_head + b"\x0a" * 1000))
            plan.append((tcp(self.agent.admin_port), admin_head))
            plan.append((tcp(self.agent.grpc_port), grpc_conn))
            plan.append((unix(self.lines_path), b"partial line never ended " * 20))
        socks += [s for s, _ in plan]
        written = [0]

        def dribble():
            pos = [0] * len(plan)
            while not stop.is_set():
                for i, (s, data) in enumerate(plan):
                    if pos[i] < len(data):
                        try:
                            s.send(data[pos[i]:pos[i] + 1])
                            pos[i] += 1
                            written[0] += 1
                        except OSError:
                            pos[i] = len(data)   # closed by the agent: its right
                stop.wait(0.25)
        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        time.sleep(8.0)
        stop.set()
        t.join(5)
        close_all(socks)
        self.finish(extra=dict(slow_conns=len(plan), dribbled_bytes=written[0]))

    def test_declared_1gib(self):
        """Requests declaring 1 GiB: HTTP Content-Length, and a gRPC message whose
        prefix says 1 GiB: refused at once (413, RESOURCE_EXHAUSTED), nothing
        of that size is ever held."""
        self.start()
        n = 16
        statuses, grpc_statuses = [], []
        socks = []
        self.addCleanup(close_all, socks)
        for _ in range(n):
            s = tcp(self.agent.http_port)
            socks.append(s)
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf"
                      b"\r\nContent-Length: 1073741824\r\n\r\n")
            try:
                s.sendall(os.urandom(64 << 10))
            except OSError:
                pass   # closed after the 413: fine
        for s in socks:
            statuses.append(read_http_status(s))
        conns = []
        self.addCleanup(lambda: [c.close() for c in conns])
        streams = []
        for _ in range(n):
            c = H2Client("127.0.0.1", self.agent.grpc_port)
            conns.append(c)
            st = c.open(otlp_sink.TRACE_METHOD, grpc_frame(os.urandom(64 << 10), declared=1 << 30))
            streams.append((c, st))
            c.send_bodies([st], time.monotonic() + 10, stall=2)
            # END_STREAM came with the last DATA frame: a message cut short too.
        for c, st in streams:
            c.wait_closed([st], 10)
            grpc_statuses.append(st.grpc_status if st.grpc_status is not None
                                 else ("rst", st.rst) if st.rst is not None else None)
        self.assertEqual(statuses, [413] * n, "HTTP answers to Content-Length: 1 GiB")
        self.assertEqual(grpc_statuses, [8] * n, "gRPC answers to a 1 GiB message prefix "
                         "(8: RESOURCE_EXHAUSTED)")
        self.finish(extra=dict(hostile_requests=2 * n))

    def test_gzip_bomb(self):
        """1 GiB of zeros in 1 MiB of gzip, over HTTP (Content-Encoding: gzip) and
        gRPC (grpc-encoding: gzip): inflating stops at the limit, 413 and
        RESOURCE_EXHAUSTED (or, past the memory budget, a retryable refusal),
        memory stays bounded."""
        bomb = gzip_bomb()
        self.start()
        n = 8
        results = {"http": [], "grpc": []}

        def http_bomb():
            c = http.client.HTTPConnection("127.0.0.1", self.agent.http_port, timeout=30)
            try:
                c.request("POST", "/v1/traces", bomb, {"Content-Type": "application/x-protobuf",
                                                       "Content-Encoding": "gzip"})
                r = c.getresponse()
                r.read()
                # 503 only as the memory budget's retryable refusal.
                retry = r.status == 503 and (r.getheader("Retry-After") or "").isdigit()
                results["http"].append("retry" if retry else r.status)
            except (OSError, http.client.HTTPException) as e:
                results["http"].append(repr(e))
            finally:
                c.close()

        def grpc_bomb():
            c = H2Client("127.0.0.1", self.agent.grpc_port)
            try:
                st = c.open(otlp_sink.TRACE_METHOD, grpc_frame(bomb, compressed=True),
                            extra=[("grpc-encoding", "gzip")])
                c.send_bodies([st], time.monotonic() + 20, stall=5)
                c.wait_closed([st], 20)
                retry = st.grpc_status == 14 and st.retry_delay() is not None
                results["grpc"].append("retry" if retry else st.grpc_status)
            finally:
                c.close()
        threads = [threading.Thread(target=f, daemon=True)
                   for f in [http_bomb] * n + [grpc_bomb] * n]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # Each bomb inflates up to the 64 MiB limit and is refused as too
        # large (413, RESOURCE_EXHAUSTED); 16 of them at once can hold more
        # than memory_limit, and those the budget stops first are refused
        # retryably instead (503 with Retry-After, UNAVAILABLE with RetryInfo:
        # "retry"). Nothing else is a right answer.
        for proto, too_large in (("http", 413), ("grpc", 8)):
            got = results[proto]
            self.assertEqual(len(got), n, "%s answers: %r" % (proto, got))
            self.assertEqual([a for a in got if a not in (too_large, "retry")], [],
                             "%s answers to the gzip bomb: %r" % (proto, got))
            self.assertIn(too_large, got, "%s: no bomb refused as too large: %r" % (proto, got))
        self.finish(extra=dict(hostile_requests=2 * n, bomb_bytes=len(bomb)))

    def test_random_bytes(self):
        """Random bytes on every port and on the lines socket, from connections
        that then close or stay."""
        self.start()
        socks = []
        self.addCleanup(close_all, socks)
        sent = 0
        for round_ in range(5):
            for make in (lambda: tcp(self.agent.grpc_port), lambda: tcp(self.agent.http_port),
                         lambda: tcp(self.agent.admin_port), lambda: unix(self.lines_path)):
                for i in range(10):
                    try:
                        s = make()
                    except OSError:
                        continue
                    data = os.urandom(64 << 10)
                    if i % 3 == 0:   # some start like the real protocol, then go wrong
                        data = helpers.H2_PREFACE + data
                    try:
                        s.sendall(data)
                        sent += len(data)
                    except OSError:
                        pass   # closed on the first bad bytes: fine
                    if i % 2:
                        s.close()
                    else:
                        socks.append(s)
            time.sleep(0.5)
        time.sleep(2.0)
        close_all(socks)
        self.finish(extra=dict(random_bytes=sent))

    def test_never_reading(self):
        """Clients that send and never read: pipelined HTTP POSTs and /metrics
        GETs, and a gRPC connection with a thousand requests whose answers
        (and SETTINGS, PINGs) it never reads."""
        self.start()
        socks, clients = [], []
        self.addCleanup(close_all, socks)
        self.addCleanup(lambda: [c.close() for c in clients])
        body = make_request("never-read", resources=1, scopes=1, spans=2).SerializeToString()
        post = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)) + body
        get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        stop = threading.Event()
        pushed = {"http": 0, "admin": 0, "grpc": 0}

        def pusher(sock, data, key):
            sock.setblocking(False)
            while not stop.is_set():
                try:
                    sock.send(data * 50)
                    pushed[key] += 50
                except BlockingIOError:
                    stop.wait(0.05)   # the agent stopped reading: as it should
                except OSError:
                    return
        threads = []
        for _ in range(10):
            s = tcp(self.agent.http_port)
            socks.append(s)
            threads.append(threading.Thread(target=pusher, args=(s, post, "http"), daemon=True))
            s = tcp(self.agent.admin_port)
            socks.append(s)
            threads.append(threading.Thread(target=pusher, args=(s, get, "admin"), daemon=True))
        for t in threads:
            t.start()
        small = grpc_frame(helpers.single_span_request("never-read-grpc").SerializeToString())
        # Within the 64 KiB the connection may send before any WINDOW_UPDATE
        # (which this client never reads): a client slow, not broken.
        per_conn = min(500, 60000 // len(small))
        for _ in range(4):
            c = H2Client("127.0.0.1", self.agent.grpc_port, read=False)
            clients.append(c)
            try:
                for _ in range(per_conn):
                    st = c.open(otlp_sink.TRACE_METHOD, None)
                    c.send_data(st, small, end=True)
                    pushed["grpc"] += 1
            except OSError:
                pass
        time.sleep(8.0)
        stop.set()
        for t in threads:
            t.join(5)
        close_all(socks)
        self.finish(extra=dict(pipelined_http=pushed["http"], pipelined_admin=pushed["admin"],
                               unread_grpc=pushed["grpc"]))


if __name__ == "__main__":
    unittest.main()
