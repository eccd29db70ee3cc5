"""In-process OTLP/HTTP sink for the integration tests: plays the backend an
otlphttp exporter POSTs to, decoding each body with code that shares nothing with
lookout's C code.

An HTTP/1.1 server (stdlib ThreadingHTTPServer) on 127.0.0.1. Each POST is
recorded (path, headers, raw body) and decoded:

- Content-Encoding: zstd: the body is piped through the `zstd -d` CLI (Debian and
  Homebrew package `zstd`; `make deps` installs it), the reference decoder;
- gzip: Python's gzip module; none or identity: as it is; anything else is
  answered 415.

The result is parsed as an Export*ServiceRequest with classes built from the
reference schemas (../shared/reference/opentelemetry-proto, LOOKOUT_REF_DIR) in a
descriptor pool of their own, so nothing generated from proto/ is involved; on a
clone without the reference copies, from proto/ (LOOKOUT_REQUIRE_REF=1, set by
.ci/run, makes that an error). A body that cannot be decoded is answered 400 and
recorded with its error; the rest get 200 with an empty Export*ServiceResponse.
"""

import gzip
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
REF_DIR = os.path.abspath(os.environ.get("LOOKOUT_REF_DIR") or
                          os.path.join(os.path.dirname(REPO), "shared", "reference"))
REF_OTLP = os.path.join(REF_DIR, "opentelemetry-proto")
OWN_PROTO = os.path.join(REPO, "proto")

# path -> (service proto under opentelemetry/proto/collector, request message)
SERVICES = {
    "/v1/traces": ("trace/v1/trace_service.proto",
                   "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"),
    "/v1/metrics": ("metrics/v1/metrics_service.proto",
                    "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"),
    "/v1/logs": ("logs/v1/logs_service.proto",
                 "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest"),
}


def _schema_root():
    if os.path.isdir(os.path.join(REF_OTLP, "opentelemetry")):
        return REF_OTLP
    if os.environ.get("LOOKOUT_REQUIRE_REF") == "1":
        raise RuntimeError("otlp http sink: no reference schemas at %s (LOOKOUT_REQUIRE_REF=1)"
                           % REF_OTLP)
    sys.stderr.write("otlp http sink: no reference copies at %s; decoding with proto/\n"
                     % REF_OTLP)
    return OWN_PROTO


def _message_classes():
    """{path: request class}, from a descriptor set protoc compiles out of the
    schema root, loaded into a pool of its own."""
    root = _schema_root()
    files = ["opentelemetry/proto/collector/" + f for f, _ in SERVICES.values()]
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "otlp.pb")
        subprocess.run(["protoc", "-I" + root, "--include_imports",
                        "--descriptor_set_out=" + out] + files, check=True)
        with open(out, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    classes = {}
    for path, (_, name) in SERVICES.items():
        desc = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):
            classes[path] = message_factory.GetMessageClass(desc)
        else:  # protobuf < 4.22 (Debian 12 has 3.21)
            classes[path] = message_factory.MessageFactory(pool).GetPrototype(desc)
    return classes


REQUEST_CLASSES = _message_classes()


class DecodeError(Exception):
    pass


def zstd_decompress(body):
    """The `zstd -d` CLI's reading of |body| (one or more frames)."""
    r = subprocess.run(["zstd", "-d", "-q", "-c"], input=body, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise DecodeError("zstd -d: %s" % r.stderr.decode(errors="replace").strip())
    return r.stdout


class Post:
    """One request as the sink saw it."""

    def __init__(self, path, headers, raw):
        self.path = path
        self.headers = headers          # {lowercased name: value}
        self.raw = raw                  # the body as sent
        self.body = None                # decompressed
        self.request = None             # decoded Export*ServiceRequest
        self.error = None
        self.status = None

    @property
    def encoding(self):
        return self.headers.get("content-encoding", "")


class OtlpHttpSink:
    def __init__(self):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._posts = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def _handler(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                post = Post(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                status = sink._decode(post)
                post.status = status
                with sink._cond:
                    sink._posts.append(post)
                    sink._cond.notify_all()
                reply = b"" if status == 200 else (post.error or "").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf" if status == 200
                                 else "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler

    def _decode(self, post):
        cls = REQUEST_CLASSES.get(post.path)
        if cls is None:
            post.error = "unknown path %s" % post.path
            return 404
        try:
            if post.encoding == "zstd":
                post.body = zstd_decompress(post.raw)
            elif post.encoding == "gzip":
                post.body = gzip.decompress(post.raw)
            elif post.encoding in ("", "identity"):
                post.body = post.raw
            else:
                post.error = "unsupported Content-Encoding %r" % post.encoding
                return 415
            post.request = cls.FromString(post.body)
        except Exception as e:  # zstd, gzip or protobuf (whose error class varies)
            post.error = "%s: %s" % (type(e).__name__, e)
            return 400
        return 200

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def posts(self):
        with self._lock:
            return list(self._posts)

    def _spans_locked(self):
        return sum(len(s.spans) for p in self._posts
                   if p.request is not None and p.path == "/v1/traces"
                   for rs in p.request.resource_spans for s in rs.scope_spans)

    def span_count(self):
        with self._lock:
            return self._spans_locked()

    def wait_for_spans(self, n, timeout):
        """Waits until the decoded trace requests hold |n| spans or |timeout|
        seconds pass; returns the count."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = self._spans_locked()
                left = deadline - time.monotonic()
                if got >= n or left <= 0:
                    return got
                self._cond.wait(min(left, 0.2))
