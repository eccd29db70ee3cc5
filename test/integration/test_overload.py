"""Overload: senders faster than the backend, against build/lookout.

The sink (otlp_sink.py) answers slowly and the exporter sends one batch at a time,
so that gRPC and HTTP senders pushing as fast as they can outrun it for
OVERLOAD_SECONDS (30 s; LOOKOUT_OVERLOAD_SECONDS overrides). Asserted:

- every refusal is a proper retryable one: gRPC UNAVAILABLE carrying a RetryInfo
  in grpc-status-details-bin, HTTP 503 or 429 with Retry-After; anything else fails;
- what was acknowledged arrives, exactly: the span ids the sink received equal the
  ids the senders were answered OK for (a send whose answer was lost, a client
  timeout, may or may not arrive; none is expected), none twice;
- nothing is dropped (lookout_dropped_items_total stays 0);
- the agent's peak RSS (VmRSS sampled, VmHWM) stays within memory_limit plus
  helpers.MEMORY_OVERHEAD_MIB;
- the admin listener (and the well-behaved gRPC/HTTP clients, which may be refused
  retryably like anyone) answers within 1 s of its normal latency.

test_senders_faster_than_backend_queue_bound runs on the default limits (the
queue's 32 MiB bind first); test_senders_faster_than_backend_memory_limit sets
memory_limit to 64 MiB under queues of 1 GiB, so that only the memory budget
holds; test_40_requests_of_40mb_one_connection sends 40 concurrent 40 MB export
requests on one HTTP/2 connection (a raw client, helpers.H2Client, honouring flow
control exactly) under memory_limit 256 MiB. The last two are skipped while
`lookout --check-config` rejects `memory_limit`.

Run all: sh test/integration/run.sh test_overload (from the repo root, after `make`).
"""

import http.client
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import (MEMORY_OVERHEAD_MIB, H2Client, WellBehaved, grpc_error_retry_delay,  # noqa: E402
                     grpc_frame, kv, next_id, result_line, wait_until)
from helpers import ExportTraceServiceRequest  # noqa: E402

import grpc  # noqa: E402

import otlp_sink  # noqa: E402
import test_hostile  # noqa: E402  (its ReliabilityCase; module import keeps its tests out)

OVERLOAD_SECONDS = float(os.environ.get("LOOKOUT_OVERLOAD_SECONDS", "30"))
SINK_DELAY = 0.2        # seconds the sink takes per call while overloaded
PAYLOAD = 2048          # bytes of attribute per span: bytes, not spans, fill memory
SPANS_PER_REQUEST = 20


def big_request(tag, spans=SPANS_PER_REQUEST, payload=PAYLOAD):
    """A request of |spans| spans with a |payload|-byte attribute each; returns
    (request, [span ids])."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", string_value="overload-%s" % tag))
    ss = rs.scope_spans.add()
    ids = []
    trace_id = next_id(16)
    for i in range(spans):
        sp = ss.spans.add()
        sp.trace_id = trace_id
        sp.span_id = next_id(8)
        sp.name = "%s-%d" % (tag, i)
        sp.start_time_unix_nano = 1_700_000_000_000_000_000
        sp.end_time_unix_nano = sp.start_time_unix_nano + 1000
        sp.attributes.append(kv("payload", string_value="x" * payload))
        ids.append(sp.span_id)
    return req, ids


def overload_config(sink_port, top="", queue="", max_concurrency=1):
    return (top + "receivers:\n  otlp:\n    protocols:\n"
            "      grpc:\n        endpoint: 127.0.0.1:@GRPC_PORT@\n"
            "      http:\n        endpoint: 127.0.0.1:@HTTP_PORT@\n"
            "exporters:\n  otlp/sink:\n    endpoint: 127.0.0.1:%d\n"
            "    max_concurrency: %d\n"
            "    retry: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}\n"
            "    batch: {send_batch_size: 200, timeout: 50ms}\n" % (sink_port, max_concurrency)
            + queue +
            "pipelines:\n  traces:\n    receivers: [otlp]\n    exporters: [otlp/sink]\n")


class Tally:
    """What the senders saw, shared by their threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = 0
        self.acked = set()
        self.unknown = set()      # no answer (timeout, connection lost)
        self.refused = 0
        self.bad = []             # refusals that are not retryable ones

    def add(self, what, ids=(), note=None):
        with self.lock:
            self.sent += len(ids)
            if what == "ok":
                self.acked.update(ids)
            elif what == "refused":
                self.refused += len(ids)
            elif what == "unknown":
                self.unknown.update(ids)
            else:
                self.bad.append(note)


class OverloadTest(test_hostile.ReliabilityCase):

    def start_overload(self, top="", queue="", memory_limit_mib=None, max_concurrency=1):
        helpers.raise_fd_limit()
        sink = otlp_sink.OtlpSink(workers=4, max_recv_bytes=256 << 20)
        sink.start()
        self.addCleanup(sink.stop)
        self.sink = sink
        if memory_limit_mib is not None:
            self.memory_limit_mib = memory_limit_mib
        self.agent = helpers.YamlAgent(overload_config(sink.port, top, queue, max_concurrency),
                                       log_level="info")
        self.addCleanup(lambda: __import__("shutil").rmtree(self.agent.dir, True))
        self.agent.start()
        self.addCleanup(self.agent.kill)
        self.agent.wait_ready()
        self.rss = helpers.RssSampler(self.agent.proc.pid).start()
        self.addCleanup(self.rss.stop)
        self.wb = WellBehaved(self.agent, tag=self.id().split(".")[-1], refusal_ok=True)
        self.wb.start()
        self.addCleanup(self.wb.stop)
        self.wb.begin_hostile()

    # --- senders

    def grpc_sender(self, tally, stop, n):
        client = helpers.Client(self.agent.grpc_endpoint, own_connection=True)
        try:
            k = 0
            while not stop.is_set():
                k += 1
                req, ids = big_request("g%d-%d" % (n, k))
                try:
                    client.export(req, timeout=10)
                    tally.add("ok", ids)
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.UNAVAILABLE:
                        delay = grpc_error_retry_delay(e)
                        if delay is None:
                            tally.add("bad", ids, "UNAVAILABLE without RetryInfo: %s" % e.details())
                        else:
                            tally.add("refused", ids)
                            stop.wait(min(delay, 0.1))   # impatient, to keep the pressure on
                    elif e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        tally.add("unknown", ids)
                    else:
                        tally.add("bad", ids, "gRPC %s: %s" % (e.code(), e.details()))
        finally:
            client.close()

    def http_sender(self, tally, stop, n):
        conn = None
        k = 0
        while not stop.is_set():
            k += 1
            req, ids = big_request("h%d-%d" % (n, k))
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.agent.http_port, timeout=10)
            try:
                conn.request("POST", "/v1/traces", req.SerializeToString(),
                             {"Content-Type": "application/x-protobuf"})
                r = conn.getresponse()
                r.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = None
                tally.add("unknown", ids)
                continue
            if r.status == 200:
                tally.add("ok", ids)
            elif r.status in (429, 503):
                ra = r.getheader("Retry-After")
                if ra is None or not ra.strip().isdigit():
                    tally.add("bad", ids, "HTTP %d with Retry-After %r" % (r.status, ra))
                else:
                    tally.add("refused", ids)
                    stop.wait(0.1)
            else:
                tally.add("bad", ids, "HTTP %d" % r.status)
        if conn is not None:
            conn.close()

    def overload(self, seconds=OVERLOAD_SECONDS, grpc_senders=2, http_senders=2):
        tally, stop = Tally(), threading.Event()
        self.sink.set_delay(SINK_DELAY)
        threads = ([threading.Thread(target=self.grpc_sender, args=(tally, stop, i), daemon=True)
                    for i in range(grpc_senders)]
                   + [threading.Thread(target=self.http_sender, args=(tally, stop, i), daemon=True)
                      for i in range(http_senders)])
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(30)
        self.sink.set_delay(0)   # the backend recovers: the backlog drains
        return tally

    def check_overload(self, tally):
        self.wb.stop()
        self.rss.stop()
        acked = set(tally.acked)

        def delivered_ids():
            return [sp.span_id for _, _, sp in self.sink.spans()
                    if sp.name.startswith(("g", "h"))]
        wait_until(lambda: acked <= set(delivered_ids()), 60, interval=0.5)
        got = delivered_ids()
        dropped = int(self.agent.metric("lookout_dropped_items_total") or 0)
        peak = self.rss.peak_mib()
        kind, over = self.wb.worst_over_normal()
        result_line(self.id().split(".")[-1], sent=tally.sent, acked=len(acked),
                    delivered=len(set(got) & acked), dropped=dropped, peak_rss_mib=peak,
                    worst_latency_ms=self.wb.worst_ms(), refused=tally.refused,
                    unanswered=len(tally.unknown), wb_refusals=self.wb.refusals)
        self.assertEqual(tally.bad[:5], [], "refusals that are not retryable ones")
        self.assertGreater(tally.refused, 0, "the senders never outran the backend")
        self.assertGreater(len(acked), 0, "nothing acknowledged")
        self.assertEqual(len(got), len(set(got)), "spans delivered twice")
        self.assertEqual(acked - set(got), set(), "acknowledged spans that never arrived")
        self.assertEqual(set(got) - acked - tally.unknown, set(),
                         "spans delivered that nobody was told were accepted")
        self.assertEqual(dropped, 0, "dropped items")
        self.assertEqual({k: v[:3] for k, v in self.wb.errors.items() if v}, {},
                         "well-behaved calls that failed (%s)" % self.wb.report())
        self.assertLess(over, helpers.LATENCY_SLACK, "%s served %.0f ms over its normal latency "
                        "(%s)" % (kind, over * 1000, self.wb.report()))
        self.assertLess(peak, self.budget_mib, "peak RSS %.1f MiB over memory_limit %d MiB + "
                        "%d MiB" % (peak, self.memory_limit_mib, MEMORY_OVERHEAD_MIB))
        # Drained, the budget gives back exactly what it was charged: no item
        # or batch is still counted (the well-behaved clients have stopped).
        def held(kind):
            return self.agent.metric("lookout_memory_used_bytes", kind=kind)
        wait_until(lambda: held("queues") == 0 and held("exporters") == 0, 10)
        self.assertEqual((held("queues"), held("exporters")), (0, 0),
                         "memory still charged after the backlog drained")
        self.assertEqual(self.agent.stop(), 0, "exit status after SIGTERM\n" + self.agent.log_tail())

    def test_senders_faster_than_backend_queue_bound(self):
        """Default limits: the queue (32 MiB) fills, receivers refuse retryably."""
        self.start_overload()
        self.check_overload(self.overload())

    def test_senders_faster_than_backend_memory_limit(self):
        """memory_limit 64 MiB under queues of 1 GiB: only the budget holds."""
        top = "memory_limit: 64MiB\n"
        queue = "    queue: {queue_size: 100000000, max_bytes: 1GiB}\n"
        helpers.skip_unless_accepted(self, test_hostile.full_config(overload_config(1, top, queue)),
                                     "the memory budget (memory_limit)")
        self.start_overload(top=top, queue=queue, memory_limit_mib=64)
        self.check_overload(self.overload())

    def test_40_requests_of_40mb_one_connection(self):
        """40 concurrent export requests of 40 MB each on one HTTP/2 connection
        (what h2load did to reach 1.5 GiB of RSS): flow control stops the upload
        instead of buffering it; every answer is OK or a retryable refusal; the
        well-behaved clients are served meanwhile."""
        top = "memory_limit: 256MiB\n"
        queue = "    queue: {queue_size: 100000000, max_bytes: 1GiB}\n"
        helpers.skip_unless_accepted(self, test_hostile.full_config(overload_config(1, top, queue)),
                                     "the memory budget (memory_limit)")
        self.start_overload(top=top, queue=queue, memory_limit_mib=256, max_concurrency=4)
        self.run_40x40()

    def run_40x40(self, n=40, size=40 << 20):
        # One shared 40 MB part (spans with 1 MiB attributes) after a small part
        # of its own per stream (2 spans whose arrival is checked): protobuf
        # concatenation makes them one request.
        chunk = 1 << 20
        shared, _ = big_request("shared", spans=size // chunk - 1, payload=chunk - 64)
        shared = shared.SerializeToString()
        conn = H2Client("127.0.0.1", self.agent.grpc_port)
        self.addCleanup(conn.close)
        streams, own = [], {}
        for i in range(n):
            small, ids = big_request("s%d" % i, spans=2, payload=16)
            small = small.SerializeToString()
            prefix = grpc_frame(b"", declared=len(small) + len(shared))
            st = conn.open(otlp_sink.TRACE_METHOD, [prefix, small, shared])
            streams.append(st)
            own[st.id] = ids
        t0 = time.monotonic()
        sent = conn.send_bodies(streams, t0 + 60, stall=10)
        upload_s = time.monotonic() - t0
        still_open = conn.wait_closed(streams, 20)
        ok, refused, bad = [], [], []
        for st in streams:
            if not st.closed:
                continue
            if st.grpc_status == 0:
                ok.append(st)
            elif st.grpc_status == 14 and st.retry_delay() is not None:
                refused.append(st)
            elif st.rst == 7:   # REFUSED_STREAM: nothing was processed, retry is safe
                refused.append(st)
            else:
                bad.append((st.id, st.http_status, st.grpc_status, st.rst,
                            st.header("grpc-message")))
        conn.close()
        self.wb.stop()
        self.rss.stop()
        acked = {i for st in ok for i in own[st.id]}
        wait_until(lambda: acked <= {sp.span_id for _, _, sp in self.sink.spans()}, 60, 0.5)
        got = {sp.span_id for _, _, sp in self.sink.spans()}
        peak = self.rss.peak_mib()
        kind, over = self.wb.worst_over_normal()
        dropped = int(self.agent.metric("lookout_dropped_items_total") or 0)
        result_line(self.id().split(".")[-1], sent=2 * n, acked=len(acked),
                    delivered=len(acked & got), dropped=dropped, peak_rss_mib=peak,
                    worst_latency_ms=self.wb.worst_ms(), uploaded_mib=sent / 1048576.0,
                    upload_s=upload_s, answered_ok=len(ok), refused=len(refused),
                    unanswered=len(still_open))
        self.assertEqual(bad, [], "answers that are neither OK nor a retryable refusal")
        self.assertEqual(acked - got, set(), "acknowledged spans that never arrived")
        self.assertEqual({k: v[:3] for k, v in self.wb.errors.items() if v}, {},
                         "well-behaved calls that failed (%s)" % self.wb.report())
        self.assertLess(over, helpers.LATENCY_SLACK, "%s served %.0f ms over its normal latency "
                        "(%s)" % (kind, over * 1000, self.wb.report()))
        self.assertLess(peak, self.budget_mib, "peak RSS %.1f MiB over memory_limit %d MiB + "
                        "%d MiB" % (peak, self.memory_limit_mib, MEMORY_OVERHEAD_MIB))
        self.assertEqual(self.agent.stop(), 0, "exit status after SIGTERM\n" + self.agent.log_tail())


if __name__ == "__main__":
    unittest.main()
