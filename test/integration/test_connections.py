"""Connection limits end to end: idle and half-open connections against
build/lookout's gRPC, OTLP/HTTP and admin ports, and line writers that stop in
the middle of a line.

What is shown (docs/configuration.md, "Connections at the limit"):
- more idle TCP connections than max_connections, and half-open handshakes (part
  of the HTTP/2 preface; the preface and SETTINGS without a request; part of an
  HTTP header section), do not lock anyone out: a grpcio client, an OTLP/HTTP
  protobuf POST, GET /healthz and GET /metrics are all served while they are
  still open, because a new connection evicts the one idle longest;
- every such connection is closed by the agent, within handshake_timeout when
  not evicted before, and lookout_receiver_connections_closed_total /
  lookout_admin_connections_closed_total count exactly those;
- the same at the default limits with 300 idle connections per port;
- a lines writer holding a partial line is closed after idle_timeout and its
  line reaches Loki; a writer silent between lines stays connected.

Run: sh test/integration/run.sh test_connections (from the repo root, after make).
"""

import http.client
import os
import selectors
import shutil
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import Client, YamlAgent, single_span_request, wait_until  # noqa: E402
from loki_sink import LokiSink  # noqa: E402
from otlp_sink import OtlpSink  # noqa: E402

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type 4, stream 0
ADMIN_MAX = 32          # agent/admin/admin.c
ADMIN_HANDSHAKE = 10.0  # seconds, agent/admin/admin.c
SERVE_TIMEOUT = 5.0     # any one request of a well-behaved client
CLOSE_SLACK = 4.0       # beyond handshake_timeout, for a 2-core machine


def open_conns(port, n, first=b""):
    """|n| TCP connections to |port|, each having sent |first| (maybe nothing)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if first:
            s.sendall(first)
        socks.append(s)
    return socks


def wait_closed(socks, timeout):
    """Reads (and drops) what the agent sends until each socket is at EOF or reset.
    Returns the sockets still open after |timeout|."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    pending = set(socks)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                pending.discard(s)
    sel.close()
    return pending


def post_traces(port, request):
    """POSTs |request| as OTLP/HTTP protobuf on a new connection; the status."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=SERVE_TIMEOUT)
    try:
        c.request("POST", "/v1/traces", body=request.SerializeToString(),
                  headers={"Content-Type": "application/x-protobuf"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


class ConnectionsTest(unittest.TestCase):

    def start_agent(self, grpc_http_extra, lines_extra=""):
        sink = OtlpSink()
        sink_port = sink.start()
        self.addCleanup(sink.stop)
        self.loki = LokiSink()
        self.loki.start()
        self.addCleanup(self.loki.stop)
        body = (
            "receivers:\n"
            "  otlp:\n"
            "    protocols:\n"
            "      grpc: {endpoint: \"127.0.0.1:@GRPC_PORT@\"%s}\n"
            "      http: {endpoint: \"127.0.0.1:@HTTP_PORT@\"%s}\n"
            "  lines:\n"
            "    path: @DIR@/lines.sock\n"
            "%s"
            "exporters:\n"
            "  otlp/sink:\n"
            "    endpoint: 127.0.0.1:%d\n"
            "    retry: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}\n"
            "    batch: {send_batch_size: 1000, timeout: 100ms}\n"
            "  loki:\n"
            "    endpoint: %s\n"
            "    retry: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}\n"
            "    batch: {send_batch_size: 1000, timeout: 100ms}\n"
            "pipelines:\n"
            "  traces: {receivers: [otlp], exporters: [otlp/sink]}\n"
            "  logs: {receivers: [lines], exporters: [loki]}\n"
            % (grpc_http_extra, grpc_http_extra, lines_extra, sink_port, self.loki.url))
        agent = YamlAgent(body, log_level="info")
        self.addCleanup(shutil.rmtree, agent.dir, True)
        agent.start()
        self.addCleanup(agent.kill)
        agent.wait_ready()
        self.agent = agent
        self.sink = sink
        return agent

    def keep(self, socks):
        for s in socks:
            self.addCleanup(s.close)
        return socks

    def assert_served(self, tag):
        """A grpcio export, an OTLP/HTTP POST, /healthz and /metrics, each within
        SERVE_TIMEOUT; the spans reach the sink."""
        a = self.agent
        client = Client(a.grpc_endpoint, own_connection=True)
        self.addCleanup(client.close)
        client.export(single_span_request("grpc-" + tag), timeout=SERVE_TIMEOUT)
        self.assertEqual(post_traces(a.http_port, single_span_request("http-" + tag)), 200)
        self.assertEqual(a.http_get("/healthz", timeout=SERVE_TIMEOUT)[0], 200)
        status, text = a.http_get("/metrics", timeout=SERVE_TIMEOUT)
        self.assertEqual(status, 200)
        self.assertIn(b"lookout_receiver_connections_closed_total", text)
        names = {"grpc-" + tag, "http-" + tag}
        self.assertTrue(self.sink.wait_for(
            lambda sk: names <= {sp.name for _, _, sp in sk.spans()}, 10.0),
            "spans did not reach the sink")
        return client

    def closed(self, m, transport, reason):
        v = m.value("lookout_receiver_connections_closed_total", receiver="otlp",
                    transport=transport, reason=reason)
        return int(v or 0)

    def test_idle_and_half_open_connections_are_evicted_then_timed_out(self):
        a = self.start_agent(", max_connections: 50, handshake_timeout: 1s")
        flood = {}
        flood["grpc"] = self.keep(
            open_conns(a.grpc_port, 60) + open_conns(a.grpc_port, 10, H2_PREFACE[:10]) +
            open_conns(a.grpc_port, 5, H2_PREFACE + EMPTY_SETTINGS))
        flood["http"] = self.keep(
            open_conns(a.http_port, 60) +
            open_conns(a.http_port, 10, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-"))
        flood["admin"] = self.keep(
            open_conns(a.admin_port, 40) + open_conns(a.admin_port, 5, b"GET /metrics HTT"))
        started = time.monotonic()
        client = self.assert_served("small")
        # Every flood connection is closed by the agent: evicted, or at the
        # handshake deadline.
        for port, socks in flood.items():
            limit = ADMIN_HANDSHAKE if port == "admin" else 1.0
            left = wait_closed(socks, limit + CLOSE_SLACK - (time.monotonic() - started))
            self.assertEqual(len(left), 0, "%d %s connections still open" % (len(left), port))
        m = a.metrics()
        for transport in ("grpc", "http"):
            hs = self.closed(m, transport, "handshake_timeout")
            ev = self.closed(m, transport, "evicted")
            self.assertEqual(hs + ev, len(flood[transport]), (transport, hs, ev))
            self.assertGreater(ev, 0, transport)
            self.assertGreater(hs, 0, transport)
            self.assertEqual(self.closed(m, transport, "idle_timeout"), 0)
            self.assertEqual(m.value("lookout_receiver_connections_refused_total",
                                     receiver="otlp", transport=transport), 0)
        # Admin: our own requests' connections (closed after one response)
        # may have been evicted too while they drained.
        adm = sum(m.value("lookout_admin_connections_closed_total", reason=r) or 0
                  for r in ("handshake_timeout", "evicted"))
        self.assertGreaterEqual(adm, len(flood["admin"]))
        self.assertLessEqual(adm, len(flood["admin"]) + 3)
        self.assertGreater(m.value("lookout_admin_connections_closed_total",
                                   reason="evicted"), len(flood["admin"]) - ADMIN_MAX - 1)
        # The well-behaved gRPC connection outlived the handshake deadline.
        client.export(single_span_request("after"), timeout=SERVE_TIMEOUT)
        m = a.metrics()
        self.assertEqual(m.value("lookout_receiver_connections", receiver="otlp",
                                 transport="grpc"), 1)

    def test_default_limits_with_300_idle_connections_per_port(self):
        a = self.start_agent("")
        n = 300
        for port in (a.grpc_port, a.http_port, a.admin_port):
            self.keep(open_conns(port, n))
        # handshake_timeout is 10 s by default: served within SERVE_TIMEOUT,
        # these requests found room by eviction.
        self.assert_served("default")
        m = a.metrics()
        for transport in ("grpc", "http"):
            self.assertGreaterEqual(self.closed(m, transport, "evicted"), n - 256, transport)
            self.assertEqual(self.closed(m, transport, "handshake_timeout"), 0, transport)
        self.assertGreaterEqual(m.value("lookout_admin_connections_closed_total",
                                        reason="evicted"), n - ADMIN_MAX)
        self.assertEqual(m.value("lookout_admin_connections_refused_total"), 0)

    def test_lines_writer_silent_inside_a_line_is_closed(self):
        a = self.start_agent("", "    idle_timeout: 1s\n")
        path = os.path.join(a.dir, "lines.sock")
        quiet = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        quiet.connect(path)
        self.addCleanup(quiet.close)
        quiet.sendall(b"between lines\n")
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.connect(path)
        self.addCleanup(stuck.close)
        stuck.sendall(b"first line\nlast words without a newline")
        stuck.settimeout(1.0 + CLOSE_SLACK)
        self.assertEqual(stuck.recv(1), b"", "the stuck writer was not closed")
        lines = {"between lines", "first line", "last words without a newline"}
        self.assertTrue(self.loki.wait_for(
            lambda sk: lines <= {e.line for _, e in sk.entries()}, 10.0),
            [e.line for _, e in self.loki.entries()])
        # The quiet writer (armed earlier, had it been armed) is still there.
        quiet.setblocking(False)
        with self.assertRaises(BlockingIOError):
            quiet.recv(1)
        quiet.sendall(b"still here\n")
        self.assertTrue(self.loki.wait_for(
            lambda sk: "still here" in {e.line for _, e in sk.entries()}, 10.0))
        self.assertEqual(a.metric("lookout_receiver_connections_closed_total", receiver="lines",
                                  transport="unix", reason="idle_timeout"), 1)


if __name__ == "__main__":
    unittest.main()
