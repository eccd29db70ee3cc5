"""In-process Loki push sink for the integration tests.

An HTTP/1.1 server (stdlib ThreadingHTTPServer) on 127.0.0.1 that plays Loki's push
endpoint, POST /loki/api/v1/push. It decodes each body with code that shares
nothing with lookout's C encoder:

- Content-Type application/x-protobuf: snappy block format (python3-snappy) around
  a logproto.PushRequest, decoded with classes that protoc --python_out generates
  from the reference schema ../shared/reference/loki/push.proto (not proto/); on a
  clone without the reference copies, from the project's own proto/loki/push.proto
  (which test/proto/check.sh keeps wire-identical to the reference where it exists);
- Content-Type application/json: {"streams":[{"stream":{...},"values":[[ns, line,
  {metadata}]]}]}, gunzipped first when Content-Encoding is gzip.

Every push is recorded (headers, raw body, decoded streams with their entries:
timestamp in ns, line, structured metadata), with the status the sink answered.
The sink answers 204 unless told otherwise: fail_next(n, status, ...) answers the
next n pushes with |status|; fail_for(seconds, status, ...) answers every push
with |status| for |seconds| counted from the first push it answers. Such rules
are used in the order they were given. A push the sink cannot decode is answered
400 and recorded with its error. Entries of pushes answered with a non-2xx status
are kept apart from the delivered ones (rejected()).

Loki's own validation of structured metadata can be switched on (as Loki's
distributor does it, pkg/distributor/validator.go ValidateEntry):
refuse_structured_metadata() plays a Loki whose limits_config has
allow_structured_metadata: false (Loki 2.9's default; Loki 3 on an old schema);
enforce_structured_metadata_limits(entries, size) plays max_structured_metadata_
entries_count / max_structured_metadata_size (size: each pair's name plus value;
this sink counts `level` too, as Loki did before 3.x: the stricter measure). As Loki,
the sink then checks every entry (the size before the count), stores the entries
that pass, and answers 400 when any failed, with Loki's messages grouped as its
util.GroupedErrors does ("N errors like: ..." joined by "; "), through Go's
http.Error (text/plain; charset=utf-8, X-Content-Type-Options: nosniff, a newline
at the end). Stored entries count as delivered (entries()), and, as Loki's ingester
does, an entry identical to one stored before (same stream, timestamp and line) is
dropped as a duplicate.

Env: LOOKOUT_PYGEN (default build/pytest-gen) is where the Python module is
generated, in loki_ref/ (or loki_own/); LOOKOUT_REF_DIR (default ../shared/reference
beside the repository) holds the reference copies, LOOKOUT_LOKI_REF_PROTO overrides
the reference schema itself; LOOKOUT_REQUIRE_REF=1 (set by .ci/run) makes a missing
reference schema an error instead of a fallback.
"""

import gzip
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import snappy

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYGEN = os.environ.get("LOOKOUT_PYGEN", os.path.join(REPO, "build", "pytest-gen"))
REF_DIR = os.path.abspath(os.environ.get("LOOKOUT_REF_DIR") or
                          os.path.join(os.path.dirname(REPO), "shared", "reference"))
REF_PROTO = os.environ.get("LOOKOUT_LOKI_REF_PROTO",
                           os.path.join(REF_DIR, "loki", "push.proto"))
OWN_PROTO = os.path.join(REPO, "proto", "loki", "push.proto")
PUSH_PATH = "/loki/api/v1/push"


def _schema():
    """(path of the push.proto to decode with, name of its generated package)."""
    if os.path.exists(REF_PROTO):
        return REF_PROTO, "loki_ref"
    if os.environ.get("LOOKOUT_REQUIRE_REF") == "1":
        raise RuntimeError("loki sink: no reference schema at %s (LOOKOUT_REQUIRE_REF=1)"
                           % REF_PROTO)
    sys.stderr.write("loki sink: no reference copies at %s; decoding with %s\n"
                     % (REF_PROTO, os.path.relpath(OWN_PROTO, REPO)))
    return OWN_PROTO, "loki_own"


def _load_push_pb2():
    """Generates (once) and imports push_pb2 from the reference schema (or, without
    one, proto/'s), under a module name of its own so it cannot clash with anything
    generated from proto/opentelemetry."""
    schema, name = _schema()
    out_dir = os.path.join(PYGEN, name)
    module_path = os.path.join(out_dir, "push_pb2.py")
    if (not os.path.exists(module_path)
            or os.path.getmtime(module_path) < os.path.getmtime(schema)):
        os.makedirs(out_dir, exist_ok=True)
        # google/protobuf/timestamp.proto: protoc finds it in its own include dir
        # (/usr/include on Debian); name it explicitly in case it does not.
        includes = ["-I" + os.path.dirname(schema)]
        for d in ("/usr/include", "/usr/local/include", "/opt/homebrew/include"):
            if os.path.exists(os.path.join(d, "google", "protobuf", "timestamp.proto")):
                includes.append("-I" + d)
                break
        subprocess.run(["protoc", "--python_out=" + out_dir] + includes
                       + [os.path.basename(schema)], check=True)
    spec = importlib.util.spec_from_file_location(name + "_push_pb2", module_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


push_pb2 = _load_push_pb2()
PushRequest = push_pb2.PushRequest


class DecodeError(Exception):
    pass


# --- label sets in Prometheus syntax: {a="b", c="d"}

_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def _unescape_label(v):
    return re.sub(r'\\([\\"n])', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def escape_label(v):
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_labels(labels):
    """{name: value} -> '{a="b", c="d"}' sorted by name, as the spec renders them."""
    return "{" + ", ".join('%s="%s"' % (k, escape_label(labels[k]))
                           for k in sorted(labels)) + "}"


def parse_labels(text):
    """'{a="b", c="d"}' -> {"a": "b", "c": "d"}; DecodeError when malformed or a
    name repeats. Accepts any blank after a comma (Loki does); the tests check
    the exact rendering separately with render_labels."""
    if not (text.startswith("{") and text.endswith("}")):
        raise DecodeError("labels not in braces: %r" % text)
    body = text[1:-1]
    labels = {}
    pos = 0
    while pos < len(body):
        m = _LABEL_RE.match(body, pos)
        if not m:
            raise DecodeError("bad label at %d in %r" % (pos, text))
        name, value = m.group(1), _unescape_label(m.group(2))
        if name in labels:
            raise DecodeError("label %s twice in %r" % (name, text))
        labels[name] = value
        pos = m.end()
        if pos < len(body):
            if body[pos] != ",":
                raise DecodeError("expected ',' at %d in %r" % (pos, text))
            pos += 1
            while pos < len(body) and body[pos] == " ":
                pos += 1
    return labels


# --- what was received

class Entry:
    """One log entry: ts (ns since the epoch), line (str), metadata ([(name,
    value)] in wire order; .md is the same as a dict)."""

    __slots__ = ("ts", "line", "metadata", "md", "parsed")

    def __init__(self, ts, line, metadata, parsed=()):
        self.ts = ts
        self.line = line
        self.metadata = metadata
        self.md = dict(metadata)
        self.parsed = list(parsed)   # protobuf field 4: clients never send it

    def __repr__(self):
        return "Entry(%d, %r, %r)" % (self.ts, self.line, self.metadata)


class Stream:
    """One stream of a push: labels {name: value}, labels_text (the protobuf label
    string as sent; None for JSON), entries [Entry], hash (protobuf field 3)."""

    def __init__(self, labels, labels_text, entries, hash_=0):
        self.labels = labels
        self.labels_text = labels_text
        self.entries = entries
        self.hash = hash_

    def __repr__(self):
        return "Stream(%r, %d entries)" % (self.labels, len(self.entries))


class Push:
    """One POST as the sink saw it."""

    def __init__(self, path, headers, raw):
        self.time = time.monotonic()
        self.path = path
        self.headers = headers          # {lower-case name: value}
        self.raw = raw                  # body as received
        self.body = None                # after snappy / gzip
        self.format = None              # "protobuf" | "json"
        self.streams = []               # [Stream]
        self.push_format = ""           # PushRequest.format (protobuf)
        self.error = None               # why decoding failed, or None
        self.status = None              # status answered
        self.answer = ""                # body answered
        self.stored = None              # [(labels, Entry)] Loki's validation kept (when on)
        self.duplicates = 0             # entries dropped as duplicates of stored ones

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300

    def header(self, name):
        return self.headers.get(name.lower())

    def entries(self):
        """[(labels, Entry)] in wire order."""
        return [(s.labels, e) for s in self.streams for e in s.entries]

    def entry_count(self):
        return sum(len(s.entries) for s in self.streams)

    def delivered(self):
        """[(labels, Entry)] the sink stored of this push."""
        if self.stored is not None:
            return self.stored
        return self.entries() if self.ok else []


# Loki's texts (pkg/validation/validate.go), with the stream's labels for %s.
MD_DISALLOWED_MSG = ("stream '%s' includes structured metadata, but this feature is "
                     "disallowed. Please see `limits_config.allow_structured_metadata` or "
                     "contact your Loki administrator to enable it.")
MD_TOO_LARGE_MSG = ("stream '%s' has structured metadata too large: '%d' bytes, limit: "
                    "'%d' bytes. Please see `limits_config.max_structured_metadata_size` "
                    "or contact your Loki administrator to increase it.")
MD_TOO_MANY_MSG = ("stream '%s' has too many structured metadata labels: '%d', limit: '%d'. "
                   "Please see `limits_config.max_structured_metadata_entries_count` or "
                   "contact your Loki administrator to increase it.")


def md_size(entry):
    """Bytes of an entry's structured metadata as Loki measures them."""
    return sum(len(n.encode()) + len(v.encode()) for n, v in entry.metadata)


def grouped_errors(messages):
    """Loki's util.GroupedErrors.Error() of |messages| (in first-seen order)."""
    counts = {}
    for m in messages:
        counts[m] = counts.get(m, 0) + 1
    parts = []
    for m, n in counts.items():
        parts.append(("%d errors like: " % n if len(counts) > 1 or n > 1 else "") + m)
    return "; ".join(parts)


def _decode_protobuf(push):
    try:
        push.body = snappy.uncompress(push.raw)
    except Exception as e:  # snappy.UncompressError and friends
        raise DecodeError("snappy: %s" % e)
    req = PushRequest()
    try:
        req.ParseFromString(push.body)
    except Exception as e:  # DecodeError, invalid UTF-8
        raise DecodeError("protobuf: %s" % e)
    push.push_format = req.format
    for s in req.streams:
        entries = []
        for e in s.entries:
            ts = e.timestamp.seconds * 1_000_000_000 + e.timestamp.nanos
            entries.append(Entry(ts, e.line,
                                 [(p.name, p.value) for p in e.structuredMetadata],
                                 [(p.name, p.value) for p in e.parsed]))
        push.streams.append(Stream(parse_labels(s.labels), s.labels, entries, s.hash))


def _decode_json(push):
    body = push.raw
    if (push.header("content-encoding") or "").lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except Exception as e:
            raise DecodeError("gzip: %s" % e)
    push.body = body
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise DecodeError("json: %s" % e)
    if not isinstance(doc, dict) or not isinstance(doc.get("streams"), list):
        raise DecodeError("json: no streams array")
    for s in doc["streams"]:
        labels = s.get("stream")
        values = s.get("values")
        if not isinstance(labels, dict) or not isinstance(values, list):
            raise DecodeError("json: stream without stream/values: %r" % (s,))
        for k, v in labels.items():
            if not isinstance(v, str):
                raise DecodeError("json: label %s not a string" % k)
        entries = []
        for v in values:
            if not isinstance(v, list) or len(v) not in (2, 3):
                raise DecodeError("json: bad value %r" % (v,))
            if not isinstance(v[0], str) or not v[0].isdigit():
                raise DecodeError("json: timestamp not a decimal string: %r" % (v[0],))
            if not isinstance(v[1], str):
                raise DecodeError("json: line not a string: %r" % (v[1],))
            md = []
            if len(v) == 3:
                if not isinstance(v[2], dict) or not v[2]:
                    raise DecodeError("json: metadata not a non-empty object: %r" % (v[2],))
                for mk, mv in v[2].items():
                    if not isinstance(mv, str):
                        raise DecodeError("json: metadata %s not a string" % mk)
                    md.append((mk, mv))
            entries.append(Entry(int(v[0]), v[1], md))
        push.streams.append(Stream(labels, None, entries))


class _Rule:
    """Answer |status| to the next |count| pushes, or to every push for
    |seconds| from the first one it answers."""

    def __init__(self, status, body, headers, count=None, seconds=None):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.count = count
        self.seconds = seconds
        self.started = None

    def take(self, now):
        """True when this rule answers a push arriving at |now| (and uses it up)."""
        if self.count is not None:
            if self.count <= 0:
                return False
            self.count -= 1
            return True
        if self.started is None:
            self.started = now
        return now - self.started < self.seconds


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client (the agent) that resets its keep-alive connection, e.g. when
        killed, is no error of the sink's; anything else is printed."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class LokiSink:
    """Use: sink = LokiSink(); sink.start(); ... sink.url ...; sink.stop()."""

    def __init__(self, port=0, host="127.0.0.1"):
        self.host = host
        self.port = port
        self._server = None
        self._thread = None
        self._cond = threading.Condition()
        self._pushes = []
        self._rules = []
        self._md_allowed = True
        self._md_max_entries = 0
        self._md_max_bytes = 0
        self._stored_keys = set()

    # --- lifecycle

    def start(self):
        if self._server is not None:
            raise RuntimeError("sink already running")
        sink = self

        class Handler(_Handler):
            owner = sink
        server = _Server((self.host, self.port), Handler)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self.port

    def stop(self):
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def url(self):
        return "http://%s:%d%s" % (self.host, self.port, PUSH_PATH)

    # --- behaviour knobs

    def fail_next(self, n, status, body="", headers=None):
        """The next |n| pushes (after earlier rules) are answered |status|."""
        with self._cond:
            self._rules.append(_Rule(status, body, headers, count=n))

    def fail_for(self, seconds, status, body="", headers=None):
        """Pushes are answered |status| for |seconds| from the first one this rule
        answers (after earlier rules are used up)."""
        with self._cond:
            self._rules.append(_Rule(status, body, headers, seconds=seconds))

    def refuse_structured_metadata(self, refuse=True):
        """Entries with structured metadata are refused as Loki does when
        limits_config.allow_structured_metadata is false."""
        with self._cond:
            self._md_allowed = not refuse

    def enforce_structured_metadata_limits(self, max_entries=128, max_bytes=64 * 1024):
        """Loki's max_structured_metadata_entries_count and
        max_structured_metadata_size (0: no limit); Loki's defaults."""
        with self._cond:
            self._md_max_entries = max_entries
            self._md_max_bytes = max_bytes

    def _validating(self):
        return not self._md_allowed or self._md_max_entries or self._md_max_bytes

    def _validate(self, push):
        """Loki's per-entry checks of structured metadata: sets push.stored; returns
        the error messages (one per refused entry)."""
        errors = []
        push.stored = []
        for s in push.streams:
            name = render_labels(s.labels)
            for e in s.entries:
                msg = None
                if e.metadata:
                    size = md_size(e)
                    if not self._md_allowed:
                        msg = MD_DISALLOWED_MSG % name
                    elif self._md_max_bytes and size > self._md_max_bytes:
                        msg = MD_TOO_LARGE_MSG % (name, size, self._md_max_bytes)
                    elif self._md_max_entries and len(e.metadata) > self._md_max_entries:
                        msg = MD_TOO_MANY_MSG % (name, len(e.metadata), self._md_max_entries)
                if msg is not None:
                    errors.append(msg)
                    continue
                key = (name, e.ts, e.line)
                if key in self._stored_keys:
                    push.duplicates += 1
                    continue
                self._stored_keys.add(key)
                push.stored.append((s.labels, e))
        return errors

    def clear_rules(self):
        with self._cond:
            self._rules = []

    # --- what was received

    def pushes(self):
        with self._cond:
            return list(self._pushes)

    def accepted(self):
        """Pushes answered 2xx: what was delivered."""
        return [p for p in self.pushes() if p.ok]

    def rejected(self):
        """Pushes answered otherwise (scripted failures and undecodable bodies)."""
        return [p for p in self.pushes() if not p.ok]

    def errors(self):
        """[(push, decode error)] of pushes the sink could not decode."""
        return [(p, p.error) for p in self.pushes() if p.error is not None]

    def entries(self):
        """[(labels, Entry)] of every delivered entry, in arrival order (with
        Loki's validation on: what it stored, also of pushes answered 400)."""
        out = []
        for p in self.pushes():
            out += p.delivered()
        return out

    def rejected_entries(self):
        out = []
        for p in self.rejected():
            out += p.entries()
        return out

    def entry_count(self):
        return sum(len(p.delivered()) for p in self.pushes())

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

    def wait_for_entries(self, count, timeout):
        """Waits until at least |count| entries were delivered; returns the count."""
        self.wait_for(lambda s: s.entry_count() >= count, timeout)
        return self.entry_count()

    def wait_for_pushes(self, count, timeout):
        self.wait_for(lambda s: len(s._pushes) >= count, timeout)
        return len(self.pushes())

    def reset(self):
        with self._cond:
            self._pushes = []
            self._rules = []

    # --- serving (called by the handler)

    def _handle(self, push):
        """Decodes |push|; returns (status, body, headers) to answer."""
        ctype = (push.header("content-type") or "").split(";")[0].strip().lower()
        try:
            if push.path != PUSH_PATH:
                status, body = 404, "404 page not found\n"
                raise DecodeError("path %s" % push.path)
            if ctype == "application/x-protobuf":
                push.format = "protobuf"
                _decode_protobuf(push)
            elif ctype == "application/json":
                push.format = "json"
                _decode_json(push)
            else:
                status, body = 415, "unsupported content type %r\n" % ctype
                raise DecodeError("content type %r" % ctype)
            status, body, headers = 204, "", {}
        except DecodeError as e:
            push.error = str(e)
            if push.path == PUSH_PATH and ctype in ("application/x-protobuf",
                                                    "application/json"):
                status, body = 400, "sink: %s\n" % e
            headers = {}
        with self._cond:
            if push.error is None:
                now = time.monotonic()
                ruled = False
                while self._rules:
                    rule = self._rules[0]
                    if rule.take(now):
                        status, body, headers = rule.status, rule.body, rule.headers
                        ruled = True
                        break
                    self._rules.pop(0)
                if not ruled and self._validating():
                    errors = self._validate(push)
                    if errors:
                        status, body = 400, grouped_errors(errors) + "\n"
                        headers = {"X-Content-Type-Options": "nosniff"}
            push.status = status
            push.answer = body
            self._pushes.append(push)
            self._cond.notify_all()
        return status, body, headers


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner = None   # the LokiSink; set by a subclass per sink

    def log_message(self, fmt, *args):   # quiet
        pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self):
        raw = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        push = Push(self.path, headers, raw)
        status, body, extra = self.owner._handle(push)
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        if data:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def do_GET(self):
        data = b"ready\n" if self.path == "/ready" else b"404 page not found\n"
        self.send_response(200 if self.path == "/ready" else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
