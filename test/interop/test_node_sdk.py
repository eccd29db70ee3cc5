"""Interop: the official OpenTelemetry JavaScript SDK -> build/lookout -> sink.

For each signal (traces, metrics, logs) and each OTLP exporter protocol of the SDK
(grpc, http/protobuf, http/json), emit.mjs sends one known batch to lookout's gRPC or
HTTP receiver and writes what it sent to expected.json; the test waits until the
in-process gRPC sink (test/integration/otlp_sink.py) has that batch from lookout and
compares it field by field, then checks lookout's /metrics counted the items for the
transport they came in on. One sink and one agent serve the whole class; each run is
told apart by the resource attribute interop.run = "<signal>-<protocol>".

Run all: sh test/interop/run.sh (from the repo root, after `make`); the suite also
runs NodeSdkPrometheusTest of test_node_prometheus.py (the prometheus exporter).
Run one: /usr/bin/python3 test/interop/test_node_sdk.py NodeSdkInteropTest.test_logs_grpc
Env: LOOKOUT_BIN, LOOKOUT_PYGEN (as in test/integration), INTEROP_NODE_DIR (where
run.sh installed the npm packages, default build/interop-node), INTEROP_KEEP=1 keeps
the temp dir (agent config, stderr, expected.json files), INTEROP_GRPC_ONLY=1 leaves
the HTTP receiver out of the agent's config (for a build without it: the http/*
combinations then fail), INTEROP_COMPRESSION=gzip makes every SDK exporter compress
(default none).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "test", "integration"))

import helpers  # noqa: E402  (puts the generated *_pb2 modules on sys.path)
import otlp_sink  # noqa: E402

# The prometheus exporter's interop class (test_node_prometheus.py) runs in the same
# suite (main below), and run.sh's test names reach it through this module.
from test_node_prometheus import NodeSdkPrometheusTest  # noqa: E402

NODE_DIR = os.environ.get("INTEROP_NODE_DIR", os.path.join(REPO, "build", "interop-node"))
EMIT = os.path.join(HERE, "emit.mjs")

SIGNALS = ("traces", "metrics", "logs")
PROTOCOLS = ("grpc", "http/protobuf", "http/json")

EMIT_TIMEOUT = 45.0      # emit.mjs gives up by itself after 30 s
DELIVERY_TIMEOUT = 15.0  # agent batch timeout is 100 ms; retries start at 100 ms
METRIC_TIMEOUT = 5.0     # self-metrics are updated when the request is answered

# lookout's self-metric item word per signal, and the sink's signal name.
ITEM_WORD = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}
SINK_SIGNAL = {"traces": otlp_sink.TRACES, "metrics": otlp_sink.METRICS,
               "logs": otlp_sink.LOGS}

CONFIG = """\
log_level: debug
admin: {{endpoint: 127.0.0.1:{admin}}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:{grpc}}}
      http: {{endpoint: 127.0.0.1:{http}}}
exporters:
  otlp/sink:
    endpoint: 127.0.0.1:{sink}
    compression: none
    batch: {{timeout: 100ms}}
    retry: {{initial_interval: 100ms, max_interval: 1s}}
pipelines:
  traces:  {{receivers: [otlp], exporters: [otlp/sink]}}
  metrics: {{receivers: [otlp], exporters: [otlp/sink]}}
  logs:    {{receivers: [otlp], exporters: [otlp/sink]}}
"""


class InteropAgent(helpers.Agent):
    """helpers.Agent (start, readiness, /metrics, SIGTERM) on this suite's config:
    the gRPC and the HTTP receiver, all three pipelines to the sink."""

    def __init__(self, sink_port, workdir):   # noqa: super().__init__ writes its own config
        if not os.access(helpers.BIN, os.X_OK):
            raise AssertionError("%s not found or not executable: run `make` first" % helpers.BIN)
        self.grpc_port, self.http_port, self.admin_port = helpers.free_ports(3)
        self.sink_port = sink_port
        self.settings = {"shutdown_timeout": "5s"}   # used by wait_exit only
        self.dir = workdir
        self.config_path = os.path.join(workdir, "lookout.yaml")
        config = CONFIG.format(admin=self.admin_port, grpc=self.grpc_port,
                               http=self.http_port, sink=sink_port)
        if os.environ.get("INTEROP_GRPC_ONLY") == "1":
            # For an agent built without the HTTP receiver: the http/* combinations
            # then fail (connection refused), the grpc ones still run.
            config = "\n".join(line for line in config.split("\n")
                                if not line.lstrip().startswith("http:"))
        with open(self.config_path, "w") as f:
            f.write(config)
        self.stderr_path = os.path.join(workdir, "stderr.log")
        self.stdout_path = os.path.join(workdir, "stdout.log")
        self.proc = None


# --- protobuf -> the plain form of expected.json (see emit.mjs)

def plain_any(value):
    """AnyValue -> plain Python value; None for an empty or absent AnyValue."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bytes_value":
        return {"$bytes": value.bytes_value.hex()}
    if kind == "array_value":
        return [plain_any(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return plain_attrs(value.kvlist_value.values)
    raise AssertionError("unknown AnyValue kind %r" % kind)


def plain_attrs(kvs):
    out = {}
    for kv in kvs:
        if kv.key in out:
            raise AssertionError("attribute key %r repeated" % kv.key)
        out[kv.key] = plain_any(kv.value)
    return out


def resource_of(resource, schema_url):
    return {"attributes": plain_attrs(resource.attributes), "schema_url": schema_url,
            "dropped_attributes_count": resource.dropped_attributes_count}


def scope_of(scope, schema_url):
    return {"name": scope.name, "version": scope.version, "schema_url": schema_url}


def span_of(span):
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "trace_state": span.trace_state,
        "flags": span.flags,
        "name": span.name,
        "kind": span.kind,
        "start_time_unix_nano": str(span.start_time_unix_nano),
        "end_time_unix_nano": str(span.end_time_unix_nano),
        "attributes": plain_attrs(span.attributes),
        "dropped_attributes_count": span.dropped_attributes_count,
        "events": [{
            "name": e.name,
            "time_unix_nano": str(e.time_unix_nano),
            "attributes": plain_attrs(e.attributes),
            "dropped_attributes_count": e.dropped_attributes_count,
        } for e in span.events],
        "dropped_events_count": span.dropped_events_count,
        "links": [{
            "trace_id": link.trace_id.hex(),
            "span_id": link.span_id.hex(),
            "trace_state": link.trace_state,
            "flags": link.flags,
            "attributes": plain_attrs(link.attributes),
            "dropped_attributes_count": link.dropped_attributes_count,
        } for link in span.links],
        "dropped_links_count": span.dropped_links_count,
        "status": {"code": span.status.code, "message": span.status.message},
    }


def log_of(rec):
    return {
        "time_unix_nano": str(rec.time_unix_nano),
        "observed_time_unix_nano": str(rec.observed_time_unix_nano),
        "severity_number": rec.severity_number,
        "severity_text": rec.severity_text,
        "event_name": rec.event_name,
        "body": plain_any(rec.body) if rec.HasField("body") else None,
        "attributes": plain_attrs(rec.attributes),
        "dropped_attributes_count": rec.dropped_attributes_count,
        "flags": rec.flags,
        "trace_id": rec.trace_id.hex(),
        "span_id": rec.span_id.hex(),
    }


def metric_of(metric):
    """Metric -> (header dict without points, [point dicts])."""
    kind = metric.WhichOneof("data")
    head = {"name": metric.name, "description": metric.description, "unit": metric.unit,
            "type": kind}
    points = []
    if kind in ("sum", "gauge"):
        data = getattr(metric, kind)
        if kind == "sum":
            head["temporality"] = data.aggregation_temporality
            head["monotonic"] = data.is_monotonic
        for p in data.data_points:
            which = p.WhichOneof("value")
            points.append({
                "attributes": plain_attrs(p.attributes),
                "start_time_unix_nano": str(p.start_time_unix_nano),
                "time_unix_nano": str(p.time_unix_nano),
                "value_type": {"as_int": "int", "as_double": "double"}.get(which, which),
                "value": getattr(p, which) if which else None,
                "flags": p.flags,
                "exemplars": len(p.exemplars),
            })
    elif kind == "histogram":
        head["temporality"] = metric.histogram.aggregation_temporality
        for p in metric.histogram.data_points:
            points.append({
                "attributes": plain_attrs(p.attributes),
                "start_time_unix_nano": str(p.start_time_unix_nano),
                "time_unix_nano": str(p.time_unix_nano),
                "count": p.count,
                "sum": p.sum if p.HasField("sum") else None,
                "min": p.min if p.HasField("min") else None,
                "max": p.max if p.HasField("max") else None,
                "bucket_counts": list(p.bucket_counts),
                "explicit_bounds": list(p.explicit_bounds),
                "flags": p.flags,
                "exemplars": len(p.exemplars),
            })
    else:
        raise AssertionError("metric %s: unexpected data %r" % (metric.name, kind))
    return head, points


def attr_key(attrs):
    """A hashable, order-independent key for a plain attribute dict."""
    return json.dumps(attrs, sort_keys=True)


def differences(got, want, path="", out=None):
    """Every place where |got| and |want| differ, types included (True is not 1,
    3 is not 3.0): ["path: got X (type), want Y (type)"]."""
    if out is None:
        out = []

    def note(msg):
        out.append("%s: %s" % (path or "<top>", msg))

    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            sub = "%s.%s" % (path, k) if path else k
            if k not in got:
                out.append("%s: missing (want %r)" % (sub, want[k]))
            elif k not in want:
                out.append("%s: unexpected (got %r)" % (sub, got[k]))
            else:
                differences(got[k], want[k], sub, out)
    elif isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            note("got %d items %r, want %d items %r" % (len(got), got, len(want), want))
        else:
            for i, (g, w) in enumerate(zip(got, want)):
                differences(g, w, "%s[%d]" % (path, i), out)
    elif type(got) is not type(want) or got != want:
        note("got %r (%s), want %r (%s)" % (got, type(got).__name__, want,
                                             type(want).__name__))
    return out


def as_double(v):
    """JSON writes an integral double as an integer: fields typed double in the
    proto (histogram sum/min/max/bounds, as_double) are compared as float."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def run_name(sig, protocol):
    return "%s-%s" % (sig, protocol)


class NodeSdkInteropTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        node = shutil.which("node")
        if node is None:
            raise AssertionError("node not found on PATH (run.sh checks this first)")
        cls.node = node
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@opentelemetry")):
            raise AssertionError("%s/node_modules has no @opentelemetry packages: run "
                                 "test/interop/run.sh, which installs them" % NODE_DIR)
        cls.workdir = tempfile.mkdtemp(prefix="lookout-interop-")
        cls.sink = otlp_sink.OtlpSink(port=helpers.free_ports(1)[0])
        cls.sink.start()
        try:
            cls.agent = InteropAgent(cls.sink.port, cls.workdir)
            cls.agent.start()
            cls.agent.wait_ready()
        except BaseException:
            cls._teardown_quietly()
            raise

    @classmethod
    def _teardown_quietly(cls):
        agent = getattr(cls, "agent", None)
        if agent is not None:
            agent.kill()
        cls.sink.stop()
        if os.environ.get("INTEROP_KEEP") != "1":
            shutil.rmtree(cls.workdir, True)
        else:
            sys.stderr.write("interop: kept %s\n" % cls.workdir)

    @classmethod
    def tearDownClass(cls):
        rc = cls.agent.stop(signal.SIGTERM)
        tail = cls.agent.log_tail()
        bad = cls.agent.non_json_stderr_lines()
        cls._teardown_quietly()
        if rc != 0:
            raise AssertionError("agent exit status after SIGTERM: %r (None: had to be "
                                 "killed)\n%s" % (rc, tail))
        if bad:
            raise AssertionError("agent stderr lines that are not JSON objects: %r" % bad[:5])

    # --- the steps of one combination

    def emit(self, sig, protocol):
        """Runs emit.mjs; returns the parsed expected.json."""
        if protocol == "grpc":
            endpoint = "http://127.0.0.1:%d" % self.agent.grpc_port
        else:
            endpoint = "http://127.0.0.1:%d/v1/%s" % (self.agent.http_port, sig)
        expected_path = os.path.join(self.workdir, "expected-%s-%s.json"
                                     % (sig, protocol.replace("/", "-")))
        # The SDK reads OTEL_* variables (endpoints, headers, compression,
        # temporality); none from the caller's environment may leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(INTEROP_RUN=run_name(sig, protocol), INTEROP_NODE_DIR=NODE_DIR)
        try:
            proc = subprocess.run([self.node, EMIT, sig, protocol, endpoint, expected_path],
                                  env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=EMIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("emit.mjs %s %s did not finish within %.0fs\n%s"
                      % (sig, protocol, EMIT_TIMEOUT, self.agent.log_tail()))
        if proc.returncode != 0:
            self.fail("emit.mjs %s %s -> %s exited %d\n--- stdout\n%s--- stderr\n%s\n%s"
                      % (sig, protocol, endpoint, proc.returncode, proc.stdout,
                         proc.stderr[-4000:], self.agent.log_tail()))
        with open(expected_path) as f:
            expected = json.load(f)
        self.assertTrue(expected["export_ok"])
        self.assertEqual(expected["run"], run_name(sig, protocol))
        self.assertGreater(expected["count"], 0)
        return expected

    def delivered(self, sig, run):
        """[(resource dict, scope dict, item message)] the sink accepted for |run|."""
        out = []
        for call in self.sink.accepted(SINK_SIGNAL[sig]):
            if call.request is None:
                continue
            if sig == "traces":
                groups = [(r.resource, r.schema_url, [(s.scope, s.schema_url, s.spans)
                                                      for s in r.scope_spans])
                          for r in call.request.resource_spans]
            elif sig == "metrics":
                groups = [(r.resource, r.schema_url, [(s.scope, s.schema_url, s.metrics)
                                                      for s in r.scope_metrics])
                          for r in call.request.resource_metrics]
            else:
                groups = [(r.resource, r.schema_url, [(s.scope, s.schema_url, s.log_records)
                                                      for s in r.scope_logs])
                          for r in call.request.resource_logs]
            for resource, rschema, scopes in groups:
                res = resource_of(resource, rschema)
                if res["attributes"].get("interop.run") != run:
                    continue
                for scope, sschema, items in scopes:
                    for item in items:
                        out.append((res, scope_of(scope, sschema), item))
        return out

    @staticmethod
    def item_count(sig, delivered):
        if sig != "metrics":
            return len(delivered)
        n = 0
        for _, _, m in delivered:
            data = getattr(m, m.WhichOneof("data"))
            n += len(data.data_points)
        return n

    def wait_delivered(self, sig, run, count):
        got = self.sink.wait_for(
            lambda s: self.item_count(sig, self.delivered(sig, run)) >= count,
            DELIVERY_TIMEOUT)
        delivered = self.delivered(sig, run)
        if not got:
            self.fail("sink got %d of %d %s item(s) for %s within %.0fs\n%s"
                      % (self.item_count(sig, delivered), count, sig, run, DELIVERY_TIMEOUT,
                         self.agent.log_tail()))
        return delivered

    def accepted_counts(self, sig):
        """({transport: accepted items}, items the exporter sent, {transport: all
        requests answered}, {transport: requests answered OK}); None where /metrics
        has no such series."""
        m = self.agent.metrics()
        name = "lookout_receiver_accepted_%s_total" % ITEM_WORD[sig]
        accepted = {t: m.value(name, receiver="otlp", transport=t) for t in ("grpc", "http")}
        sent = m.value("lookout_exporter_sent_%s_total" % ITEM_WORD[sig], exporter="otlp/sink")
        req = "lookout_receiver_requests_total"
        requests = {t: m.value(req, receiver="otlp", transport=t) for t in ("grpc", "http")}
        ok = {"grpc": m.value(req, receiver="otlp", transport="grpc", grpc_status="0"),
              "http": m.value(req, receiver="otlp", transport="http", http_status="200")}
        return accepted, sent, requests, ok

    # --- field-by-field comparison

    def check_resource_scope(self, expected, delivered):
        want_res = dict(expected["resource"], dropped_attributes_count=0)
        problems = []
        for res, _, _ in delivered:
            for p in differences(res, want_res, "resource"):
                if p not in problems:   # one line per difference, not per item
                    problems.append(p)
        return problems

    def check_traces(self, expected, delivered):
        problems = self.check_resource_scope(expected, delivered)
        got = {}
        for _, scope, span in delivered:
            d = span_of(span)
            d["scope"] = scope
            if d["span_id"] in got:
                problems.append("span %s (%s) delivered more than once" % (d["span_id"], d["name"]))
            got[d["span_id"]] = d
        for want in expected["spans"]:
            label = "span %s" % want["name"]
            if want["span_id"] not in got:
                problems.append("%s (%s): not delivered" % (label, want["span_id"]))
                continue
            problems += differences(got.pop(want["span_id"]), want, label)
        for d in got.values():
            problems.append("span %s (%s): not sent" % (d["name"], d["span_id"]))
        return problems

    def check_logs(self, expected, delivered):
        problems = self.check_resource_scope(expected, delivered)
        # Every record has its own timestamp: the key.
        got = {}
        for _, scope, rec in delivered:
            d = log_of(rec)
            d["scope"] = scope
            if d["time_unix_nano"] in got:
                problems.append("log record @%s delivered more than once" % d["time_unix_nano"])
            got[d["time_unix_nano"]] = d
        for want in expected["log_records"]:
            label = "log record @%s" % want["time_unix_nano"]
            if want["time_unix_nano"] not in got:
                problems.append("%s: not delivered" % label)
                continue
            problems += differences(got.pop(want["time_unix_nano"]), want, label)
        for d in got.values():
            problems.append("log record @%s: not sent" % d["time_unix_nano"])
        return problems

    def check_metrics(self, expected, delivered):
        problems = self.check_resource_scope(expected, delivered)
        # A metric's points may travel in more than one Metric message (batches are
        # split by item count): merge them by name; their headers must agree.
        heads, points = {}, {}
        for _, scope, metric in delivered:
            head, pts = metric_of(metric)
            head["scope"] = scope
            if metric.name in heads:
                problems += differences(head, heads[metric.name], "metric %s header (again)"
                                        % metric.name)
            heads[metric.name] = head
            by_attrs = points.setdefault(metric.name, {})
            for p in pts:
                key = attr_key(p["attributes"])
                if key in by_attrs:
                    problems.append("metric %s point %s delivered more than once"
                                    % (metric.name, key))
                by_attrs[key] = p
        for want in expected["metrics"]:
            name = want["name"]
            label = "metric %s" % name
            if name not in heads:
                problems.append("%s: not delivered" % label)
                continue
            want_head = {k: v for k, v in want.items() if k != "points"}
            problems += differences(heads.pop(name), want_head, label)
            got_points = points.pop(name)
            for wp in want["points"]:
                key = attr_key(wp["attributes"])
                plabel = "%s point %s" % (label, key)
                if key not in got_points:
                    problems.append("%s: not delivered" % plabel)
                    continue
                wp = dict(wp, flags=0, exemplars=0)
                if want["type"] == "histogram":
                    for f in ("sum", "min", "max"):
                        wp[f] = as_double(wp[f])
                    wp["explicit_bounds"] = [as_double(b) for b in wp["explicit_bounds"]]
                elif wp["value_type"] == "double":
                    wp["value"] = as_double(wp["value"])
                problems += differences(got_points.pop(key), wp, plabel)
            for key in got_points:
                problems.append("%s point %s: not sent" % (label, key))
        for name in heads:
            problems.append("metric %s: not sent" % name)
        return problems

    # --- one combination, end to end

    def round_trip(self, sig, protocol):
        transport = "grpc" if protocol == "grpc" else "http"
        run = run_name(sig, protocol)
        accepted_before, sent_before, requests_before, ok_before = self.accepted_counts(sig)
        expected = self.emit(sig, protocol)
        count = expected["count"]
        delivered = self.wait_delivered(sig, run, count)

        check = {"traces": self.check_traces, "metrics": self.check_metrics,
                 "logs": self.check_logs}[sig]
        problems = check(expected, delivered)
        if problems:
            self.fail("%s: %d difference(s) between what the SDK sent and what the sink "
                      "got:\n  %s" % (run, len(problems), "\n  ".join(problems[:60])))

        # The receiver counted the items once, on the transport they came in on, and
        # answered the SDK's one request OK; the exporter sent them once.
        def delta(after, before):
            return (after or 0) - (before or 0)

        def counted():
            now = self.accepted_counts(sig)
            return now if delta(now[0][transport], accepted_before[transport]) >= count \
                and delta(now[1], sent_before) >= count else None
        helpers.wait_until(counted, METRIC_TIMEOUT)
        accepted, sent, requests, ok = self.accepted_counts(sig)
        other = "http" if transport == "grpc" else "grpc"
        name = "lookout_receiver_accepted_%s_total" % ITEM_WORD[sig]
        self.assertIsNotNone(accepted[transport], "%s{transport=%r} not in /metrics"
                             % (name, transport))
        got = {
            "%s{transport=%s}" % (name, transport):
                delta(accepted[transport], accepted_before[transport]),
            "%s{transport=%s}" % (name, other): delta(accepted[other], accepted_before[other]),
            "lookout_exporter_sent_%s_total" % ITEM_WORD[sig]: delta(sent, sent_before),
            "lookout_receiver_requests_total{transport=%s} OK" % transport:
                delta(ok[transport], ok_before[transport]),
            "lookout_receiver_requests_total{transport=%s} all" % transport:
                delta(requests[transport], requests_before[transport]),
            "lookout_receiver_requests_total{transport=%s} all" % other:
                delta(requests[other], requests_before[other]),
        }
        want = dict(zip(got, (count, 0, count, 1, 1, 0)))
        self.assertEqual(got, want, "self-metric deltas for %s" % run)

        # Nothing arrived twice in the meantime.
        self.assertEqual(self.item_count(sig, self.delivered(sig, run)), count,
                         "items delivered for %s (duplicates?)" % run)


def _add_tests():
    """test_<signal>_<protocol> for the 9 combinations, grpc first in each signal."""
    for sig in SIGNALS:
        for protocol in PROTOCOLS:
            def test(self, sig=sig, protocol=protocol):
                self.round_trip(sig, protocol)
            name = "test_%s_%s" % (sig, protocol.replace("/", "_"))
            test.__name__ = name
            test.__doc__ = "%s over OTLP %s from the JavaScript SDK" % (sig, protocol)
            setattr(NodeSdkInteropTest, name, test)


_add_tests()


def main(argv):
    """Runs the suite (or the names in argv); writes "passed failed" to
    $LOOKOUT_RESULT if set; returns the exit status."""
    def on_term(signum, _frame):
        helpers._kill_live_agents()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    loader = unittest.TestLoader()
    module = sys.modules[__name__]
    if argv:
        suite = loader.loadTestsFromNames(argv, module)
    else:
        suite = unittest.TestSuite([loader.loadTestsFromTestCase(NodeSdkInteropTest),
                                    loader.loadTestsFromTestCase(NodeSdkPrometheusTest)])
    total = suite.countTestCases()
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed_ids = set()
    class_errors = 0
    for test, _ in result.failures + result.errors:
        if isinstance(test, unittest.TestCase):
            failed_ids.add(test.id())
        elif not str(test).startswith("setUpClass "):
            # tearDownClass (unclean agent exit) and the like: one more failure.
            # A failed setUpClass runs none of its class's tests: counted below.
            class_errors += 1
    for test in result.unexpectedSuccesses:
        failed_ids.add(test.id())
    passed = max(result.testsRun - len(failed_ids) - len(result.skipped), 0)
    # Tests that never ran (their class's setUpClass failed) count as failed.
    failed = len(failed_ids) + (total - result.testsRun) + class_errors
    out = os.environ.get("LOOKOUT_RESULT")
    if out:
        with open(out, "w") as f:
            f.write("%d %d\n" % (passed, failed))
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
