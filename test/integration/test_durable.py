"""End-to-end with storage.durable on a real spool (storage/spool.c, SQLite in the
agent's temp dir): an OTLP/gRPC export, an OTLP/HTTP export and lines on a Unix
socket are answered (the lines read), go through the spool (its counters show the
writes and commits) and reach the sink (otlp_sink.py) once each. That answers wait
for the commit, and what happens when it fails or the client leaves meanwhile, is
tested in the unit tests (test/unit/receivers/durable_test.c, otlp_http_test.c,
lines_test.c), where the commit can be held; docs/reliability.md, "Durable
acknowledgement".

Run: sh test/integration/run.sh test_durable (from the repo root, after `make`).
"""

import http.client
import os
import shutil
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import (LOGS, TRACES, Client, YamlAgent, make_request,  # noqa: E402
                     spans_by_id, wait_until)
from otlp_sink import OtlpSink  # noqa: E402

DELIVERY = 20.0  # generous: the suite runs on 2-core machines
METRIC_WAIT = 5.0


def agent_body(sink_port):
    return ("storage:\n  path: @DIR@/spool.db\n  durable: true\n"
            "receivers:\n  otlp:\n    protocols:\n"
            "      grpc:\n        endpoint: 127.0.0.1:@GRPC_PORT@\n"
            "      http:\n        endpoint: 127.0.0.1:@HTTP_PORT@\n"
            "  lines:\n    path: @DIR@/lines.sock\n"
            "exporters:\n  otlp/sink:\n    endpoint: 127.0.0.1:%d\n"
            "    retry: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}\n"
            "    batch: {timeout: 50ms}\n"
            "pipelines:\n"
            "  traces:\n    receivers: [otlp]\n    exporters: [otlp/sink]\n"
            "  logs:\n    receivers: [lines]\n    exporters: [otlp/sink]\n" % sink_port)


class DurableTest(unittest.TestCase):
    def setUp(self):
        self.sink = OtlpSink()
        self.sink.start()
        self.addCleanup(self.sink.stop)
        self.agent = YamlAgent(agent_body(self.sink.port), log_level="info")
        self.addCleanup(shutil.rmtree, self.agent.dir, True)
        self.agent.start()
        self.addCleanup(self.agent.kill)
        self.agent.wait_ready()

    def written(self, signal):
        return self.agent.metric("lookout_spool_written_batches_total",
                                 exporter="otlp/sink", signal=signal) or 0

    def test_grpc_http_and_lines_are_committed_then_delivered(self):
        by_grpc = make_request("durable-grpc", resources=1, scopes=1, spans=3)
        by_http = make_request("durable-http", resources=1, scopes=1, spans=2)
        client = Client(self.agent.grpc_endpoint)
        self.addCleanup(client.close)
        client.export(by_grpc)

        conn = http.client.HTTPConnection("127.0.0.1", self.agent.http_port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("POST", "/v1/traces", by_http.SerializeToString(),
                     {"Content-Type": "application/x-protobuf"})
        resp = conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 200)

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(os.path.join(self.agent.dir, "lines.sock"))
            s.sendall(b"first durable line\n")
            s.sendall(b"second durable line\n")

        self.assertEqual(self.sink.wait_for_spans(5, DELIVERY), 5)
        self.assertEqual(self.sink.wait_for_items(LOGS, 2, DELIVERY), 2)
        got = spans_by_id(self.sink.spans())  # raises on a span delivered twice
        want = list(spans_by_id(by_grpc)) + list(spans_by_id(by_http))
        self.assertEqual(sorted(got), sorted(want))
        bodies = sorted(item.body.string_value for _, _, item in self.sink.items(LOGS))
        self.assertEqual(bodies, ["first durable line", "second durable line"])

        # Accepted counts once committed; every request (and read of lines) was
        # written to the spool.
        self.assertTrue(wait_until(
            lambda: (self.agent.metric("lookout_receiver_accepted_spans_total",
                                       receiver="otlp", transport="grpc") == 3 and
                     self.agent.metric("lookout_receiver_accepted_spans_total",
                                       receiver="otlp", transport="http") == 2 and
                     self.agent.metric("lookout_receiver_accepted_log_records_total",
                                       receiver="lines", transport="unix") == 2),
            METRIC_WAIT), self.agent.metrics().text)
        self.assertGreaterEqual(self.written(TRACES), 2)
        self.assertGreaterEqual(self.written(LOGS), 1)
        self.assertGreaterEqual(self.agent.metric("lookout_spool_commits_total"), 1)
        self.assertEqual(self.agent.metric("lookout_dropped_items_total", signal="logs",
                                           reason="spool_write_failed", receiver="lines"), 0)


if __name__ == "__main__":
    unittest.main()
