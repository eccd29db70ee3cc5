"""Backends that fail: build/lookout's otlp (gRPC), otlphttp and loki exporters
against sinks scripted to answer errors, ask for a later retry, or hang past the
exporter's timeout.

What already existed elsewhere and is not repeated here: UNAVAILABLE retried and a
sink down then up (test_traces), Loki 429 then 500 retried without loss and Loki
400 refusals by reason (test_loki). Added here, for each exporter:

| backend answer | otlp (gRPC) | otlphttp | loki |
|---|---|---|---|
| permanent error ("500") | INTERNAL: dropped, reason `internal` | 500: dropped, `http_500` | (5xx is retried: see test_loki) |
| "429" with a retry time | RESOURCE_EXHAUSTED + RetryInfo 1.5 s | 429 + Retry-After: 2 | 429 + Retry-After: 2 |
| "429" without one | RESOURCE_EXHAUSTED: dropped, `resource_exhausted` | 503: retried on backoff | |
| hangs past `timeout` | retried, delivered once | retried, delivered once | retried, delivered once |
| fails until `max_elapsed_time` | dropped, `retries_exhausted` | dropped, `retries_exhausted` | dropped, `retries_exhausted` |

Each case asserts the attempts the sink saw (how many, and the wait before a retry
when the backend named one), what was delivered (every item exactly once, or none),
and the counters exactly: lookout_dropped_items_total{exporter,reason},
lookout_exporter_send_failed_*_total, lookout_exporter_retries_total,
lookout_exporter_sent_*_total. Each prints a RESULT line.

Run all: sh test/integration/run.sh test_backends (from the repo root, after `make`).
"""

import os
import shutil
import signal
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import (YamlAgent, make_request, result_line, rpc_status_message,  # noqa: E402
                     start_agent_for, wait_until)

import grpc  # noqa: E402

import otlp_http_sink  # noqa: E402
import otlp_sink  # noqa: E402
from loki_sink import LokiSink  # noqa: E402
from test_lines import write_stream  # noqa: E402

TIMEOUT = "1s"          # the exporter's timeout in every case
HANG = 3.0              # how long a hanging backend holds a request
QUIET = 1.0             # no new attempt for this long: the exporter is done


class Script:
    """Actions for the next calls, then the default: ("ok",), ("fail", status,
    extra) or ("hang", seconds). Thread-safe; records every attempt as
    (monotonic time, what was done)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.actions = []
        self.default = ("ok",)
        self.attempts = []

    def take(self):
        with self.lock:
            action = self.actions.pop(0) if self.actions else self.default
            self.attempts.append((time.monotonic(), action[0] if action[0] != "fail"
                                  else "fail %s" % (action[1],)))
            return action


# --- the gRPC sink, scripted

class ScriptedGrpcSink(otlp_sink.OtlpSink):
    """OtlpSink whose answers follow a Script; ("fail", grpc.StatusCode,
    retry_delay or None) answers that status, with a RetryInfo in
    grpc-status-details-bin when retry_delay is given."""

    def __init__(self):
        super().__init__(workers=8)
        self.script = Script()

    def _make_handler(self, signal_):
        req_cls, resp_cls = self._messages[signal_]

        def handle(raw, context):
            action = self.script.take()
            request = req_cls.FromString(raw)
            code = grpc.StatusCode.OK
            if action[0] == "fail":
                code = action[1]
            elif action[0] == "hang":
                code = grpc.StatusCode.DEADLINE_EXCEEDED   # recorded as not accepted
            with self._cond:
                self._calls.append(otlp_sink.Call(signal_, raw, request, {}, code, action[0]))
                self._cond.notify_all()
            if action[0] == "hang":
                time.sleep(action[1])
                return resp_cls().SerializeToString()
            if action[0] == "fail":
                if action[2] is not None:
                    context.set_trailing_metadata((("grpc-status-details-bin", rpc_status_message(
                        action[1].value[0], "scripted", action[2])),))
                context.abort(action[1], "scripted")
            return resp_cls().SerializeToString()
        return handle


# --- the OTLP/HTTP sink, scripted

class ScriptedHttpSink(otlp_http_sink.OtlpHttpSink):
    """OtlpHttpSink whose answers follow a Script; ("fail", status, {headers})."""

    def __init__(self):
        self.script = Script()
        super().__init__()

    def _handler(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                post = otlp_http_sink.Post(self.path, {k.lower(): v for k, v in
                                                       self.headers.items()}, raw)
                status = sink._decode(post)
                action = sink.script.take()
                headers = {}
                if action[0] == "fail":
                    status, headers = action[1], action[2]
                    post.error = "scripted %d" % status
                elif action[0] == "hang":
                    post.error = "scripted hang"
                post.status = status if action[0] != "hang" else None
                with sink._cond:
                    sink._posts.append(post)
                    sink._cond.notify_all()
                if action[0] == "hang":
                    time.sleep(action[1])
                    self.close_connection = True
                    return
                reply = b"" if status == 200 else b"scripted"
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/x-protobuf" if status == 200
                                 else "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                try:
                    self.wfile.write(reply)
                except OSError:
                    pass

        return Handler


# --- the Loki sink, scripted

class ScriptedLokiSink(LokiSink):
    """LokiSink whose answers also follow a Script (after decoding): ("fail",
    status, {headers}) or ("hang", seconds); a hung push is recorded with
    status 0 (not delivered)."""

    def __init__(self):
        super().__init__()
        self.script = Script()

    def _handle(self, push):
        action = self.script.take()
        if action[0] == "fail":
            self.fail_next(1, action[1], "scripted\n", action[2])
        status, body, headers = super()._handle(push)
        if action[0] == "hang":
            with self._cond:
                push.status = 0
            time.sleep(action[1])
        return status, body, headers


# --- one adapter per exporter type

class OtlpGrpcBackend:
    name = "otlp/be"
    items = "spans"
    signal = "traces"

    def start(self, case):
        self.sink = ScriptedGrpcSink()
        self.sink.start()
        case.addCleanup(self.sink.stop)
        return "  %s:\n    endpoint: 127.0.0.1:%d\n" % (self.name, self.sink.port)

    def send(self, case, tag, n):
        req = make_request(tag, resources=1, scopes=1, spans=n)
        case.client.export(req, timeout=5)
        return [sp.name for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]

    def delivered(self):
        return [sp.name for _, _, sp in self.sink.spans()]

    def fail(self, kind):
        """The action for a permanent failure, a retry-later with / without a time."""
        return {"permanent": ("fail", grpc.StatusCode.INTERNAL, None),
                "later": ("fail", grpc.StatusCode.RESOURCE_EXHAUSTED, 1.5),
                "later_no_time": ("fail", grpc.StatusCode.RESOURCE_EXHAUSTED, None),
                "unavailable": ("fail", grpc.StatusCode.UNAVAILABLE, None)}[kind]


class OtlpHttpBackend(OtlpGrpcBackend):
    name = "otlphttp/be"

    def start(self, case):
        self.sink = ScriptedHttpSink().start()
        case.addCleanup(self.sink.stop)
        return "  %s:\n    endpoint: %s\n" % (self.name, self.sink.endpoint)

    def delivered(self):
        return [sp.name for p in self.sink.posts() if p.status == 200 and p.request is not None
                for rs in p.request.resource_spans for ss in rs.scope_spans for sp in ss.spans]

    def fail(self, kind):
        return {"permanent": ("fail", 500, {}),
                "later": ("fail", 429, {"Retry-After": "2"}),
                "later_no_time": ("fail", 503, {}),
                "unavailable": ("fail", 503, {})}[kind]


class LokiBackend:
    name = "loki/be"
    items = "log_records"
    signal = "logs"

    def start(self, case):
        self.sink = ScriptedLokiSink()
        self.sink.start()
        case.addCleanup(self.sink.stop)
        return "  %s:\n    endpoint: %s\n" % (self.name, self.sink.url)

    def send(self, case, tag, n):
        lines = ["%s line %d" % (tag, i) for i in range(n)]
        write_stream(os.path.join(case.agent.dir, "lines.sock"),
                     "".join(line + "\n" for line in lines).encode())
        return lines

    def delivered(self):
        return [e.line for _, e in self.sink.entries()]

    def fail(self, kind):
        return {"later": ("fail", 429, {"Retry-After": "2"}),
                "unavailable": ("fail", 500, {})}[kind]


def agent_body(backend, exporter_yaml, max_elapsed="0s"):
    retry = ("    retry: {initial_interval: 100ms, max_interval: 200ms, "
             "max_elapsed_time: %s}\n" % max_elapsed)
    settings = ("    timeout: %s\n" % TIMEOUT + retry +
                "    batch: {timeout: 50ms}\n    max_concurrency: 1\n")
    if backend.signal == "logs":
        receivers = "  lines:\n    path: @DIR@/lines.sock\n"
        pipe = "  logs:\n    receivers: [lines]\n    exporters: [%s]\n" % backend.name
    else:
        receivers = ("  otlp:\n    protocols:\n      grpc:\n"
                     "        endpoint: 127.0.0.1:@GRPC_PORT@\n")
        pipe = "  traces:\n    receivers: [otlp]\n    exporters: [%s]\n" % backend.name
    return ("receivers:\n" + receivers + "exporters:\n" + exporter_yaml + settings
            + "pipelines:\n" + pipe)


class BackendsTest(unittest.TestCase):
    maxDiff = 4000

    def start(self, backend, max_elapsed="0s"):
        self.backend = backend
        exporter_yaml = backend.start(self)
        self.agent = YamlAgent(agent_body(backend, exporter_yaml, max_elapsed), log_level="info")
        if backend.signal == "logs":
            self.addCleanup(shutil.rmtree, self.agent.dir, True)
            self.agent.start()
            self.addCleanup(self.agent.kill)
            self.agent.wait_ready()
        else:
            self.client = start_agent_for(self, self.agent)
        return backend.sink.script

    def counters(self):
        b, m = self.backend, self.agent.metrics()
        return dict(
            sent=int(m.value("lookout_exporter_sent_%s_total" % b.items, exporter=b.name) or 0),
            failed=int(m.value("lookout_exporter_send_failed_%s_total" % b.items,
                               exporter=b.name) or 0),
            retries=int(m.value("lookout_exporter_retries_total", exporter=b.name) or 0),
            dropped={l["reason"]: int(v) for _, l, v in
                     m.find("lookout_dropped_items_total", exporter=b.name)})

    def settle(self, script, attempts):
        """Waits for |attempts| attempts at the sink, then for QUIET s without a
        new one; returns the attempts."""
        ok = wait_until(lambda: len(script.attempts) >= attempts, 20)
        self.assertTrue(ok, "%d attempts at the sink, want %d: %r\n%s"
                        % (len(script.attempts), attempts, script.attempts, self.agent.log_tail()))
        while True:
            n = len(script.attempts)
            time.sleep(QUIET)
            if len(script.attempts) == n:
                return list(script.attempts)

    def finish(self, sent, delivered, counters):
        result_line(self.id().split(".")[-1], sent=len(sent), acked=len(sent),
                    delivered=len(delivered), dropped=sum(counters["dropped"].values()),
                    peak_rss_mib=(helpers._proc_status_kib(self.agent.proc.pid, "VmHWM") or 0)
                    / 1024.0, worst_latency_ms="n/a", attempts=len(self.backend.sink.script.attempts),
                    retries=counters["retries"])
        rc = self.agent.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, "exit status after SIGTERM\n" + self.agent.log_tail())

    # --- the cases, each run for every exporter that has it

    def case_permanent(self, backend, reason):
        """A permanent error: one attempt, the batch dropped with |reason|."""
        script = self.start(backend)
        script.actions = [backend.fail("permanent")]
        sent = backend.send(self, "perm", 5)
        attempts = self.settle(script, 1)
        self.assertEqual(len(attempts), 1, "a permanent error is not retried: %r" % attempts)
        c = wait_until(lambda: self.counters()["dropped"] and self.counters(), 5) or self.counters()
        self.assertEqual(c["dropped"], {reason: 5}, "lookout_dropped_items_total by reason")
        self.assertEqual((c["failed"], c["sent"], c["retries"]), (5, 0, 0),
                         "send_failed, sent, retries")
        self.assertEqual(backend.delivered(), [])
        # The exporter goes on: the next batch is delivered.
        more = backend.send(self, "after", 2)
        wait_until(lambda: sorted(backend.delivered()) == sorted(more), 10)
        self.assertEqual(sorted(backend.delivered()), sorted(more))
        self.finish(sent + more, backend.delivered(), self.counters())

    def case_later(self, backend, wait_s):
        """A "come back later" naming a time: retried once, not before it, then
        delivered exactly once."""
        script = self.start(backend)
        script.actions = [backend.fail("later")]
        sent = backend.send(self, "later", 5)
        attempts = self.settle(script, 2)
        self.assertEqual([a for _, a in attempts][1:], ["ok"], "attempts: %r" % attempts)
        gap = attempts[1][0] - attempts[0][0]
        self.assertGreaterEqual(gap, wait_s - 0.15, "retried %.2f s after being told %.1f s"
                                % (gap, wait_s))
        self.assertLess(gap, wait_s + 1.5, "retried only %.2f s after being told %.1f s"
                        % (gap, wait_s))
        self.assertEqual(sorted(backend.delivered()), sorted(sent), "delivered once each")
        c = self.counters()
        self.assertEqual((c["sent"], c["failed"], c["retries"], c["dropped"]), (5, 0, 1, {}),
                         "sent, send_failed, retries, dropped")
        self.finish(sent, backend.delivered(), c)

    def case_hang(self, backend):
        """The backend holds the first request past the exporter's timeout: the
        exporter gives up on it and retries; the items arrive (the hung attempt
        is not counted as delivered by the sink)."""
        script = self.start(backend)
        script.actions = [("hang", HANG)]
        sent = backend.send(self, "hang", 5)
        attempts = self.settle(script, 2)
        kinds = [a for _, a in attempts]
        self.assertEqual(kinds[0], "hang")
        self.assertEqual(kinds[-1], "ok", "attempts: %r" % attempts)
        gap = attempts[1][0] - attempts[0][0]
        self.assertGreaterEqual(gap, helpers.seconds(TIMEOUT) - 0.1,
                                "retried %.2f s after a hung attempt, before the timeout" % gap)
        self.assertLess(gap, HANG, "the exporter waited for the hung attempt (%.2f s)" % gap)
        self.assertEqual(sorted(backend.delivered()), sorted(sent), "delivered once each")
        c = self.counters()
        self.assertEqual((c["sent"], c["failed"], c["retries"], c["dropped"]),
                         (5, 0, kinds.count("hang"), {}), "sent, send_failed, retries, dropped")
        self.finish(sent, backend.delivered(), c)

    def case_exhausted(self, backend):
        """Retryable failures until retry.max_elapsed_time (2 s): the batch is
        dropped with reason retries_exhausted, and nothing after that."""
        script = self.start(backend, max_elapsed="2s")
        script.default = backend.fail("unavailable")
        t0 = time.monotonic()
        sent = backend.send(self, "exhaust", 5)
        ok = wait_until(lambda: self.counters()["dropped"], 15, interval=0.1)
        took = time.monotonic() - t0
        self.assertTrue(ok, "nothing dropped within 15 s\n" + self.agent.log_tail())
        attempts = self.settle(script, 1)
        c = self.counters()
        self.assertEqual(c["dropped"], {"retries_exhausted": 5}, "dropped by reason")
        self.assertEqual((c["sent"], c["failed"]), (0, 5), "sent, send_failed")
        self.assertEqual(c["retries"], len(attempts) - 1, "retries = attempts - 1: %r" % attempts)
        self.assertGreaterEqual(len(attempts), 3, "retried before giving up: %r" % attempts)
        # A retry that would start past max_elapsed_time is not made: the batch
        # is given up as soon as the next wait (at most max_interval 200 ms
        # plus 50 % jitter) would cross it.
        self.assertGreaterEqual(took, 2.0 - 0.3 - 0.05,
                                "gave up after %.2f s, before max_elapsed_time" % took)
        self.assertEqual(backend.delivered(), [])
        self.finish(sent, [], c)

    # otlp (gRPC)
    def test_otlp_internal_dropped(self):
        self.case_permanent(OtlpGrpcBackend(), "internal")

    def test_otlp_resource_exhausted_without_retry_info_dropped(self):
        backend = OtlpGrpcBackend()
        backend.fail = lambda kind, f=backend.fail: f("later_no_time" if kind == "permanent" else kind)
        self.case_permanent(backend, "resource_exhausted")

    def test_otlp_resource_exhausted_with_retry_info(self):
        self.case_later(OtlpGrpcBackend(), 1.5)

    def test_otlp_hang_past_timeout(self):
        self.case_hang(OtlpGrpcBackend())

    def test_otlp_retries_exhausted(self):
        self.case_exhausted(OtlpGrpcBackend())

    # otlphttp
    def test_otlphttp_500_dropped(self):
        self.case_permanent(OtlpHttpBackend(), "http_500")

    def test_otlphttp_429_retry_after(self):
        self.case_later(OtlpHttpBackend(), 2.0)

    def test_otlphttp_hang_past_timeout(self):
        self.case_hang(OtlpHttpBackend())

    def test_otlphttp_retries_exhausted(self):
        self.case_exhausted(OtlpHttpBackend())

    # loki
    def test_loki_429_retry_after(self):
        self.case_later(LokiBackend(), 2.0)

    def test_loki_hang_past_timeout(self):
        self.case_hang(LokiBackend())

    def test_loki_500_retries_exhausted(self):
        self.case_exhausted(LokiBackend())


if __name__ == "__main__":
    unittest.main()
