"""In-process OTLP/gRPC sink for the integration tests.

A real gRPC server (grpcio, generic handlers) that plays the backend lookout exports
to. It implements the Export method of the trace, metrics and logs services, keeps
every call it sees (raw bytes, decoded request, metadata, the status it answered),
and can be told to fail the next N calls, to answer slowly, or to go down and come
back on the same port.

The generated *_pb2 modules must be importable (helpers.py puts build/pytest-gen on
sys.path). The metrics and logs modules are optional: without them those calls are
still recorded, just not decoded.
"""

import threading
import time
from concurrent import futures

import grpc

TRACES = "traces"
METRICS = "metrics"
LOGS = "logs"

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

_SERVICES = {
    TRACES: ("opentelemetry.proto.collector.trace.v1.TraceService", "trace",
             "ExportTraceServiceRequest", "ExportTraceServiceResponse"),
    METRICS: ("opentelemetry.proto.collector.metrics.v1.MetricsService", "metrics",
              "ExportMetricsServiceRequest", "ExportMetricsServiceResponse"),
    LOGS: ("opentelemetry.proto.collector.logs.v1.LogsService", "logs",
           "ExportLogsServiceRequest", "ExportLogsServiceResponse"),
}


# Field names of (resource level, scope level, item) in each signal's request.
ITEM_FIELDS = {
    TRACES: ("resource_spans", "scope_spans", "spans"),
    METRICS: ("resource_metrics", "scope_metrics", "metrics"),
    LOGS: ("resource_logs", "scope_logs", "log_records"),
}


def request_items(signal, request):
    """[(resource level, scope level, item)] of a decoded request: spans, Metric
    messages or log records, in wire order."""
    res_field, scope_field, item_field = ITEM_FIELDS[signal]
    return [(rl, sl, item) for rl in getattr(request, res_field)
            for sl in getattr(rl, scope_field) for item in getattr(sl, item_field)]


def data_point_count(metric):
    """Data points of a Metric, whichever of its data kinds it holds."""
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def count_items(signal, request):
    """What lookout counts for a request: spans, metric data points or log records."""
    items = request_items(signal, request)
    if signal == METRICS:
        return sum(data_point_count(m) for _, _, m in items)
    return len(items)


def _load_messages(short, req_name, resp_name):
    """Returns (request class, response class) or (None, None) if not generated."""
    mod_name = "opentelemetry.proto.collector.%s.v1.%s_service_pb2" % (short, short)
    try:
        mod = __import__(mod_name, fromlist=[req_name])
    except ImportError:
        return None, None
    return getattr(mod, req_name), getattr(mod, resp_name)


class Call:
    """One Export call as the sink saw it."""

    def __init__(self, signal, raw, request, metadata, code, details):
        self.signal = signal
        self.raw = raw              # bytes after gRPC decompression
        self.request = request      # decoded request, or None
        self.metadata = metadata    # {lower-case key: [values]}
        self.code = code            # grpc.StatusCode answered
        self.details = details
        self.time = time.monotonic()

    @property
    def ok(self):
        return self.code == grpc.StatusCode.OK

    def header(self, name):
        """First value of metadata key |name|, or None."""
        values = self.metadata.get(name.lower())
        return values[0] if values else None


class OtlpSink:
    """Use: sink = OtlpSink(); port = sink.start(); ...; sink.stop().

    Calls the sink answered OK are "accepted"; the others (forced failures,
    undecodable requests) are kept too, so a test can tell retries from deliveries.
    """

    def __init__(self, port=0, host="127.0.0.1", max_recv_bytes=64 << 20, workers=8):
        self.host = host
        self.port = port
        self.max_recv_bytes = max_recv_bytes
        self.workers = workers
        self._server = None
        self._cond = threading.Condition()
        self._calls = []
        self._fail = []          # [(code, details)] consumed one per call
        self._delay = 0.0        # seconds before answering, after recording
        self._messages = {}
        for signal, (_, short, req, resp) in _SERVICES.items():
            self._messages[signal] = _load_messages(short, req, resp)

    # --- lifecycle

    def start(self):
        """Binds and serves; returns the port. Can be called again after stop()."""
        if self._server is not None:
            raise RuntimeError("sink already running")
        options = [
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", self.max_recv_bytes),
        ]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.workers),
                             options=options)
        for signal, (service, _, _, _) in _SERVICES.items():
            handler = grpc.unary_unary_rpc_method_handler(self._make_handler(signal))
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service, {"Export": handler}),))
        bound = server.add_insecure_port("%s:%d" % (self.host, self.port))
        if bound == 0:
            raise OSError("sink: cannot bind %s:%d" % (self.host, self.port))
        self.port = bound
        server.start()
        self._server = server
        return bound

    def stop(self, grace=0.5):
        """Stops serving (the port is closed: the sink is "down")."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace).wait(5)

    @property
    def running(self):
        return self._server is not None

    @property
    def endpoint(self):
        return "%s:%d" % (self.host, self.port)

    # --- behaviour knobs

    def fail_next(self, n, code=grpc.StatusCode.UNAVAILABLE, details="sink told to fail"):
        """The next |n| calls (any signal) are answered with |code|."""
        with self._cond:
            self._fail.extend([(code, details)] * n)

    def set_delay(self, seconds):
        """Every call is recorded at once and answered |seconds| later."""
        self._delay = seconds

    # --- what was received

    def calls(self, signal=None):
        with self._cond:
            return [c for c in self._calls if signal is None or c.signal == signal]

    def accepted(self, signal=TRACES):
        return [c for c in self.calls(signal) if c.ok]

    def spans(self):
        """(ResourceSpans, ScopeSpans, Span) for every span of every accepted call."""
        out = []
        for call in self.accepted(TRACES):
            for rs in call.request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append((rs, ss, span))
        return out

    def span_count(self):
        return len(self.spans())

    def items(self, signal):
        """(resource level, scope level, item) for every item of every accepted
        call of |signal| (see request_items)."""
        out = []
        for call in self.accepted(signal):
            out += request_items(signal, call.request)
        return out

    def item_count(self, signal):
        """Spans, metric data points or log records accepted for |signal|."""
        return sum(count_items(signal, c.request) for c in self.accepted(signal))

    def wait_for_items(self, signal, count, timeout):
        """Waits until at least |count| items of |signal| were accepted; returns
        the count seen."""
        self.wait_for(lambda s: s.item_count(signal) >= count, timeout)
        return self.item_count(signal)

    def wait_for(self, predicate, timeout):
        """Waits until predicate(self) is true; returns its last value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                left = deadline - time.monotonic()
                if value or left <= 0:
                    return value
                self._cond.wait(min(left, 0.2))

    def wait_for_spans(self, count, timeout):
        """Waits until at least |count| spans were accepted; returns the count seen."""
        self.wait_for(lambda s: s.span_count() >= count, timeout)
        return self.span_count()

    def reset(self):
        with self._cond:
            self._calls = []
            self._fail = []

    # --- serving

    def _make_handler(self, signal):
        req_cls, resp_cls = self._messages[signal]

        def handle(raw, context):
            metadata = {}
            for key, value in context.invocation_metadata():
                metadata.setdefault(key.lower(), []).append(value)
            request, code, details = None, grpc.StatusCode.OK, ""
            if req_cls is not None:
                try:
                    request = req_cls.FromString(raw)
                except Exception as e:  # DecodeError, invalid UTF-8, ...
                    code, details = grpc.StatusCode.INVALID_ARGUMENT, "sink: %s" % e
            with self._cond:
                if code == grpc.StatusCode.OK and self._fail:
                    code, details = self._fail.pop(0)
                self._calls.append(Call(signal, raw, request, metadata, code, details))
                self._cond.notify_all()
            if self._delay:
                time.sleep(self._delay)
            if code != grpc.StatusCode.OK:
                context.abort(code, details)
            return resp_cls().SerializeToString() if resp_cls is not None else b""

        return handle
