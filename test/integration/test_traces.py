"""End-to-end tests of the traces path: OTLP/gRPC client -> build/lookout -> sink.

Each test starts its own sink (in-process gRPC server) and agent (subprocess on a
temp config, free ports), waits for /readyz, and ends by stopping the agent with
SIGTERM, asserting exit status 0 and JSON-lines stderr.

Run all: sh test/integration/run.sh (from the repo root, after `make`).
Run one: /usr/bin/python3 test/integration/test_traces.py TracesTest.test_a_spans_round_trip
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402  (puts the generated *_pb2 modules on sys.path)
from helpers import (Agent, Client, CountingProxy, DELIVERY_TIMEOUT, MAX_RECV_BYTES,  # noqa: E402
                     AnyValue, ExportTraceServiceResponse, make_request,
                     single_span_request, spans_by_id, wait_until)

import grpc  # noqa: E402

import otlp_sink  # noqa: E402

# The receiver does not serve metrics and logs yet. Flip to grpc.StatusCode.OK once
# it does (an empty Export*ServiceRequest is a valid request).
METRICS_LOGS_EXPORT_CODE = grpc.StatusCode.UNIMPLEMENTED

EXPORTER = "otlp/sink"
METRIC_WAIT = 5.0   # seconds for a self-metric to reach its expected value


class AgentTestCase(unittest.TestCase):
    """Starts sink + agent per test; cleanups kill whatever is left running."""

    maxDiff = 4000

    def start(self, sink=None, sink_up=True, exporter_port=None, **config):
        """Starts a sink (or takes |sink|, already running; with sink_up False the
        sink's port is chosen but nothing listens there yet), the agent exporting
        to exporter_port (default: the sink's port), and a client to the agent."""
        if sink is None:
            sink = otlp_sink.OtlpSink(port=helpers.free_ports(1)[0])
            if sink_up:
                sink.start()
            self.addCleanup(sink.stop)
        self.sink = sink
        self.agent = Agent(exporter_port or self.sink.port, **config)
        self.client = helpers.start_agent_for(self, self.agent)

    def start_behind_proxy(self, record=False, **config):
        """start() with a sink of its own behind a CountingProxy (bytes counted,
        and kept with |record|) that the agent exports through; returns the proxy."""
        sink = otlp_sink.OtlpSink()
        sink.start()
        self.addCleanup(sink.stop)
        proxy = CountingProxy(sink.port, record=record)
        self.addCleanup(proxy.close)
        self.start(sink=sink, exporter_port=proxy.port, **config)
        return proxy

    def stop_agent(self):
        """SIGTERM; asserts a clean exit and JSON-lines stderr."""
        rc = self.agent.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, "agent exit status after SIGTERM (None: had to be killed)\n"
                         + self.agent.log_tail())
        self.assertTrue(self.agent.stderr_text().strip(), "agent logged nothing at debug level")
        bad = self.agent.non_json_stderr_lines()
        self.assertEqual(bad, [], "stderr lines that are not JSON objects")

    # --- assertion helpers

    def export_ok(self, request, **kwargs):
        """Exports |request|; asserts OK with a clean ExportTraceServiceResponse."""
        try:
            resp = self.client.export(request, **kwargs)
        except grpc.RpcError as e:
            self.fail("export failed: %s %s\n%s" % (e.code(), e.details(), self.agent.log_tail()))
        self.assertIsInstance(resp, ExportTraceServiceResponse)
        if resp.HasField("partial_success"):
            self.assertEqual(resp.partial_success.rejected_spans, 0, str(resp))
        return resp

    def assert_delivered(self, requests, timeout=DELIVERY_TIMEOUT):
        """Waits until the sink holds as many spans as |requests|, then asserts each
        span arrived exactly once, equal with its resource and scope."""
        expected = {}
        for req in requests:
            expected.update(spans_by_id(req))
        got = self.sink.wait_for_spans(len(expected), timeout)
        self.assertGreaterEqual(got, len(expected), "spans at the sink after %.0fs\n%s"
                                % (timeout, self.agent.log_tail()))
        actual = spans_by_id(self.sink.spans())   # raises on a duplicate span id
        self.assertEqual(set(actual), set(expected), "span ids at the sink")
        for span_id, want in expected.items():
            have = actual[span_id]
            name = want[4].name
            self.assertEqual(have[0], want[0], "resource of span %s" % name)
            self.assertEqual(have[1], want[1], "resource schema_url of span %s" % name)
            self.assertEqual(have[2], want[2], "scope of span %s" % name)
            self.assertEqual(have[3], want[3], "scope schema_url of span %s" % name)
            self.assertEqual(have[4], want[4], "span %s" % name)
        for call in self.sink.accepted():
            self.assertEqual(call.header("x-test-header"), "hello", "exporter headers")
        return actual

    def wait_metric(self, predicate, name, what, timeout=METRIC_WAIT, **labels):
        """Polls /metrics until predicate(value of name{labels}) holds."""
        seen = []

        def check():
            v = self.agent.metric(name, **labels)
            seen[:] = [v]
            return v is not None and predicate(v)
        if not wait_until(check, timeout, interval=0.1):
            self.fail("%s%s: %s, last value %r\n%s"
                      % (name, labels, what, seen[0] if seen else None, self.agent.log_tail()))
        return seen[0]

    def assert_metric_equals(self, name, value, **labels):
        return self.wait_metric(lambda v: v == value, name, "expected %r" % value, **labels)

    def assert_status(self, code, fn, *args, **kwargs):
        self.assertEqual(self.client.status_of(fn, *args, **kwargs), code)


class TracesTest(AgentTestCase):

    def test_a_spans_round_trip(self):
        self.start()
        requests = [make_request("rt%d" % i) for i in range(20)]
        for req in requests:
            self.export_ok(req)
        total = sum(len(spans_by_id(r)) for r in requests)
        self.assertEqual(total, 20 * 12)
        self.assert_delivered(requests)
        self.assert_metric_equals("lookout_receiver_accepted_spans_total", total, receiver="otlp")
        self.assert_metric_equals("lookout_exporter_sent_spans_total", total, exporter=EXPORTER)
        self.stop_agent()

    def test_b_gzip_request_and_uncompressed_export(self):
        # Agent exports with compression: none through a proxy that counts the
        # bytes on the wire, so the request must go out at full size.
        proxy = self.start_behind_proxy(compression="none")
        payload = "compressible " * 20000   # 260 kB, gzips to a few kB
        req = single_span_request("gzip-in", AnyValue(string_value=payload))
        self.export_ok(req, compression=grpc.Compression.Gzip)
        self.assert_delivered([req])
        self.assertGreater(proxy.upstream_bytes, len(payload),
                           "bytes agent->sink with compression: none")
        self.stop_agent()

    def test_b_gzip_export(self):
        # compression: gzip: the same compressible request goes out small.
        proxy = self.start_behind_proxy(compression="gzip")
        payload = "compressible " * 20000
        req = single_span_request("gzip-out", AnyValue(string_value=payload))
        self.export_ok(req)
        self.assert_delivered([req])
        self.assertLess(proxy.upstream_bytes, len(payload) // 4,
                        "bytes agent->sink with compression: gzip")
        self.stop_agent()

    def test_b_gzip_export_on_the_wire(self):
        # compression: gzip: lookout compresses each message itself (one of
        # 64 KiB or more on the thread pool) and gRPC core sends it as it is:
        # the compressed flag set on every message, and grpc-encoding: gzip,
        # without which grpcio refuses a compressed message. The sink decodes
        # the same spans, from a small request and from a large one.
        proxy = self.start_behind_proxy(record=True, compression="gzip",
                                        exporter_extra="    compression_level: 9")
        small = make_request("gz-small")
        self.export_ok(small)
        self.assert_delivered([small])
        payload = "compressible " * 20000   # 260 kB: compressed off the loop
        large = single_span_request("gz-large", AnyValue(string_value=payload))
        self.export_ok(large)
        self.assert_delivered([small, large])
        calls = self.sink.accepted()
        self.assertEqual([c.raw for c in calls],
                         [small.SerializeToString(), large.SerializeToString()])
        msgs = proxy.grpc_messages()
        self.assertEqual(len(msgs), 2, msgs)
        self.assertEqual([flag for flag, _ in msgs], [1, 1], "compressed flag of each message")
        self.assertLess(msgs[0][1], len(small.SerializeToString()))
        self.assertLess(msgs[1][1], len(payload) // 50, "bytes of the large message")
        self.stop_agent()

    def test_b_gzip_export_retried(self):
        # A retried compressed message goes out again whole and equal.
        proxy = self.start_behind_proxy(record=True, compression="gzip")
        self.sink.fail_next(2, grpc.StatusCode.UNAVAILABLE)
        payload = "retried " * 20000
        req = single_span_request("gz-retry", AnyValue(string_value=payload))
        self.export_ok(req)
        self.assert_delivered([req])
        calls = self.sink.calls()
        self.assertEqual(len(calls), 3, "calls at the sink: two refused, one accepted")
        self.assertEqual({c.raw for c in calls}, {req.SerializeToString()})
        msgs = proxy.grpc_messages()
        self.assertEqual(len(msgs), 3, msgs)
        self.assertEqual(len(set(msgs)), 1, "the same compressed message each time")
        self.assertEqual(msgs[0][0], 1)
        self.stop_agent()

    def test_c_invalid_requests_rejected(self):
        self.start()
        trace_call = self.client.call_raw
        good = make_request("c-good", resources=1, scopes=1, spans=2).SerializeToString()
        malformed = {
            "truncated": good[:-3],
            "bad wire type": b"\x0f\xff\xff",
            "length past end": b"\x0a\xff\xff\xff\x7f\x01",
            "garbage": b"\xff" * 32,
        }
        for what, payload in malformed.items():
            with self.subTest(malformed=what):
                self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, trace_call,
                                   otlp_sink.TRACE_METHOD, payload)

        # Invalid UTF-8 spliced into string fields over a same-length placeholder.
        bad_utf8 = b"\xc3\x28\xa0\xa1\xe2\x28\xff\xfe"
        placeholder = "PLCHLDR!"
        cases = {
            "span name": single_span_request(placeholder),
            "attribute value": single_span_request(
                "n", AnyValue(string_value=placeholder)),
            "nested kvlist value": single_span_request("n", AnyValue(
                kvlist_value=helpers.common_pb2.KeyValueList(
                    values=[helpers.kv("k", string_value=placeholder)]))),
            "attribute key": single_span_request("n", **{placeholder: AnyValue(int_value=1)}),
        }
        for what, req in cases.items():
            raw = req.SerializeToString()
            self.assertEqual(raw.count(placeholder.encode()), 1)
            raw = raw.replace(placeholder.encode(), bad_utf8)
            with self.subTest(invalid_utf8=what):
                self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, trace_call,
                                   otlp_sink.TRACE_METHOD, raw)

        short_trace = single_span_request("short-trace-id")
        short_trace.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01" * 15
        short_span = single_span_request("short-span-id")
        short_span.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01" * 7
        for what, req in (("trace_id of 15 bytes", short_trace), ("span_id of 7 bytes", short_span)):
            with self.subTest(ids=what):
                self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.client.export, req)

        valid = make_request("c-after")
        self.export_ok(valid)
        self.assert_delivered([valid])
        for call in self.sink.calls():
            self.assertTrue(call.ok, "sink got an undecodable request: %s" % call.details)
        self.stop_agent()

    def test_d_oversized_requests(self):
        self.start(max_recv_msg_size="1MiB")
        too_big = single_span_request("too-big", AnyValue(string_value="x" * (MAX_RECV_BYTES + 65536)))
        self.assertGreater(too_big.ByteSize(), MAX_RECV_BYTES)
        with self.subTest(oversized="plain"):
            self.assert_status(grpc.StatusCode.RESOURCE_EXHAUSTED, self.client.export, too_big)

        # A gzip bomb: 16 MiB of zeros that travel as a few kB.
        proxy = CountingProxy(self.agent.grpc_port)
        self.addCleanup(proxy.close)
        bomb_client = Client("127.0.0.1:%d" % proxy.port)
        self.addCleanup(bomb_client.close)
        bomb = single_span_request("bomb", AnyValue(bytes_value=bytes(16 << 20)))
        with self.subTest(oversized="gzip bomb"):
            self.assert_status(grpc.StatusCode.RESOURCE_EXHAUSTED, bomb_client.export, bomb,
                               compression=grpc.Compression.Gzip)
            self.assertLess(proxy.upstream_bytes, 256 << 10, "the bomb was not sent compressed")

        # Just under the limit still goes through, and so does an ordinary request.
        fits = single_span_request("fits", AnyValue(string_value="y" * (MAX_RECV_BYTES // 2)))
        normal = make_request("d-after")
        self.export_ok(fits)
        self.export_ok(normal)
        self.assert_delivered([fits, normal])
        names = {sp.name for _, _, sp in self.sink.spans()}
        self.assertNotIn("too-big", names)
        self.assertNotIn("bomb", names)
        self.stop_agent()

    def test_e_unimplemented_methods(self):
        self.start()
        self.assert_status(grpc.StatusCode.UNIMPLEMENTED, self.client.call_raw, "/foo.Bar/Baz", b"")
        self.assert_status(grpc.StatusCode.UNIMPLEMENTED, self.client.call_raw,
                           "/opentelemetry.proto.collector.trace.v1.TraceService/Nope", b"")
        for method in (otlp_sink.METRICS_METHOD, otlp_sink.LOGS_METHOD):
            with self.subTest(method=method):
                self.assert_status(METRICS_LOGS_EXPORT_CODE, self.client.call_raw, method, b"")
        # Still serving traces afterwards.
        req = make_request("e-after", resources=1, scopes=1, spans=2)
        self.export_ok(req)
        self.assert_delivered([req])
        self.stop_agent()

    def test_f_sink_down_then_up(self):
        self.start(sink_up=False)
        req = make_request("f-queued")
        nspans = len(spans_by_id(req))
        self.export_ok(req)
        self.wait_metric(lambda v: v > 0, "lookout_exporter_queue_size",
                         "expected > 0 while the sink is down", exporter=EXPORTER)
        self.wait_metric(lambda v: v > 0, "lookout_exporter_queue_capacity",
                         "expected > 0", exporter=EXPORTER)
        self.wait_metric(lambda v: v > 0, "lookout_exporter_retries_total",
                         "expected retries while the sink is down", exporter=EXPORTER)
        self.assertEqual(self.sink.calls(), [])
        self.sink.start()   # same port the agent exports to
        self.assert_delivered([req])
        self.wait_metric(lambda v: v == 0, "lookout_exporter_queue_size",
                         "expected 0 after delivery", exporter=EXPORTER)
        self.assert_metric_equals("lookout_exporter_sent_spans_total", nspans, exporter=EXPORTER)
        self.stop_agent()

    def test_g_sink_unavailable_twice(self):
        self.start()
        self.sink.fail_next(2, grpc.StatusCode.UNAVAILABLE)
        req = make_request("g-retry")
        self.export_ok(req)
        self.assert_delivered([req])
        failed = [c for c in self.sink.calls() if not c.ok]
        self.assertEqual(len(failed), 2, "calls the sink failed")
        self.wait_metric(lambda v: v >= 2, "lookout_exporter_retries_total",
                         "expected >= 2", exporter=EXPORTER)
        self.assert_metric_equals("lookout_exporter_sent_spans_total", len(spans_by_id(req)),
                                  exporter=EXPORTER)
        self.stop_agent()

    def test_h_sigterm_flushes_queue(self):
        # Small batches to a slow sink, and a batch timeout far beyond
        # shutdown_timeout: at SIGTERM data is in flight, queued and still
        # batching; all of it must reach the sink before the agent exits.
        self.start(send_batch_size=50, batch_timeout="60s")
        self.sink.set_delay(0.2)
        requests = [make_request("h%d" % i) for i in range(10)]   # 120 spans
        for req in requests:
            self.export_ok(req)
        self.agent.send_signal(signal.SIGTERM)
        rc = self.agent.wait_exit()
        self.assertEqual(rc, 0, "exit status after SIGTERM\n" + self.agent.log_tail())
        # The agent has exited: everything must already be at the sink.
        self.assert_delivered(requests, timeout=0)
        self.stop_agent()   # already exited: checks the logs

    def test_l_full_queue_refuses(self):
        # A queue of 24 spans with the sink down: requests of 12 spans fill it,
        # then the receiver answers UNAVAILABLE (the client should retry later)
        # and counts the refused spans; what was accepted is delivered once the
        # sink is up, and nothing refused ever reaches it.
        self.start(sink_up=False, send_batch_size=12,
                   exporter_extra="    queue: {queue_size: 24}")
        accepted, refused = [], []
        for i in range(8):
            req = make_request("l%d" % i, resources=1, scopes=2, spans=6)
            code = self.client.status_of(self.client.export, req)
            self.assertIn(code, (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE))
            (accepted if code == grpc.StatusCode.OK else refused).append(req)
        self.assertTrue(accepted, "no request accepted into an empty queue")
        self.assertTrue(refused, "no request refused by a full queue of 24 spans")
        self.assert_metric_equals("lookout_receiver_refused_spans_total",
                                  12 * len(refused), receiver="otlp")
        self.sink.start()
        self.assert_delivered(accepted)
        self.wait_metric(lambda v: v == 0, "lookout_exporter_queue_size",
                         "expected 0 after delivery", exporter=EXPORTER)
        again = make_request("l-again", resources=1, scopes=2, spans=6)
        self.export_ok(again)
        self.assert_delivered(accepted + [again])
        # A request of 30 spans can never fit a 24-span queue: retrying it
        # would never help, so it is RESOURCE_EXHAUSTED without RetryInfo.
        huge = make_request("l-huge", resources=1, scopes=3, spans=10)
        self.assertEqual(self.client.status_of(self.client.export, huge),
                         grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.stop_agent()

    def test_i_metrics_pass_promtool(self):
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        if not os.access(promtool, os.X_OK):
            self.fail("promtool not found (Debian: apt-get install prometheus; `make deps` does)")
        self.start()
        req = make_request("i")
        self.export_ok(req)
        self.assert_delivered([req])
        self.assert_metric_equals("lookout_exporter_sent_spans_total", len(spans_by_id(req)),
                                  exporter=EXPORTER)
        status, body = self.agent.http_get("/metrics")
        self.assertEqual(status, 200)
        check = subprocess.run([promtool, "check", "metrics"], input=body,
                               capture_output=True, timeout=30)
        self.assertEqual(check.returncode, 0, "promtool check metrics:\n%s%s"
                         % (check.stdout.decode(), check.stderr.decode()))
        m = helpers.Metrics(body.decode())
        for name, labels in (
                ("lookout_build_info", {}),
                ("process_resident_memory_bytes", {}),
                ("lookout_exporter_queue_capacity", {"exporter": EXPORTER}),
                ("lookout_exporter_request_duration_seconds_count", {"exporter": EXPORTER}),
                ("lookout_exporter_request_duration_seconds_sum", {"exporter": EXPORTER}),
                ("lookout_exporter_request_duration_seconds_bucket", {"exporter": EXPORTER, "le": "+Inf"})):
            with self.subTest(metric=name):
                self.assertIsNotNone(m.value(name, **labels), "%s%s missing" % (name, labels))
        self.assertGreaterEqual(m.value("lookout_exporter_request_duration_seconds_count",
                                        exporter=EXPORTER), 1)
        self.assertEqual(self.agent.http_get("/healthz")[0], 200)
        self.stop_agent()


class CliTest(unittest.TestCase):

    def setUp(self):
        if not os.access(helpers.BIN, os.X_OK):
            self.fail("%s not found: run `make` first" % helpers.BIN)
        self.agent = Agent(helpers.free_ports(1)[0])   # only for its config file
        self.addCleanup(shutil.rmtree, self.agent.dir, True)

    def test_j_check_config(self):
        good = helpers.run_agent_cli("--check-config", "-c", self.agent.config_path)
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)

        with open(self.agent.config_path) as f:
            lines = f.read().splitlines()
        at = next(i for i, l in enumerate(lines) if l.startswith("    compression:"))
        lines.insert(at + 1, "    bogus_option: 3")
        bad_path = os.path.join(self.agent.dir, "bad.yaml")
        with open(bad_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        bad = helpers.run_agent_cli("--check-config", "-c", bad_path)
        out = bad.stdout + bad.stderr
        self.assertEqual(bad.returncode, 1, out)
        m = re.search(re.escape(bad_path) + r":(\d+):(\d+)", out)
        self.assertIsNotNone(m, "no %s:line:col in output:\n%s" % (bad_path, out))
        self.assertEqual((int(m.group(1)), int(m.group(2))), (at + 2, 5),
                         "line:col (1-based) of the unknown key\n" + out)
        self.assertIn("bogus_option", out)

        missing = helpers.run_agent_cli("--check-config", "-c",
                                        os.path.join(self.agent.dir, "nope.yaml"))
        self.assertEqual(missing.returncode, 1, missing.stdout + missing.stderr)

    def test_k_version_and_help(self):
        version = helpers.run_agent_cli("--version")
        self.assertEqual(version.returncode, 0, version.stderr)
        self.assertRegex(version.stdout + version.stderr, r"\d+\.\d+\.\d+")
        usage = helpers.run_agent_cli("--help")
        self.assertEqual(usage.returncode, 0, usage.stderr)
        self.assertIn("--check-config", usage.stdout + usage.stderr)


if __name__ == "__main__":
    unittest.main()
