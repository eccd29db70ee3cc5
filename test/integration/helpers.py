"""Shared pieces of the integration tests: the agent under test as a subprocess,
free ports, a Prometheus text parser, a gRPC client, OTLP request builders (also
of requests with some bad items), a byte-counting TCP proxy and the suite runner
used by run.sh.

Paths: the agent is $LOOKOUT_BIN (default build/lookout); the Python modules
generated from proto/ are in $LOOKOUT_PYGEN (default build/pytest-gen), made here
with protoc when missing so a test file can also be run on its own.
"""

import atexit
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("LOOKOUT_BIN", os.path.join(REPO, "build", "lookout"))
PYGEN = os.environ.get("LOOKOUT_PYGEN", os.path.join(REPO, "build", "pytest-gen"))
PROTO_DIR = os.environ.get("LOOKOUT_PROTO_DIR", os.path.join(REPO, "proto"))


def _generate_pb2():
    """protoc --python_out=PYGEN for every OTLP .proto under PROTO_DIR."""
    marker = os.path.join(PYGEN, "opentelemetry", "proto", "collector", "trace", "v1",
                          "trace_service_pb2.py")
    if os.path.exists(marker):
        return
    protos = []
    for root, _, files in os.walk(os.path.join(PROTO_DIR, "opentelemetry")):
        protos += [os.path.relpath(os.path.join(root, f), PROTO_DIR)
                   for f in files if f.endswith(".proto")]
    if not protos:
        raise RuntimeError("no .proto files under %s/opentelemetry" % PROTO_DIR)
    os.makedirs(PYGEN, exist_ok=True)
    subprocess.run(["protoc", "--python_out=" + PYGEN, "-I" + PROTO_DIR] + sorted(protos),
                   check=True)


_generate_pb2()
sys.path.insert(0, PYGEN)
sys.path.insert(0, HERE)

import grpc  # noqa: E402

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2  # noqa: E402
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402
from opentelemetry.proto.common.v1 import common_pb2  # noqa: E402
from opentelemetry.proto.metrics.v1 import metrics_pb2  # noqa: E402
from opentelemetry.proto.trace.v1 import trace_pb2  # noqa: E402

import otlp_sink  # noqa: E402

ExportTraceServiceRequest = trace_service_pb2.ExportTraceServiceRequest
ExportTraceServiceResponse = trace_service_pb2.ExportTraceServiceResponse
AnyValue = common_pb2.AnyValue
KeyValue = common_pb2.KeyValue

# Every wait in the suite is bounded by one of these (seconds).
READY_TIMEOUT = 10.0
DELIVERY_TIMEOUT = 15.0
RPC_TIMEOUT = 5.0
EXIT_GRACE = 5.0   # beyond the agent's shutdown_timeout


# --- polling

def wait_until(fn, timeout, interval=0.05):
    """Calls fn() until it returns a true value or |timeout| passes; returns the
    last value. OSError and ValueError from fn (connection refused, a half-written
    scrape) count as "not yet" until the deadline, then propagate."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                raise
            value = None
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# free_ports lives in ports.py (standard library only), shared with test/docs.
from ports import free_ports  # noqa: E402,F401


# --- Prometheus text format

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


class Metrics:
    """Samples of one /metrics scrape: [(name, {label: value}, float)]."""

    def __init__(self, text):
        self.text = text
        self.samples = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            m = _SAMPLE_RE.match(line)
            if not m:
                raise ValueError("metrics line %d unparsable: %r" % (lineno, line))
            name, labels_text, value = m.groups()
            labels = {}
            pos = 0
            labels_text = labels_text or ""
            while pos < len(labels_text):
                lm = _LABEL_RE.match(labels_text, pos)
                if not lm or lm.end() == pos:
                    raise ValueError("metrics line %d: bad labels: %r" % (lineno, line))
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
            self.samples.append((name, labels, float(value)))

    def find(self, name, **labels):
        """Samples named |name| whose labels include |labels|."""
        return [(n, l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == v2 for k, v2 in labels.items())]

    def value(self, name, **labels):
        """Sum over the matching series, or None when no series matches."""
        found = self.find(name, **labels)
        return sum(v for _, _, v in found) if found else None


# --- the agent under test

CONFIG_TEMPLATE = """\
log_level: debug
shutdown_timeout: {shutdown_timeout}
admin:
  endpoint: 127.0.0.1:{admin_port}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
        max_recv_msg_size: {max_recv_msg_size}
{http_section}exporters:
  otlp/sink:
    endpoint: 127.0.0.1:{sink_port}
    timeout: {exporter_timeout}
    compression: {compression}
    headers: {{x-test-header: hello}}
    retry: {{initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}}
    batch: {{send_batch_size: {send_batch_size}, timeout: {batch_timeout}}}
{exporter_extra}
pipelines:
{pipelines_section}"""

# receivers: otlp: protocols: http:, written when Agent(http=...) asks for it.
HTTP_SECTION_TEMPLATE = """\
      http:
        endpoint: 127.0.0.1:{http_port}
        max_request_body_size: {max_request_body_size}
        read_timeout: {read_timeout}
        max_header_bytes: {max_header_bytes}
"""
HTTP_DEFAULTS = dict(
    max_request_body_size="1MiB",
    read_timeout="2s",
    max_header_bytes="16KiB",
)
MAX_HTTP_BODY_BYTES = 1 << 20     # matches HTTP_DEFAULTS
MAX_HTTP_HEADER_BYTES = 16 << 10  # matches HTTP_DEFAULTS

PIPELINE_TEMPLATE = """\
  {signal}:
    receivers: [otlp]
    exporters: [otlp/sink]
"""

CONFIG_DEFAULTS = dict(
    shutdown_timeout="5s",
    max_recv_msg_size="1MiB",
    exporter_timeout="5s",
    compression="gzip",
    send_batch_size=1000,
    batch_timeout="100ms",
    exporter_extra="",   # more lines under exporters: otlp/sink:, indented 4
)
MAX_RECV_BYTES = 1 << 20   # matches the default max_recv_msg_size above


def seconds(duration):
    """'5s' / '100ms' -> float seconds (only the units this suite writes)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]


# Agents started and not yet killed, so that a suite stopped from outside (the
# watchdog in run.sh, Ctrl-C) does not leave them running.
_live_agents = set()


def _kill_live_agents(*_):
    for agent in list(_live_agents):
        agent.kill()


atexit.register(_kill_live_agents)


class Agent:
    """build/lookout running on a config written into its own temp dir."""

    def __init__(self, sink_port, signals=("traces",), http=None, **overrides):
        """|signals|: the pipelines to write, each from receiver otlp to exporter
        otlp/sink. |http|: None for no OTLP/HTTP protocol, True for one with
        HTTP_DEFAULTS, or a dict overriding some of them."""
        if not os.access(BIN, os.X_OK):
            raise AssertionError("%s not found or not executable: run `make` first" % BIN)
        self.grpc_port, self.admin_port, self.http_port = free_ports(3)
        self.sink_port = sink_port
        self.signals = tuple(signals)
        self.settings = dict(CONFIG_DEFAULTS, **overrides)
        self.http_settings = None
        http_section = ""
        if http:
            self.http_settings = dict(HTTP_DEFAULTS, **(http if isinstance(http, dict) else {}))
            http_section = HTTP_SECTION_TEMPLATE.format(http_port=self.http_port,
                                                        **self.http_settings)
        pipelines_section = "".join(PIPELINE_TEMPLATE.format(signal=s) for s in self.signals)
        self.dir = tempfile.mkdtemp(prefix="lookout-it-")
        self.config_path = os.path.join(self.dir, "lookout.yaml")
        with open(self.config_path, "w") as f:
            f.write(CONFIG_TEMPLATE.format(grpc_port=self.grpc_port,
                                           admin_port=self.admin_port,
                                           http_section=http_section,
                                           pipelines_section=pipelines_section,
                                           sink_port=sink_port, **self.settings))
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.proc = None

    @property
    def grpc_endpoint(self):
        return "127.0.0.1:%d" % self.grpc_port

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen([BIN, "-c", self.config_path], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err)
        _live_agents.add(self)
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("agent exited with %d before ready\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                return self.http_get("/readyz")[0] == 200
            except OSError:
                return False
        if not wait_until(ready, timeout):
            raise AssertionError("agent not ready within %.0fs\n%s" % (timeout, self.log_tail()))
        return self

    def http_get(self, path, timeout=2.0):
        """(status, body bytes); HTTP errors are returned, not raised."""
        url = "http://127.0.0.1:%d%s" % (self.admin_port, path)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metrics(self):
        status, body = self.http_get("/metrics")
        if status != 200:
            raise AssertionError("/metrics answered %d" % status)
        return Metrics(body.decode("utf-8"))

    def metric(self, name, **labels):
        return self.metrics().value(name, **labels)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM):
        """Signals the agent and waits for it to exit; returns the exit code, or
        None if it had to be killed after shutdown_timeout + EXIT_GRACE."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit()

    def wait_exit(self):
        limit = seconds(self.settings["shutdown_timeout"]) + EXIT_GRACE
        try:
            return self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill(self):
        _live_agents.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_tail(self, lines=30):
        return "--- agent stderr (tail) ---\n" + "\n".join(
            self.stderr_text().splitlines()[-lines:])

    def non_json_stderr_lines(self):
        """stderr lines that are not one JSON object each."""
        bad = []
        for line in self.stderr_text().splitlines():
            if not line.strip():
                continue
            try:
                if not isinstance(json.loads(line), dict):
                    bad.append(line)
            except ValueError:
                bad.append(line)
        return bad


def start_agent_for(case, agent):
    """Starts |agent| for the unittest |case| and waits until it is ready; the
    case's cleanups kill it and remove its directory. Returns a Client to its
    gRPC receiver, closed at cleanup too."""
    case.addCleanup(shutil.rmtree, agent.dir, True)
    agent.start()
    case.addCleanup(agent.kill)
    agent.wait_ready()
    client = Client(agent.grpc_endpoint)
    case.addCleanup(client.close)
    return client


def run_agent_cli(*args, timeout=10):
    """Runs build/lookout with |args|; returns CompletedProcess (text)."""
    return subprocess.run([BIN] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# --- gRPC client

class Client:
    """OTLP/gRPC client on one channel to |endpoint|. With own_connection, the
    channel does not share grpcio's process-wide subchannel pool, so it has a
    TCP connection of its own rather than one shared with other Clients."""

    def __init__(self, endpoint, own_connection=False):
        options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else None
        self.channel = grpc.insecure_channel(endpoint, options=options)
        self._export = self.channel.unary_unary(
            otlp_sink.TRACE_METHOD,
            request_serializer=ExportTraceServiceRequest.SerializeToString,
            response_deserializer=ExportTraceServiceResponse.FromString)
        self._signal_exports = {}

    def export_signal(self, signal, request, compression=None, timeout=RPC_TIMEOUT):
        """Sends an Export request of |signal| (traces, metrics, logs); returns
        the decoded Export*ServiceResponse or raises RpcError."""
        fn = self._signal_exports.get(signal)
        if fn is None:
            info = SIGNALS[signal]
            fn = self.channel.unary_unary(
                info.method, request_serializer=info.request_cls.SerializeToString,
                response_deserializer=info.response_cls.FromString)
            self._signal_exports[signal] = fn
        return fn(request, timeout=timeout, compression=compression, wait_for_ready=True)

    def export(self, request, compression=None, timeout=RPC_TIMEOUT):
        """Sends a trace request; returns the decoded response or raises RpcError."""
        return self._export(request, timeout=timeout, compression=compression,
                            wait_for_ready=True)

    def call_raw(self, method, payload, compression=None, timeout=RPC_TIMEOUT):
        """Sends |payload| bytes as they are to |method|; returns response bytes."""
        fn = self.channel.unary_unary(method)   # no serializers: bytes in, bytes out
        return fn(payload, timeout=timeout, compression=compression, wait_for_ready=True)

    def status_of(self, fn, *args, **kwargs):
        """Calls fn; returns grpc.StatusCode.OK or the code of the RpcError."""
        try:
            fn(*args, **kwargs)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def close(self):
        self.channel.close()


# --- OTLP request builders

_id_lock = threading.Lock()
_id_counter = [0]
_ID_SALT = os.urandom(4)


def next_id(size):
    """A fresh non-zero id of |size| bytes (unique within this process)."""
    with _id_lock:
        _id_counter[0] += 1
        n = _id_counter[0]
    return (_ID_SALT + n.to_bytes(12, "big"))[-size:]


def kv(key, **value):
    """KeyValue(key, AnyValue(**value)), e.g. kv("a", int_value=3)."""
    return KeyValue(key=key, value=AnyValue(**value))


def all_value_types(tag):
    """Attributes with one AnyValue of every kind, nested ones included."""
    return [
        kv("str", string_value="value-%s" % tag),
        kv("utf8", string_value="h\u00e9llo \u4e16\u754c \U0001f600"),
        kv("empty", string_value=""),
        kv("bool", bool_value=True),
        kv("int", int_value=-(2 ** 62) + 7),
        kv("double", double_value=3.25),
        kv("bytes", bytes_value=b"\x00\x01\xfe\xff" + tag.encode()),
        kv("array", array_value=common_pb2.ArrayValue(values=[
            AnyValue(string_value="a"), AnyValue(int_value=2), AnyValue(bool_value=False),
            AnyValue(double_value=-0.5), AnyValue(bytes_value=b"\x00"),
            AnyValue(array_value=common_pb2.ArrayValue(values=[AnyValue(int_value=9)])),
        ])),
        kv("kvlist", kvlist_value=common_pb2.KeyValueList(values=[
            kv("inner.str", string_value="x"),
            kv("inner.kv", kvlist_value=common_pb2.KeyValueList(values=[
                kv("deep", int_value=1)])),
        ])),
    ]


def make_request(tag, resources=2, scopes=2, spans=3):
    """A request of resources x scopes x spans spans, every id distinct and every
    span carrying attributes of all value types, events, links and a status."""
    req = ExportTraceServiceRequest()
    for r in range(resources):
        rs = req.resource_spans.add()
        rs.schema_url = "https://opentelemetry.io/schemas/1.21.0"
        rs.resource.attributes.extend([
            kv("service.name", string_value="svc-%s-%d" % (tag, r)),
            kv("service.instance.id", string_value="inst-%d" % r),
            kv("host.cpus", int_value=8),
        ] + all_value_types("res-%s-%d" % (tag, r)))
        rs.resource.dropped_attributes_count = r
        for s in range(scopes):
            ss = rs.scope_spans.add()
            ss.schema_url = "https://example.test/scope/%d" % s
            ss.scope.name = "lib-%d" % s
            ss.scope.version = "1.%d.0" % s
            ss.scope.attributes.append(kv("scope.attr", string_value="s%d" % s))
            ss.scope.dropped_attributes_count = s
            trace_id = next_id(16)
            parent = b""
            for i in range(spans):
                sp = ss.spans.add()
                sp.trace_id = trace_id
                sp.span_id = next_id(8)
                sp.parent_span_id = parent
                parent = sp.span_id
                sp.trace_state = "vendor=v%d" % i
                sp.flags = 0x101
                sp.name = "op-%s-%d-%d-%d" % (tag, r, s, i)
                sp.kind = i % 6
                sp.start_time_unix_nano = 1_700_000_000_000_000_000 + i
                sp.end_time_unix_nano = sp.start_time_unix_nano + 1_500_000
                sp.attributes.extend(all_value_types("%s-%d" % (tag, i)))
                sp.dropped_attributes_count = i
                for e in range(2):
                    ev = sp.events.add()
                    ev.time_unix_nano = sp.start_time_unix_nano + e
                    ev.name = "event-%d" % e
                    ev.attributes.append(kv("ev.n", int_value=e))
                    ev.dropped_attributes_count = e
                sp.dropped_events_count = 1
                link = sp.links.add()
                link.trace_id = next_id(16)
                link.span_id = next_id(8)
                link.trace_state = "linked=1"
                link.attributes.append(kv("link.kind", string_value="follows"))
                link.dropped_attributes_count = 2
                link.flags = 0x301
                sp.dropped_links_count = 3
                sp.status.code = i % 3
                sp.status.message = "error %d" % i if i % 3 == 2 else ""
    return req


def single_span_request(name, attr_value=None, **attrs):
    """One resource, one scope, one span named |name|; extra attributes as AnyValue
    kwargs under key "payload" (attr_value) or by key (attrs: key -> AnyValue)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", string_value="single"))
    sp = rs.scope_spans.add().spans.add()
    sp.trace_id = next_id(16)
    sp.span_id = next_id(8)
    sp.name = name
    sp.kind = trace_pb2.Span.SPAN_KIND_SERVER
    sp.start_time_unix_nano = 1_700_000_000_000_000_000
    sp.end_time_unix_nano = sp.start_time_unix_nano + 1000
    if attr_value is not None:
        sp.attributes.append(KeyValue(key="payload", value=attr_value))
    for key, value in attrs.items():
        sp.attributes.append(KeyValue(key=key, value=value))
    return req


def spans_by_id(request_or_triples):
    """{span_id: (Resource, resource schema_url, Scope, scope schema_url, Span)}.
    Takes a request or a sink's [(ResourceSpans, ScopeSpans, Span)]; a span id
    seen twice raises (delivered more than once)."""
    if isinstance(request_or_triples, ExportTraceServiceRequest):
        triples = [(rs, ss, sp) for rs in request_or_triples.resource_spans
                   for ss in rs.scope_spans for sp in ss.spans]
    else:
        triples = request_or_triples
    out = {}
    for rs, ss, sp in triples:
        if sp.span_id in out:
            raise AssertionError("span %s (%s) seen more than once"
                                 % (sp.span_id.hex(), sp.name))
        out[sp.span_id] = (rs.resource, rs.schema_url, ss.scope, ss.schema_url, sp)
    return out


# --- every signal

TRACES = otlp_sink.TRACES
METRICS = otlp_sink.METRICS
LOGS = otlp_sink.LOGS
ALL_SIGNALS = (TRACES, METRICS, LOGS)


class SignalInfo:
    """What the tests need to know of one signal."""

    def __init__(self, name, method, request_cls, response_cls, items_word, http_path):
        self.name = name
        self.method = method                # gRPC method path
        self.request_cls = request_cls      # Export*ServiceRequest
        self.response_cls = response_cls    # Export*ServiceResponse
        self.items_word = items_word        # in lookout_receiver_accepted_<word>_total
        self.http_path = http_path          # OTLP/HTTP path


SIGNALS = {
    TRACES: SignalInfo(TRACES, otlp_sink.TRACE_METHOD, ExportTraceServiceRequest,
                       ExportTraceServiceResponse, "spans", "/v1/traces"),
    METRICS: SignalInfo(METRICS, otlp_sink.METRICS_METHOD,
                        metrics_service_pb2.ExportMetricsServiceRequest,
                        metrics_service_pb2.ExportMetricsServiceResponse,
                        "metric_points", "/v1/metrics"),
    LOGS: SignalInfo(LOGS, otlp_sink.LOGS_METHOD, logs_service_pb2.ExportLogsServiceRequest,
                     logs_service_pb2.ExportLogsServiceResponse, "log_records", "/v1/logs"),
}

# Every item a builder below makes carries TEST_REQ_KEY = its request's tag (on
# spans, metric data points and log records, and on each resource), so that items
# of different requests can be told apart at the sink; log records also carry
# TEST_ITEM_KEY, unique per record, as their key.
TEST_REQ_KEY = "test.req"
TEST_ITEM_KEY = "test.item"

count_items = otlp_sink.count_items
request_items = otlp_sink.request_items

_T0 = 1_700_000_000_000_000_000   # a time in ns since the epoch

METRIC_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
# Data points per metric kind in make_metrics_request, all different so that a
# miscount of one kind shows.
METRIC_POINTS = {"gauge": 2, "sum": 3, "histogram": 4, "exponential_histogram": 5, "summary": 6}


def _resource(res, tag, r):
    res.attributes.extend([
        kv("service.name", string_value="svc-%s-%d" % (tag, r)),
        kv(TEST_REQ_KEY, string_value=tag),
        kv("host.cpus", int_value=8),
    ] + all_value_types("res-%s-%d" % (tag, r)))
    res.dropped_attributes_count = r


def _scope(scope, s):
    scope.name = "lib-%d" % s
    scope.version = "1.%d.0" % s
    scope.attributes.append(kv("scope.attr", string_value="s%d" % s))
    scope.dropped_attributes_count = s


def _exemplar(ex, i):
    ex.filtered_attributes.append(kv("ex.attr", string_value="e%d" % i))
    ex.time_unix_nano = _T0 + 10 + i
    if i % 2:
        ex.as_int = -(2 ** 61) + i
    else:
        ex.as_double = 0.125 + i
    ex.span_id = next_id(8)
    ex.trace_id = next_id(16)


def add_metric(scope_metrics, kind, name, tag, npoints):
    """Appends a Metric of |kind| (one of METRIC_KINDS) named |name| with |npoints|
    data points, each filled in every field its kind has; returns the Metric."""
    m = scope_metrics.metrics.add()
    m.name = name
    m.description = "description of %s" % name
    m.unit = {"gauge": "1", "sum": "By", "histogram": "ms",
              "exponential_histogram": "s", "summary": "{request}"}[kind]
    m.metadata.append(kv("meta.kind", string_value=kind))
    data = getattr(m, kind)
    if kind == "sum":
        data.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        data.is_monotonic = True
    elif kind in ("histogram", "exponential_histogram"):
        data.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    for i in range(npoints):
        dp = data.data_points.add()
        dp.attributes.extend([kv(TEST_REQ_KEY, string_value=tag), kv("point", int_value=i)])
        dp.start_time_unix_nano = _T0
        dp.time_unix_nano = _T0 + 1000 + i
        dp.flags = 1 if i == 1 else 0
        if kind in ("gauge", "sum"):
            if i % 2:
                dp.as_int = -(2 ** 62) + i
            else:
                dp.as_double = 2.5 * i - 0.75
            _exemplar(dp.exemplars.add(), i)
        elif kind == "histogram":
            dp.count = 6 + i
            dp.bucket_counts.extend([1, 2, 3 + i])
            dp.explicit_bounds.extend([0.5, 10.0])
            if i % 2 == 0:   # optional sum/min/max: present on half the points
                dp.sum = 12.5 + i
                dp.min = 0.25
                dp.max = 11.0 + i
            _exemplar(dp.exemplars.add(), i)
        elif kind == "exponential_histogram":
            dp.count = 8 + i
            dp.scale = i - 2
            dp.zero_count = 1
            dp.zero_threshold = 1e-9
            dp.positive.offset = -3 + i
            dp.positive.bucket_counts.extend([1, 0, 2 + i])
            dp.negative.offset = 2
            dp.negative.bucket_counts.extend([4])
            if i % 2 == 0:
                dp.sum = -3.5 + i
                dp.min = -8.0
                dp.max = 6.0 + i
            _exemplar(dp.exemplars.add(), i)
        else:
            dp.count = 10 + i
            dp.sum = 99.5 + i
            for q, v in ((0.0, 0.5), (0.5, 2.0 + i), (1.0, 9.25 + i)):
                qv = dp.quantile_values.add()
                qv.quantile = q
                qv.value = v
    return m


def make_metrics_request(tag, resources=2, scopes=2, kinds=METRIC_KINDS, points=None):
    """resources x scopes scopes, each with one metric of every kind in |kinds|,
    with points[kind] (default METRIC_POINTS) data points each. Metric names are
    unique (they are the metrics' keys)."""
    points = dict(METRIC_POINTS, **(points or {}))
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    for r in range(resources):
        rm = req.resource_metrics.add()
        rm.schema_url = "https://opentelemetry.io/schemas/1.21.0"
        _resource(rm.resource, tag, r)
        for s in range(scopes):
            sm = rm.scope_metrics.add()
            sm.schema_url = "https://example.test/scope/%d" % s
            _scope(sm.scope, s)
            for kind in kinds:
                add_metric(sm, kind, "test.%s.%d.%d.%s" % (tag, r, s, kind), tag, points[kind])
    return req


def _log_body(body, tag, i):
    which = i % 8
    if which == 0:
        body.string_value = "log line %s %d: h\u00e9llo \u4e16\u754c" % (tag, i)
    elif which == 1:
        body.kvlist_value.values.extend([kv("msg", string_value="structured %s" % tag),
                                         kv("n", int_value=i)])
    elif which == 2:
        body.array_value.values.extend([AnyValue(string_value="a"), AnyValue(int_value=i)])
    elif which == 3:
        body.bytes_value = b"\x00\xff" + tag.encode()
    elif which == 4:
        body.int_value = -(2 ** 63)
    elif which == 5:
        body.double_value = -1.5e300
    elif which == 6:
        body.bool_value = False
    # 7: no body at all


def make_logs_request(tag, resources=2, scopes=2, records=3):
    """resources x scopes x records log records with bodies of every kind (none
    included), every field filled on some of them."""
    req = logs_service_pb2.ExportLogsServiceRequest()
    n = 0
    for r in range(resources):
        rl = req.resource_logs.add()
        rl.schema_url = "https://opentelemetry.io/schemas/1.21.0"
        _resource(rl.resource, tag, r)
        for s in range(scopes):
            sl = rl.scope_logs.add()
            sl.schema_url = "https://example.test/scope/%d" % s
            _scope(sl.scope, s)
            for i in range(records):
                lr = sl.log_records.add()
                if i % 3 != 2:   # a record without a time is valid
                    lr.time_unix_nano = _T0 + i
                lr.observed_time_unix_nano = _T0 + 5 + i
                lr.severity_number = (9, 13, 17, 5, 21, 1)[n % 6]
                lr.severity_text = ("INFO", "WARN", "ERROR", "DEBUG", "FATAL", "")[n % 6]
                _log_body(lr.body, tag, n)
                lr.attributes.extend([kv(TEST_REQ_KEY, string_value=tag),
                                      kv(TEST_ITEM_KEY, string_value="%s/%d/%d/%d" % (tag, r, s, i))])
                if n % 4 == 0:
                    lr.attributes.extend(all_value_types("%s-%d" % (tag, n)))
                lr.dropped_attributes_count = i
                if i % 2 == 0:
                    lr.flags = 1
                    lr.trace_id = next_id(16)
                    lr.span_id = next_id(8)
                if i % 2 == 1:
                    lr.event_name = "event.%s.%d" % (tag, i)
                n += 1
    return req


def make_signal_request(signal, tag, resources=2, scopes=2, per_scope=3):
    """A request of |signal| full of data, every item marked with TEST_REQ_KEY =
    |tag|: make_request (traces, per_scope spans), make_metrics_request (one
    metric of each kind per scope; per_scope unused) or make_logs_request."""
    if signal == TRACES:
        req = make_request(tag, resources, scopes, per_scope)
        for rs in req.resource_spans:
            rs.resource.attributes.append(kv(TEST_REQ_KEY, string_value=tag))
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    sp.attributes.append(kv(TEST_REQ_KEY, string_value=tag))
        return req
    if signal == METRICS:
        return make_metrics_request(tag, resources, scopes)
    return make_logs_request(tag, resources, scopes, per_scope)


def _attr(attributes, key):
    for a in attributes:
        if a.key == key:
            return a.value.string_value
    return None


def item_key(signal, item):
    """What tells items apart: span_id, metric name, or TEST_ITEM_KEY of a log."""
    if signal == TRACES:
        return item.span_id
    if signal == METRICS:
        return item.name
    return _attr(item.attributes, TEST_ITEM_KEY)


def items_by_key(signal, request_or_triples):
    """{key: (resource, resource schema_url, scope, scope schema_url, item)} for a
    request or a sink's items(signal); a key seen twice raises (delivered twice)."""
    if isinstance(request_or_triples, SIGNALS[signal].request_cls):
        triples = request_items(signal, request_or_triples)
    else:
        triples = request_or_triples
    out = {}
    for rl, sl, item in triples:
        key = item_key(signal, item)
        if key is None:
            raise AssertionError("%s item without a key: %s" % (signal, item))
        if key in out:
            raise AssertionError("%s item %r seen more than once" % (signal, key))
        out[key] = (rl.resource, rl.schema_url, sl.scope, sl.schema_url, item)
    return out


def item_tags(signal, triples):
    """Every TEST_REQ_KEY value found on the items (and their resources) of
    |triples|."""
    tags = set()
    for rl, _, item in triples:
        tags.add(_attr(rl.resource.attributes, TEST_REQ_KEY))
        if signal == METRICS:
            kind = item.WhichOneof("data")
            if kind:
                for dp in getattr(item, kind).data_points:
                    tags.add(_attr(dp.attributes, TEST_REQ_KEY))
        else:
            tags.add(_attr(item.attributes, TEST_REQ_KEY))
    tags.discard(None)
    return tags


# --- requests with bad items (partial success)

# Spliced over a same-length placeholder in a serialized request: each is
# invalid UTF-8 in a different way (bad continuation, overlong encoding, UTF-16
# surrogate, beyond U+10FFFF, lone continuation byte, sequence cut short, 0xFF).
PLACEHOLDER = b"PLCHLDR!"
BAD_UTF8 = [b"ab\xc3\x28cdef", b"ab\xc0\xafcdef", b"ab\xed\xa0\x80def", b"a\xf4\x90\x80\x80def",
            b"abc\x80defg", b"abcdefg\xe2", b"\xff\xfeabcdef"]
for _b in BAD_UTF8:
    assert len(_b) == len(PLACEHOLDER)
_P = PLACEHOLDER.decode()
ITEM_FIELDS = otlp_sink.ITEM_FIELDS   # (resource, scope, item) field names per signal


def set_req_tag(attributes, tag):
    """Sets the TEST_REQ_KEY attribute in |attributes| to |tag|."""
    for a in attributes:
        if a.key == TEST_REQ_KEY:
            a.value.string_value = tag


def retag_item(signal, item, tag):
    """Marks |item| (and, for a metric, each of its data points) with TEST_REQ_KEY
    = |tag|, so the sink can be checked for it."""
    if signal == METRICS:
        kind = item.WhichOneof("data")
        for dp in getattr(item, kind).data_points:
            set_req_tag(dp.attributes, tag)
    else:
        set_req_tag(item.attributes, tag)


def break_utf8(signal, item):
    """Puts PLACEHOLDER into a string field of |item|; the serialized request must
    then go through splice_bad_utf8."""
    if signal == TRACES:
        item.name = _P
    elif signal == METRICS:
        item.description = _P
    else:
        item.severity_text = _P
    return {TRACES: "name", METRICS: "description", LOGS: "severity_text"}[signal]


def break_id(signal, item):
    """Gives |item| an id of the wrong length; returns the path under the item and
    the validator's detail."""
    if signal == TRACES:
        item.trace_id = b"\x01" * 15
        return "trace_id", "length 15, want 16 or 0"
    if signal == METRICS:
        kind = item.WhichOneof("data")
        getattr(item, kind).data_points[0].exemplars[0].span_id = b"\x07" * 7
        return "%s.data_points[0].exemplars[0].span_id" % kind, "length 7, want 8 or 0"
    item.span_id = b"\x09" * 7
    return "span_id", "length 7, want 8 or 0"


def splice_bad_utf8(raw, n=0):
    """Replaces each PLACEHOLDER in |raw| with invalid UTF-8."""
    for i in range(raw.count(PLACEHOLDER)):
        raw = raw.replace(PLACEHOLDER, BAD_UTF8[(n + i) % len(BAD_UTF8)], 1)
    return raw


def item_at(signal, request, r, s, i):
    """Item i of scope s of resource r."""
    res_field, scope_field, item_field = ITEM_FIELDS[signal]
    return getattr(getattr(getattr(request, res_field)[r], scope_field)[s], item_field)[i]


def item_path(signal, r, s, i):
    """The path of item i of scope s of resource r, as the agent names it."""
    res_field, scope_field, item_field = ITEM_FIELDS[signal]
    return "%s[%d].%s[%d].%s[%d]" % (res_field, r, scope_field, s, item_field, i)


def drop_items(signal, request, doomed):
    """A copy of |request| without the items at the (r, s, i) positions in
    |doomed|, and without the scopes and resources that held nothing else: what
    the agent forwards of it."""
    res_field, scope_field, item_field = ITEM_FIELDS[signal]
    out = copy.deepcopy(request)
    for r, rl in reversed(list(enumerate(getattr(out, res_field)))):
        scopes = getattr(rl, scope_field)
        had_scopes = len(scopes) > 0
        for s, sl in reversed(list(enumerate(scopes))):
            items = getattr(sl, item_field)
            had_items = len(items) > 0
            for i in reversed(range(len(items))):
                if (r, s, i) in doomed:
                    del items[i]
            if had_items and not items:
                del scopes[s]
        if had_scopes and not scopes:
            del getattr(out, res_field)[r]
    return out


# --- byte-counting TCP proxy

class CountingProxy:
    """Forwards TCP connections from its own port to 127.0.0.1:|target_port| and
    counts the bytes sent towards the target (upstream), to see what went on the
    wire (e.g. whether gRPC messages were compressed)."""

    def __init__(self, target_port, record=False):
        """|record|: keep the bytes of each upstream connection (upstream_streams)."""
        self.target_port = target_port
        self.upstream_bytes = 0
        self.record = record
        self.upstream_streams = []   # bytearray per connection, with |record|
        self._lock = threading.Lock()
        self._socks = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            seen = bytearray()
            with self._lock:
                self._socks += [client, server]
                if self.record:
                    self.upstream_streams.append(seen)
            threading.Thread(target=self._pump, args=(client, server, seen), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, src, dst, upstream):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream is not None:
                    with self._lock:
                        self.upstream_bytes += len(data)
                        if self.record:
                            upstream += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._closed = True
        self._listener.close()
        with self._lock:
            for s in self._socks:
                s.close()

    def grpc_messages(self):
        """(compressed flag, length) of every gRPC message the client sent, read
        from the recorded HTTP/2 DATA frames (needs record=True)."""
        with self._lock:
            streams = [bytes(b) for b in self.upstream_streams]
        out = []
        for data in streams:
            out += h2_grpc_messages(data)
        return out


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_grpc_messages(data):
    """(compressed flag, length) of each complete gRPC message in the DATA frames
    of a client's HTTP/2 byte stream, stream by stream, in order of arrival."""
    if not data.startswith(H2_PREFACE):
        raise AssertionError("not an HTTP/2 client stream")
    pos, bodies, order = len(H2_PREFACE), {}, []
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        stream = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7fffffff
        payload = data[pos + 9:pos + 9 + length]
        if len(payload) < length:
            break
        pos += 9 + length
        if ftype != 0:   # DATA only
            continue
        if flags & 0x8:  # PADDED
            payload = payload[1:len(payload) - payload[0]]
        if stream not in bodies:
            bodies[stream] = b""
            order.append(stream)
        bodies[stream] += payload
    out = []
    for stream in order:
        body = bodies[stream]
        while len(body) >= 5:
            n = int.from_bytes(body[1:5], "big")
            if len(body) < 5 + n:
                break
            out.append((body[0], n))
            body = body[5 + n:]
    return out


# --- suite runner (run.sh)

def main(argv):
    """Runs every test_*.py here (or the unittest names in argv); writes
    "passed failed" to $LOOKOUT_RESULT if set; returns the exit status."""
    def on_term(signum, _frame):
        _kill_live_agents()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    loader = unittest.TestLoader()
    if argv:
        suite = loader.loadTestsFromNames(argv)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed_ids = set()
    for test, _ in result.failures + result.errors:
        failed_ids.add(getattr(test, "test_case", test).id())
    for test in result.unexpectedSuccesses:
        failed_ids.add(test.id())
    failed = len(failed_ids)
    passed = max(result.testsRun - failed - len(result.skipped), 0)
    out = os.environ.get("LOOKOUT_RESULT")
    if out:
        with open(out, "w") as f:
            f.write("%d %d\n" % (passed, failed))
    return 1 if failed or result.testsRun == 0 else 0


# --- an agent on a configuration written by the test (logs: lines, loki)

class YamlAgent(Agent):
    """build/lookout on a configuration the test writes whole. |body| is the YAML
    after the top-level admin section (receivers, exporters, pipelines); in it
    @GRPC_PORT@, @HTTP_PORT@ and @DIR@ (the agent's temp dir, short enough for
    Unix socket paths) are replaced. Everything else is Agent's: start(),
    wait_ready(), metrics(), metric(), stop(), kill(), log_tail()."""

    def __init__(self, body, shutdown_timeout="5s", log_level="debug"):
        if not os.access(BIN, os.X_OK):
            raise AssertionError("%s not found or not executable: run `make` first" % BIN)
        self.grpc_port, self.admin_port, self.http_port = free_ports(3)
        self.sink_port = None
        self.signals = ()
        self.settings = dict(CONFIG_DEFAULTS, shutdown_timeout=shutdown_timeout)
        self.http_settings = None
        # sun_path is at most 104 bytes on macOS: keep the directory short.
        self.dir = tempfile.mkdtemp(prefix="lk-", dir="/tmp")
        body = (body.replace("@GRPC_PORT@", str(self.grpc_port))
                    .replace("@HTTP_PORT@", str(self.http_port))
                    .replace("@DIR@", self.dir))
        self.config_text = ("log_level: %s\nshutdown_timeout: %s\nadmin:\n"
                            "  endpoint: 127.0.0.1:%d\n" % (log_level, shutdown_timeout,
                                                            self.admin_port)) + body
        self.config_path = os.path.join(self.dir, "lookout.yaml")
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.proc = None

    def check_config(self):
        """(exit status, stderr) of `lookout --check-config` on this config."""
        r = run_agent_cli("--check-config", "-c", self.config_path)
        return r.returncode, r.stderr


def process_name(pid):
    """The kernel's name of process |pid| (Linux: /proc/PID/comm, the basename of
    the file it executed, at most 15 bytes), or ps's on other systems."""
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().rstrip("\n")
    except OSError:
        out = subprocess.run(["ps", "-o", "comm=", "-p", str(pid)], capture_output=True,
                             text=True).stdout.strip()
        return os.path.basename(out)


# --- reliability tests (test_hostile, test_overload, test_backends)

# The documented overhead above `memory_limit`: peak RSS must stay within
# memory_limit plus this. The one place to set it (from measurements:
# docs/testing.md, "Reliability").
MEMORY_OVERHEAD_MIB = 64
# memory_limit when the config does not say (docs/configuration.md).
DEFAULT_MEMORY_LIMIT_MIB = 256
# How much slower than its normal latency a well-behaved client may be served
# while others misbehave (seconds).
LATENCY_SLACK = 1.0


def result_line(test, **fields):
    """Prints the one summary line of a reliability test, for quoting:
    RESULT test sent=... acked=... delivered=... dropped=... peak_rss_mib=...
    worst_latency_ms=..."""
    parts = ["%s=%s" % (k, ("%.1f" % v) if isinstance(v, float) else v)
             for k, v in fields.items()]
    line = "RESULT %s %s" % (test, " ".join(parts))
    print(line, flush=True)
    out = os.environ.get("LOOKOUT_RESULTS_FILE")
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")
    return line


def _proc_status_kib(pid, field):
    """VmRSS, VmHWM ... of process |pid| in KiB (Linux), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kib(pid):
    """Resident set size of |pid| in KiB: /proc/PID/status VmRSS on Linux, ps
    elsewhere; None once it is gone."""
    v = _proc_status_kib(pid, "VmRSS")
    if v is not None:
        return v
    if sys.platform.startswith("linux"):
        return None
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True,
                         text=True).stdout.strip()
    return int(out) if out.isdigit() else None


class RssSampler:
    """Samples the RSS of |pid| every |interval| s in a thread from start() to
    stop(); peak_mib() is the larger of the highest sample and VmHWM (the
    kernel's own high-water mark, which sees peaks between samples)."""

    def __init__(self, pid, interval=0.02):
        self.pid = pid
        self.interval = interval
        self.samples = []
        self.hwm_kib = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            v = rss_kib(self.pid)
            if v is None:
                return
            self.samples.append(v)
            self._stop.wait(self.interval)

    def stop(self):
        """Stops sampling (call while the process still runs, for VmHWM)."""
        self.hwm_kib = _proc_status_kib(self.pid, "VmHWM")
        self._stop.set()
        self._thread.join(5)
        return self

    def peak_mib(self):
        peak = max(self.samples + [self.hwm_kib or 0]) if self.samples else (self.hwm_kib or 0)
        return peak / 1024.0


def agent_rejects(config_text):
    """None when `lookout --check-config` accepts |config_text|, else its stderr
    (used to skip the tests of features the agent does not have yet)."""
    d = tempfile.mkdtemp(prefix="lk-chk-", dir="/tmp")
    try:
        path = os.path.join(d, "lookout.yaml")
        with open(path, "w") as f:
            f.write(config_text)
        r = run_agent_cli("--check-config", "-c", path)
        return None if r.returncode == 0 else (r.stderr.strip() or "exit %d" % r.returncode)
    finally:
        shutil.rmtree(d, True)


def skip_unless_accepted(case, config_text, feature):
    """Skips |case| when the agent rejects |config_text| (the feature is not
    built yet); says which feature and what the agent said."""
    err = agent_rejects(config_text)
    if err is not None:
        case.skipTest("waiting on %s: lookout --check-config says: %s"
                      % (feature, err.splitlines()[-1] if err else ""))


def raise_fd_limit(want=16384):
    """Raises this process's soft RLIMIT_NOFILE towards |want| (children, the
    agent among them, inherit it); returns the soft limit in force."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# --- protobuf wire reading (google.rpc.Status and RetryInfo without generated code)

def pb_fields(data):
    """[(field number, wire type, value)] of a protobuf message: ints for
    varints and fixed, bytes for length-delimited. Raises ValueError when
    malformed."""
    out, pos = [], 0

    def varint():
        nonlocal pos
        v, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 63:
                raise ValueError("truncated varint")
            b = data[pos]
            pos += 1
            v |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                return v
    while pos < len(data):
        key = varint()
        num, wt = key >> 3, key & 7
        if wt == 0:
            out.append((num, wt, varint()))
        elif wt == 2:
            n = varint()
            if pos + n > len(data):
                raise ValueError("truncated field %d" % num)
            out.append((num, wt, data[pos:pos + n]))
            pos += n
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            if pos + n > len(data):
                raise ValueError("truncated field %d" % num)
            out.append((num, wt, int.from_bytes(data[pos:pos + n], "little")))
            pos += n
        else:
            raise ValueError("wire type %d" % wt)
    return out


RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


def parse_rpc_status(data):
    """google.rpc.Status bytes -> (code, message, {type_url: value bytes})."""
    code, message, details = 0, "", {}
    for num, wt, v in pb_fields(data):
        if num == 1 and wt == 0:
            code = v
        elif num == 2 and wt == 2:
            message = v.decode("utf-8", "replace")
        elif num == 3 and wt == 2:
            url, value = "", b""
            for n2, w2, v2 in pb_fields(v):
                if n2 == 1 and w2 == 2:
                    url = v2.decode()
                elif n2 == 2 and w2 == 2:
                    value = v2
            details[url] = value
    return code, message, details


def retry_delay_of(status_bytes):
    """The RetryInfo.retry_delay (seconds, float) in a google.rpc.Status, or None
    when it has no RetryInfo detail."""
    _, _, details = parse_rpc_status(status_bytes)
    if RETRY_INFO_TYPE not in details:
        return None
    seconds = nanos = 0
    for num, wt, v in pb_fields(details[RETRY_INFO_TYPE]):
        if num == 1 and wt == 2:   # retry_delay: google.protobuf.Duration
            for n2, w2, v2 in pb_fields(v):
                if n2 == 1 and w2 == 0:
                    seconds = v2
                elif n2 == 2 and w2 == 0:
                    nanos = v2
    return seconds + nanos / 1e9


def b64_header(value):
    """A -bin header's value (base64, padding optional) as bytes."""
    import base64
    if isinstance(value, bytes):
        return value   # grpcio hands -bin metadata over decoded already
    return base64.b64decode(value + "=" * (-len(value) % 4))


def grpc_error_retry_delay(err):
    """RetryInfo delay (s) in the grpc-status-details-bin trailer of a
    grpc.RpcError, or None."""
    for key, value in (err.trailing_metadata() or ()):
        if key == "grpc-status-details-bin":
            return retry_delay_of(b64_header(value))
    return None


def rpc_status_message(code, message="", retry_delay=None):
    """Serialized google.rpc.Status, with a RetryInfo detail when |retry_delay|
    (seconds) is given: what a backend sends in grpc-status-details-bin."""
    def varint(v):
        out = bytearray()
        while True:
            b = v & 0x7f
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)

    def field(num, payload):
        return varint(num << 3 | 2) + varint(len(payload)) + payload
    out = varint(1 << 3) + varint(code)
    if message:
        out += field(2, message.encode())
    if retry_delay is not None:
        secs = int(retry_delay)
        nanos = int(round((retry_delay - secs) * 1e9))
        duration = (varint(1 << 3) + varint(secs) if secs else b"") + \
            (varint(2 << 3) + varint(nanos) if nanos else b"")
        any_ = field(1, RETRY_INFO_TYPE.encode()) + field(2, field(1, duration))
        out += field(3, any_)
    return out


# --- a raw HTTP/2 client (hand-written framing; nghttp2's HPACK decoder via ctypes)

class _Hpack:
    """HPACK: header blocks are encoded here as literals without indexing (no
    Huffman, no table: any server can read them); the server's blocks are
    decoded with libnghttp2's inflater through ctypes (one per connection)."""

    _lib = None

    @classmethod
    def lib(cls):
        if cls._lib is None:
            import ctypes
            import ctypes.util
            names = [ctypes.util.find_library("nghttp2"), "libnghttp2.so.14",
                     "libnghttp2.14.dylib", "/opt/homebrew/lib/libnghttp2.dylib",
                     "/usr/local/lib/libnghttp2.dylib"]
            for name in names:
                if not name:
                    continue
                try:
                    cls._lib = ctypes.CDLL(name)
                    break
                except OSError:
                    continue
            if cls._lib is None:
                raise AssertionError("libnghttp2 not found (its HPACK decoder reads the "
                                     "agent's response headers)")
        return cls._lib

    _NV = None
    _NV_LOCK = threading.Lock()

    @classmethod
    def nv_type(cls):
        """nghttp2_nv, declared once (ctypes checks pointer types by identity;
        clients on several threads must not each declare their own)."""
        with cls._NV_LOCK:
            return cls._nv_type_locked()

    @classmethod
    def _nv_type_locked(cls):
        if cls._NV is None:
            import ctypes

            class NV(ctypes.Structure):
                _fields_ = [("name", ctypes.POINTER(ctypes.c_uint8)),
                            ("value", ctypes.POINTER(ctypes.c_uint8)),
                            ("namelen", ctypes.c_size_t), ("valuelen", ctypes.c_size_t),
                            ("flags", ctypes.c_uint8)]
            lib = cls.lib()
            lib.nghttp2_hd_inflate_hd2.restype = ctypes.c_ssize_t
            lib.nghttp2_hd_inflate_hd2.argtypes = [ctypes.c_void_p, ctypes.POINTER(NV),
                                                   ctypes.POINTER(ctypes.c_int),
                                                   ctypes.c_void_p, ctypes.c_size_t,
                                                   ctypes.c_int]
            lib.nghttp2_hd_inflate_new.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
            lib.nghttp2_hd_inflate_end_headers.argtypes = [ctypes.c_void_p]
            lib.nghttp2_hd_inflate_del.argtypes = [ctypes.c_void_p]
            cls._NV = NV
        return cls._NV

    def __init__(self):
        import ctypes
        self.ct = ctypes
        self.NV = self.nv_type()
        lib = self.lib()
        self.inflater = ctypes.c_void_p()
        if lib.nghttp2_hd_inflate_new(ctypes.byref(self.inflater)) != 0:
            raise AssertionError("nghttp2_hd_inflate_new failed")

    @staticmethod
    def _int(v, prefix_bits, first):
        limit = (1 << prefix_bits) - 1
        if v < limit:
            return bytes([first | v])
        out = bytearray([first | limit])
        v -= limit
        while v >= 128:
            out.append((v & 0x7f) | 0x80)
            v >>= 7
        out.append(v)
        return bytes(out)

    @classmethod
    def encode(cls, headers):
        out = bytearray()
        for name, value in headers:
            name = name.encode() if isinstance(name, str) else name
            value = value.encode() if isinstance(value, str) else value
            out += b"\x00" + cls._int(len(name), 7, 0) + name + cls._int(len(value), 7, 0) + value
        return bytes(out)

    def decode(self, block):
        """[(name, value)] (str) of one complete header block."""
        ct, lib = self.ct, self.lib()
        nv = self.NV()
        flags = ct.c_int(0)
        out, pos = [], 0
        buf = ct.create_string_buffer(block, len(block))
        base = ct.addressof(buf)
        while True:
            n = lib.nghttp2_hd_inflate_hd2(self.inflater, ct.byref(nv), ct.byref(flags),
                                           base + pos, len(block) - pos, 1)
            if n < 0:
                raise ValueError("HPACK decoding failed: %d" % n)
            pos += n
            if flags.value & 0x02:   # NGHTTP2_HD_INFLATE_EMIT
                out.append((ct.string_at(nv.name, nv.namelen).decode("latin-1"),
                            ct.string_at(nv.value, nv.valuelen).decode("latin-1")))
            if flags.value & 0x01:   # NGHTTP2_HD_INFLATE_FINAL
                lib.nghttp2_hd_inflate_end_headers(self.inflater)
                return out
            if n == 0 and pos >= len(block):
                return out

    def close(self):
        if self.inflater:
            self.lib().nghttp2_hd_inflate_del(self.inflater)
            self.inflater = None


class H2Stream:
    def __init__(self, sid, body):
        """|body|: bytes, or a list of bytes sent one after the other (so that
        many streams can share one large part without copies)."""
        self.id = sid
        if body is None:
            self.parts = None
        else:
            self.parts = [memoryview(p) for p in (body if isinstance(body, list) else [body])]
        self.size = sum(len(p) for p in self.parts) if self.parts is not None else 0
        self.sent = 0
        self.window = 0
        self.headers = []           # response headers, then trailers
        self.data = bytearray()
        self.rst = None             # RST_STREAM error code
        self.closed = False         # END_STREAM or RST_STREAM seen
        self.done_at = None

    @property
    def body(self):
        return self.parts

    def take(self, n):
        """The next |n| bytes of the body (from self.sent), as bytes."""
        out, pos, need = bytearray(), self.sent, n
        for p in self.parts:
            if pos >= len(p):
                pos -= len(p)
                continue
            chunk = p[pos:pos + need]
            out += chunk
            need -= len(chunk)
            pos = 0
            if need == 0:
                break
        return bytes(out)

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def grpc_status(self):
        v = self.header("grpc-status")
        return int(v) if v is not None else None

    @property
    def http_status(self):
        v = self.header(":status")
        return int(v) if v is not None else None

    def retry_delay(self):
        v = self.header("grpc-status-details-bin")
        return retry_delay_of(b64_header(v)) if v is not None else None


class H2Client:
    """One HTTP/2 connection (h2c, prior knowledge) written frame by frame, for
    what grpcio will not do: many huge uploads on one connection honouring the
    server's flow control exactly, a message prefix declaring 1 GiB, a gzip bomb
    as a gRPC message, a client that never reads. With read=False nothing is
    read from the socket, ever (not even SETTINGS)."""

    def __init__(self, host, port, read=True, window=1 << 24, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)
        self.read = read
        self.cond = threading.Condition()
        self.streams = {}
        self.next_id = 1
        self.conn_window = 65535
        self.peer_initial_window = 65535
        self.peer_max_frame = 16384
        self.peer_max_streams = None
        self.goaway = None
        self.closed = False
        self.wlock = threading.Lock()
        self.hpack = _Hpack() if read else None
        settings = (self._setting(2, 0) + self._setting(4, window))   # no push, our window
        self._send(H2_PREFACE + self._frame(4, 0, 0, settings))
        self._send(self._frame(8, 0, 0, (window).to_bytes(4, "big")))   # +window on the connection
        if read:
            threading.Thread(target=self._reader, daemon=True).start()

    @staticmethod
    def _setting(ident, value):
        return ident.to_bytes(2, "big") + value.to_bytes(4, "big")

    @staticmethod
    def _frame(ftype, flags, sid, payload=b""):
        return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload

    def _send(self, data):
        with self.wlock:
            self.sock.sendall(data)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by the server")
            buf += chunk
        return bytes(buf)

    def _reader(self):
        block, block_sid, block_end = b"", 0, False
        try:
            while True:
                head = self._recv_exact(9)
                length = int.from_bytes(head[:3], "big")
                ftype, flags = head[3], head[4]
                sid = int.from_bytes(head[5:9], "big") & 0x7fffffff
                payload = self._recv_exact(length) if length else b""
                if ftype == 4 and not flags & 1:    # SETTINGS
                    with self.cond:
                        for i in range(0, len(payload) - 5, 6):
                            ident = int.from_bytes(payload[i:i + 2], "big")
                            value = int.from_bytes(payload[i + 2:i + 6], "big")
                            if ident == 4:
                                delta = value - self.peer_initial_window
                                self.peer_initial_window = value
                                for st in self.streams.values():
                                    st.window += delta
                            elif ident == 5:
                                self.peer_max_frame = value
                            elif ident == 3:
                                self.peer_max_streams = value
                        self.cond.notify_all()
                    self._send(self._frame(4, 1, 0))
                elif ftype == 6 and not flags & 1:   # PING
                    self._send(self._frame(6, 1, 0, payload))
                elif ftype == 8:                    # WINDOW_UPDATE
                    inc = int.from_bytes(payload[:4], "big") & 0x7fffffff
                    with self.cond:
                        if sid == 0:
                            self.conn_window += inc
                        elif sid in self.streams:
                            self.streams[sid].window += inc
                        self.cond.notify_all()
                elif ftype in (1, 9):               # HEADERS, CONTINUATION
                    if ftype == 1:
                        p = payload
                        if flags & 0x8:
                            p = p[1:len(p) - p[0]]
                        if flags & 0x20:
                            p = p[5:]
                        block, block_sid, block_end = p, sid, bool(flags & 1)
                    else:
                        block += payload
                    if flags & 0x4:                 # END_HEADERS
                        hs = self.hpack.decode(block)
                        with self.cond:
                            st = self.streams.get(block_sid)
                            if st is not None:
                                st.headers += hs
                                if block_end:
                                    st.closed, st.done_at = True, time.monotonic()
                            self.cond.notify_all()
                elif ftype == 0:                    # DATA
                    p = payload
                    if flags & 0x8:
                        p = p[1:len(p) - p[0]]
                    with self.cond:
                        st = self.streams.get(sid)
                        if st is not None:
                            st.data += p
                            if flags & 1:
                                st.closed, st.done_at = True, time.monotonic()
                        self.cond.notify_all()
                    if length:
                        self._send(self._frame(8, 0, 0, length.to_bytes(4, "big"))
                                   + (self._frame(8, 0, sid, length.to_bytes(4, "big"))
                                      if not flags & 1 else b""))
                elif ftype == 3:                    # RST_STREAM
                    with self.cond:
                        st = self.streams.get(sid)
                        if st is not None:
                            st.rst = int.from_bytes(payload[:4], "big")
                            st.closed, st.done_at = True, time.monotonic()
                        self.cond.notify_all()
                elif ftype == 7:                    # GOAWAY
                    with self.cond:
                        self.goaway = (int.from_bytes(payload[:4], "big") & 0x7fffffff,
                                       int.from_bytes(payload[4:8], "big"))
                        self.cond.notify_all()
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def open(self, path, body, authority="localhost", content_type="application/grpc",
             extra=(), end_stream_with_headers=False):
        """Sends HEADERS for a POST to |path|; |body| is sent later by
        send_bodies() (or nothing at all). Returns the H2Stream."""
        with self.cond:
            sid = self.next_id
            self.next_id += 2
            st = H2Stream(sid, body)
            st.window = self.peer_initial_window
            self.streams[sid] = st
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
                   (":authority", authority), ("content-type", content_type),
                   ("te", "trailers")] + list(extra)
        flags = 0x4 | (0x1 if end_stream_with_headers else 0)
        self._send(self._frame(1, flags, sid, _Hpack.encode(headers)))
        return st

    def send_data(self, st, data, end=False):
        """One DATA frame, whatever the windows say (for hostile clients)."""
        self._send(self._frame(0, 1 if end else 0, st.id, data))

    def send_bodies(self, streams, deadline, stall=None):
        """Sends the bodies of |streams| round robin, DATA frames no larger than
        the server's SETTINGS_MAX_FRAME_SIZE and never past its flow-control
        windows, each stream ended with END_STREAM. Stops at |deadline|
        (monotonic), or when no window opened for |stall| seconds, or when every
        stream is sent or closed by the server. Returns the bytes sent."""
        total = 0
        pending = [st for st in streams if st.body is not None]
        last_progress = time.monotonic()
        while pending and time.monotonic() < deadline:
            progressed = False
            for st in list(pending):
                with self.cond:
                    if st.closed or self.closed:
                        pending.remove(st)
                        continue
                    left = st.size - st.sent
                    n = min(left, self.peer_max_frame, st.window, self.conn_window)
                    if n <= 0 and left > 0:
                        continue
                    st.window -= n
                    self.conn_window -= n
                    chunk = st.take(n)
                    st.sent += n
                    end = st.sent == st.size
                try:
                    self._send(self._frame(0, 1 if end else 0, st.id, chunk))
                except OSError:
                    return total
                total += n
                progressed = True
                if end:
                    pending.remove(st)
            if progressed:
                last_progress = time.monotonic()
            else:
                if stall is not None and time.monotonic() - last_progress > stall:
                    break
                with self.cond:
                    if self.closed:
                        break
                    self.cond.wait(0.05)
        return total

    def wait_closed(self, streams, timeout):
        """Waits until each of |streams| is closed (answered or reset) or the
        connection is; returns the streams still open."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                open_ = [st for st in streams if not st.closed]
                left = deadline - time.monotonic()
                if not open_ or self.closed or left <= 0:
                    return open_
                self.cond.wait(min(left, 0.1))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        if self.hpack is not None:
            self.hpack.close()
            self.hpack = None


def grpc_frame(message, compressed=False, declared=None):
    """A gRPC length-prefixed message; |declared| overrides the length."""
    n = len(message) if declared is None else declared
    return bytes([1 if compressed else 0]) + n.to_bytes(4, "big") + message


# --- well-behaved clients measured in the background

class WellBehaved:
    """One well-behaved client per listener, each calling in its own thread every
    |interval| seconds from start() to stop(), timing every call: an OTLP/gRPC
    export (grpcio, one span), an OTLP/HTTP POST (protobuf, one span, on a
    keep-alive connection), admin GET /healthz and /metrics, and a line written
    to the lines socket. Records what each had acknowledged, so that the test
    can check it arrived."""

    KINDS = ("grpc", "http", "admin", "lines")
    # A connection the agent closed (an idle keep-alive connection evicted at
    # max_connections is fair game) is reopened and the call made again, up to
    # this many times, at once and then after 50, 100 ms: as clients do. The
    # time it takes counts in the call's latency.
    RECONNECTS = 3

    def __init__(self, agent, lines_path=None, interval=0.1, timeout=5.0, tag="wb",
                 refusal_ok=False):
        """|refusal_ok|: a retryable refusal (gRPC UNAVAILABLE with RetryInfo,
        HTTP 503/429 with Retry-After) is an answer, not an error (overload
        tests, where queues are meant to be full); counted in |refusals|."""
        self.agent = agent
        self.refusal_ok = refusal_ok
        self.refusals = 0
        self.lines_path = lines_path
        self.interval = interval
        self.timeout = timeout
        self.tag = tag
        self.lat = {k: [] for k in self.KINDS}        # [(monotonic start, seconds)]
        self.errors = {k: [] for k in self.KINDS}     # [(monotonic, text)]
        self.acked_spans = set()                      # span ids answered OK
        self.lines_written = []
        self.sent = 0                                 # spans and lines sent
        self.mark = None                              # start of the hostile phase
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._n = 0

    def _next(self, item=True):
        """A fresh number; |item|: it names an item sent (span or line)."""
        with self._lock:
            self._n += 1
            if item:
                self.sent += 1
            return self._n

    def _timed(self, kind, fn):
        t0 = time.monotonic()
        try:
            fn()
            ok = True
        except Exception as e:  # any failure of a well-behaved call is a finding
            ok = False
            with self._lock:
                self.errors[kind].append((t0, "%s: %s" % (type(e).__name__, e)))
        with self._lock:
            self.lat[kind].append((t0, time.monotonic() - t0))
        return ok

    def _loop(self, kind, body):
        while not self._stop.is_set():
            self._timed(kind, body)
            self._stop.wait(self.interval)

    def start(self):
        import http.client
        RECONNECTS = self.RECONNECTS
        client = Client(self.agent.grpc_endpoint, own_connection=True)
        self._grpc_client = client
        state = {"http": None, "admin": None, "lines": None}

        def grpc_call():
            req = single_span_request("%s-grpc-%d" % (self.tag, self._next()))
            try:
                client.export(req, timeout=self.timeout)
            except grpc.RpcError as e:
                if not (self.refusal_ok and e.code() == grpc.StatusCode.UNAVAILABLE
                        and grpc_error_retry_delay(e) is not None):
                    raise
                with self._lock:
                    self.refusals += 1
                return
            with self._lock:
                self.acked_spans.add(req.resource_spans[0].scope_spans[0].spans[0].span_id)

        def http_call():
            req = single_span_request("%s-http-%d" % (self.tag, self._next()))
            body = req.SerializeToString()
            for attempt in range(RECONNECTS + 1):
                if state["http"] is None:
                    state["http"] = http.client.HTTPConnection("127.0.0.1", self.agent.http_port,
                                                               timeout=self.timeout)
                try:
                    state["http"].request("POST", "/v1/traces", body,
                                          {"Content-Type": "application/x-protobuf"})
                    r = state["http"].getresponse()
                    r.read()
                except (OSError, http.client.HTTPException):
                    state["http"].close()
                    state["http"] = None
                    if attempt == RECONNECTS:
                        raise
                    time.sleep(0.05 * attempt)   # a keep-alive connection closed (evicted): again
                    continue
                if (self.refusal_ok and r.status in (429, 503)
                        and r.getheader("Retry-After") is not None):
                    with self._lock:
                        self.refusals += 1
                    return
                if r.status != 200:
                    raise AssertionError("POST /v1/traces answered %d" % r.status)
                with self._lock:
                    self.acked_spans.add(req.resource_spans[0].scope_spans[0].spans[0].span_id)
                return

        def admin_call():
            path = "/healthz" if self._next(item=False) % 2 else "/metrics"
            for attempt in range(RECONNECTS + 1):
                if state["admin"] is None:
                    state["admin"] = http.client.HTTPConnection("127.0.0.1", self.agent.admin_port,
                                                                timeout=self.timeout)
                try:
                    state["admin"].request("GET", path)
                    r = state["admin"].getresponse()
                    data = r.read()
                except (OSError, http.client.HTTPException):
                    state["admin"].close()
                    state["admin"] = None
                    if attempt == RECONNECTS:
                        raise
                    time.sleep(0.05 * attempt)
                    continue
                if r.status != 200 or (path == "/metrics" and b"lookout_build_info" not in data):
                    raise AssertionError("GET %s answered %d" % (path, r.status))
                return

        def lines_call():
            line = "%s-line-%d" % (self.tag, self._next())
            for attempt in range(RECONNECTS + 1):
                if state["lines"] is None:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.settimeout(self.timeout)
                    s.connect(self.lines_path)
                    state["lines"] = s
                try:
                    state["lines"].sendall((line + "\n").encode())
                except OSError:
                    state["lines"].close()
                    state["lines"] = None
                    if attempt == RECONNECTS:
                        raise
                    time.sleep(0.05 * attempt)
                    continue
                with self._lock:
                    self.lines_written.append(line)
                return

        self._state = state
        bodies = {"grpc": grpc_call, "http": http_call if self.agent.http_port else None,
                  "admin": admin_call, "lines": lines_call if self.lines_path else None}
        for kind, body in bodies.items():
            if body is None:
                continue
            t = threading.Thread(target=self._loop, args=(kind, body), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def begin_hostile(self, settle=2.0):
        """Lets the clients run |settle| s to measure their normal latency, then
        marks the start of the hostile phase."""
        time.sleep(settle)
        self.mark = time.monotonic()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        for k in ("http", "admin", "lines"):
            if self._state.get(k) is not None:
                self._state[k].close()
        self._grpc_client.close()

    def normal(self, kind):
        """Median latency (s) of |kind| before the hostile phase."""
        before = sorted(d for t, d in self.lat[kind] if self.mark is None or t < self.mark)
        return before[len(before) // 2] if before else 0.0

    def worst(self, kind):
        """Largest latency (s) of |kind| in the hostile phase."""
        during = [d for t, d in self.lat[kind] if self.mark is None or t >= self.mark]
        return max(during) if during else 0.0

    def worst_over_normal(self):
        """(kind, worst - normal) of the kind that suffered most."""
        kinds = [k for k in self.KINDS if self.lat[k]]
        return max(((k, self.worst(k) - self.normal(k)) for k in kinds), key=lambda x: x[1])

    def worst_ms(self):
        return max((self.worst(k) for k in self.KINDS if self.lat[k]), default=0.0) * 1000

    def calls_during(self, kind):
        return sum(1 for t, _ in self.lat[kind] if self.mark is not None and t >= self.mark)

    def report(self):
        return ", ".join("%s: normal %.0f ms, worst %.0f ms, %d calls, %d errors"
                         % (k, self.normal(k) * 1000, self.worst(k) * 1000, len(self.lat[k]),
                            len(self.errors[k])) for k in self.KINDS if self.lat[k])
