"""Durability: the disk spool (`storage:`) of build/lookout under real faults,
against real sinks (docs/configuration.md "storage", docs/reliability.md).

Each test runs its own agent(s), sinks and spool file, and prints one line to
quote: RESULT test sent=... acked=... delivered=... duplicated=... lost=...
(sent: spans the senders sent; acked: answered OK; delivered: acknowledged
spans that reached the sink; duplicated: extra copies at the sink; lost:
acknowledged spans that never arrived).

Senders (SeqSenders) give each span an id made of a sender number and a
sequence number, so the sink's arrival order can be checked per sender. The
exporter sends one batch at a time (max_concurrency 1): with more in flight
the backend may see batches in any order, with or without a spool.

1. test_1a/1b: the backend is down OUTAGE_SECONDS (30 s; LOOKOUT_OUTAGE_SECONDS)
   then back (the sink stopped, a new one started on the same port) while
   senders run, behind a small queue that drops when full and a
   retry.max_elapsed_time of 5 s. With the spool: every acknowledged span
   arrives exactly once and in order per sender, nothing is dropped. Without:
   the acknowledged spans that were lost are exactly the increase of
   lookout_dropped_items_total (by reason).
2. test_2: data in the spool at SIGTERM (otlp, otlphttp and loki exporters,
   backends down): the agent exits within shutdown_timeout; started again with
   the backends up, it sends all of it.
3. test_3: kill -9 under load (gRPC and OTLP/HTTP senders) with durable: true,
   restart on the same spool: no acknowledged span missing; duplicates
   counted and reported.
4. test_4a/4b: disk full (RLIMIT_FSIZE set on the running agent with prlimit:
   writes past it fail with EFBIG) with the backend down: the queue's overflow
   policy takes over (refuse: retryable refusals; drop: counted as
   spool_full), counted in lookout_spool_write_errors_total; the agent stays
   up and healthy; with the limit lifted and the backend back, the spool
   accepts again and everything acknowledged arrives.
5. test_5a/5b: a corrupt spool at start (random bytes; a real spool whose pages
   were overwritten): the agent starts, the file is renamed
   <path>.corrupt-<unix seconds>, an error line says so, and a fresh spool
   spills and delivers.
6. test_6: reloads (SIGHUP) that add storage, make it durable, move it,
   make it non-durable, remove it, and name the two files again, with the
   backend going down and up, while senders run: every acknowledged span
   arrives once.

A failure says what it saw: the runs of lost or duplicated spans, the phase in
which they were acknowledged, the calls they arrived in, and for test_3
whether the lost ones were in the spool file at the kill.

Run: make durability, or sh test/integration/run.sh test_durability (from the
repo root, after `make`).
"""

import collections
import http.client
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import (Client, ExportTraceServiceRequest, YamlAgent, free_ports,  # noqa: E402
                     grpc_error_retry_delay, kv, next_id, result_line, wait_until)

import grpc  # noqa: E402

import otlp_http_sink  # noqa: E402
import otlp_sink  # noqa: E402
from loki_sink import LokiSink  # noqa: E402
from test_lines import write_stream  # noqa: E402

OUTAGE_SECONDS = float(os.environ.get("LOOKOUT_OUTAGE_SECONDS", "30"))
DELIVERY = 90.0         # seconds for a backlog to reach a sink that came back
EXPORTER = "otlp/sink"

# Self-metrics of the spool (docs/metrics.md, "Spool").
SPOOL_BATCHES = "lookout_spool_batches"
SPOOL_WRITTEN = "lookout_spool_written_batches_total"
SPOOL_RESTORED = "lookout_spool_restored_batches_total"
SPOOL_WRITE_ERRORS = "lookout_spool_write_errors_total"
SPOOL_MOVED_ASIDE = "lookout_spool_moved_aside_total"
SPOOL_ACCEPTING = "lookout_spool_accepting"

# --- spans that say who sent them, and in which order

MAGIC = 0xD5   # first byte of every span id a SeqSender makes


def span_id_of(sender, seq):
    return bytes([MAGIC, sender]) + seq.to_bytes(6, "big")


def sender_seq(span_id):
    """(sender, seq) of a SeqSender's span id, or None for another span."""
    if len(span_id) != 8 or span_id[0] != MAGIC:
        return None
    return span_id[1], int.from_bytes(span_id[2:], "big")


def seq_request(sender, first, n, payload=0):
    """One request of |n| spans of |sender|, sequence numbers |first|.. (also
    as attributes test.sender, test.seq), each with a |payload|-byte attribute."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", string_value="durability-%d" % sender))
    ss = rs.scope_spans.add()
    trace_id = next_id(16)
    for seq in range(first, first + n):
        sp = ss.spans.add()
        sp.trace_id = trace_id
        sp.span_id = span_id_of(sender, seq)
        sp.name = "s%d-%d" % (sender, seq)
        sp.start_time_unix_nano = 1_700_000_000_000_000_000 + seq
        sp.end_time_unix_nano = sp.start_time_unix_nano + 1000
        sp.attributes.extend([kv("test.sender", int_value=sender),
                              kv("test.seq", int_value=seq)])
        if payload:
            sp.attributes.append(kv("payload", string_value="x" * payload))
    return req


class SeqSenders:
    """|count| threads, each exporting requests of |spans| spans over a gRPC
    connection of its own, one after the other (the next once the last is
    answered), |interval| s apart, from start() to stop(). Answers sort the
    spans: acked (OK), refused (UNAVAILABLE with RetryInfo: the agent said no,
    the client would retry), unknown (no answer: timeout, agent gone).
    |errors| keeps answers that are neither OK nor a retryable refusal.
    With |http_port|, the requests are OTLP/HTTP protobuf POSTs to that port
    (refusals: 503 or 429 with Retry-After) instead of gRPC exports."""

    def __init__(self, endpoint, count=2, spans=5, payload=128, interval=0.01,
                 timeout=5.0, first_sender=0, http_port=None):
        self.endpoint = endpoint
        self.http_port = http_port
        self.count = count
        self.spans = spans
        self.payload = payload
        self.interval = interval
        self.timeout = timeout
        self.first_sender = first_sender
        self.lock = threading.Lock()
        self.sent = 0
        self.acked = set()
        self.acked_at = {}        # span id -> monotonic time of its OK
        self.refused = set()
        self.unknown = set()
        self.errors = []          # (sender, code, details)
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        for i in range(self.count):
            t = threading.Thread(target=self._run, args=(self.first_sender + i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _run(self, sender):
        client = HttpExporter(self.http_port, self.timeout) if self.http_port else \
            Client(self.endpoint, own_connection=True)
        seq = 0
        try:
            while not self._stop.is_set():
                req = seq_request(sender, seq, self.spans, self.payload)
                ids = [span_id_of(sender, s) for s in range(seq, seq + self.spans)]
                seq += self.spans
                delay = self.interval
                if self.http_port:
                    answer, retry, note = client.export(req)
                else:
                    answer, retry, note = self._grpc_export(client, req)
                what = {"ok": self.acked, "refused": self.refused}.get(answer, self.unknown)
                if answer == "refused":
                    delay = max(delay, min(retry, 0.2))
                elif answer != "ok":
                    delay = max(delay, 0.05)   # no answer at all: do not spin
                    with self.lock:
                        self.errors.append((sender, answer, note))
                now = time.monotonic()
                with self.lock:
                    self.sent += len(ids)
                    what.update(ids)
                    if answer == "ok":
                        self.acked_at.update((i, now) for i in ids)
                if delay:
                    self._stop.wait(delay)
        finally:
            client.close()

    def _grpc_export(self, client, req):
        """("ok" | "refused" | the status, RetryInfo seconds, details)."""
        try:
            client.export(req, timeout=self.timeout)
            return "ok", None, None
        except grpc.RpcError as e:
            retry = (grpc_error_retry_delay(e) if e.code() == grpc.StatusCode.UNAVAILABLE
                     else None)
            if retry is not None:
                return "refused", retry, None
            return e.code(), None, e.details()

    def halt(self):
        """Tells the threads to stop after their current request."""
        self._stop.set()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self

    def acked_count(self):
        with self.lock:
            return len(self.acked)


class HttpExporter:
    """OTLP/HTTP protobuf POSTs of trace requests on one keep-alive connection."""

    def __init__(self, port, timeout):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def export(self, req):
        """("ok" | "refused" | "HTTP <status>" | "no answer", Retry-After
        seconds, details)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.conn.request("POST", "/v1/traces", req.SerializeToString(),
                              {"Content-Type": "application/x-protobuf"})
            r = self.conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            return "no answer", None, "%s: %s" % (type(e).__name__, e)
        if r.status == 200:
            return "ok", None, None
        retry_after = r.getheader("Retry-After")
        if r.status in (429, 503) and retry_after is not None and retry_after.strip().isdigit():
            return "refused", float(retry_after), None
        return "HTTP %d" % r.status, None, body[:200]

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Merged:
    """The tallies of several SeqSenders, stopped, as one."""

    def __init__(self, *senders):
        self.sent = sum(s.sent for s in senders)
        self.acked = set().union(*(s.acked for s in senders))
        self.acked_at = {}
        for s in senders:
            self.acked_at.update(s.acked_at)
        self.refused = set().union(*(s.refused for s in senders))
        self.unknown = set().union(*(s.unknown for s in senders))
        self.errors = sum((s.errors for s in senders), [])


def send_acked(case, endpoint, sender, n, per_request=10, payload=256):
    """Sends |n| spans of |sender| in requests of |per_request|, each of which
    must be answered OK; returns their ids."""
    client = Client(endpoint, own_connection=True)
    try:
        ids = []
        for first in range(0, n, per_request):
            k = min(per_request, n - first)
            try:
                client.export(seq_request(sender, first, k, payload), timeout=10)
            except grpc.RpcError as e:
                case.fail("export of spans %d..%d answered %s: %s"
                          % (first, first + k - 1, e.code(), e.details()))
            ids += [span_id_of(sender, s) for s in range(first, first + k)]
        return ids
    finally:
        client.close()


class Delivery:
    """What a sink got of what was sent: |arrived| is the span ids in arrival
    order, repeats included; only SeqSender spans count."""

    def __init__(self, acked, unknown, arrived):
        arrived = [i for i in arrived if sender_seq(i) is not None]
        counts = collections.Counter(arrived)
        got = set(counts)
        self.dup_ids = {i for i, c in counts.items() if c > 1}
        self.acked = set(acked)
        self.delivered = len(self.acked & got)
        self.duplicated = sum(c - 1 for c in counts.values())
        self.lost_ids = self.acked - got
        self.lost = len(self.lost_ids)
        # Delivered though the sender was told no: a client retrying it would
        # make a duplicate.
        self.unexpected = got - self.acked - set(unknown)
        self.unknown_lost = len(set(unknown) - got)
        # Per sender, the first arrival of each span must come in sequence order.
        last, seen, self.out_of_order = {}, set(), []
        for i in arrived:
            if i in seen:
                continue
            seen.add(i)
            sender, seq = sender_seq(i)
            if seq < last.get(sender, -1):
                self.out_of_order.append((sender, seq, last[sender]))
            last[sender] = max(seq, last.get(sender, -1))

    def describe_lost(self, n=5):
        return describe_ids(self.lost_ids, n)


def describe_ids(ids, n=5):
    """"s0#120-129, s1#40-44" for the first |n| runs of consecutive ids."""
    runs = []
    for sender, seq in sorted(sender_seq(i) for i in ids):
        if runs and runs[-1][0] == sender and runs[-1][2] == seq - 1:
            runs[-1][2] = seq
        else:
            runs.append([sender, seq, seq])
    text = ", ".join("s%d#%d" % (a, b) + ("-%d" % c if c != b else "") for a, b, c in runs[:n])
    return text + (" ... (%d runs)" % len(runs) if len(runs) > n else "")


class Phases:
    """Named moments of a test, to tell in which phase spans were acknowledged."""

    def __init__(self, first="start"):
        self.marks = [(time.monotonic(), first)]

    def mark(self, name):
        names = {n for _, n in self.marks}
        k = 2
        while name in names:      # "backend up", "backend up #2", ...
            name = "%s #%d" % (name.split(" #")[0], k)
            k += 1
        self.marks.append((time.monotonic(), name))

    def of(self, t):
        return [name for t0, name in self.marks if t is not None and t0 <= t][-1:] or ["?"]

    def describe(self, ids, acked_at):
        """"phase: s0#1-9; phase: ..." for |ids| by the phase of their OK."""
        by = collections.defaultdict(set)
        for i in ids:
            by[self.of(acked_at.get(i))[0]].add(i)
        return "; ".join("acknowledged in phase '%s': %s" % (name, describe_ids(by[name]))
                         for _, name in self.marks if name in by) + \
            ("; never acknowledged: %s" % describe_ids(by["?"]) if "?" in by else "")


def spool_rows_holding(path, ids):
    """Of |ids|, those whose bytes appear in a payload of the SQLite spool
    at |path| (a copy, read with Python's sqlite3); None when unreadable."""
    import sqlite3
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            return {i for i in ids if db.execute(
                "SELECT 1 FROM batches WHERE instr(payload, ?) LIMIT 1", (i,)).fetchone()}
        finally:
            db.close()
    except sqlite3.Error:
        return None


# --- backends that go down and come back

class GrpcBackend:
    """An OTLP/gRPC backend on a port of its own: up() starts a new OtlpSink
    there, down() stops it (the port is then closed). Between stops the sinks
    are different servers, as a restarted backend would be."""

    def __init__(self, case, up=True):
        self.port = free_ports(1)[0]
        self.sinks = []
        self.current = None
        case.addCleanup(self.down)
        if up:
            self.up()

    def up(self, delay=0.0):
        sink = otlp_sink.OtlpSink(port=self.port, workers=4)
        sink.set_delay(delay)
        sink.start()
        self.sinks.append(sink)
        self.current = sink
        return sink

    def down(self):
        """Stops the sink. It first answers UNAVAILABLE for a moment, so that no
        call is recorded as delivered whose OK answer the exporter never got
        (that would be a duplicate the agent is not to blame for)."""
        sink, self.current = self.current, None
        if sink is None:
            return
        sink.fail_next(1 << 17, grpc.StatusCode.UNAVAILABLE, "backend going down")
        time.sleep(0.2)
        sink.stop(grace=0.5)

    def arrived(self):
        """Span ids of every accepted call, in arrival order, over every sink."""
        return [sp.span_id for s in self.sinks for _, _, sp in s.spans()]

    def calls_with(self, ids, n=3):
        """How the first |n| of |ids| arrived more than once: for each, the
        accepted calls that held it (number over all sinks, spans in the call,
        seconds since the first call)."""
        calls = [c for s in self.sinks for c in s.accepted()]
        t0 = calls[0].time if calls else 0
        out = []
        for i in sorted(ids)[:n]:
            where = ["call %d (%d spans, %+.2f s)%s" % (k, len(ss), c.time - t0,
                                                         " %d times" % ss.count(i)
                                                         if ss.count(i) > 1 else "")
                     for k, (c, ss) in enumerate(
                         (c, [sp.span_id for rs in c.request.resource_spans
                              for sc in rs.scope_spans for sp in sc.spans]) for c in calls)
                     if i in ss]
            out.append("s%d#%d in %s" % (sender_seq(i) + (", ".join(where),)))
        return "; ".join(out)


def dead_port():
    """A port nothing listens on (and nothing in this process will)."""
    return free_ports(1)[0]


# --- configuration

def storage_yaml(path, durable=False, max_bytes="1GiB"):
    return ("storage:\n  path: %s\n  max_bytes: %s\n  durable: %s\n"
            % (path, max_bytes, "true" if durable else "false"))


def traces_body(sink_port, storage="", queue_size=100000, overflow="refuse",
                max_elapsed="0s", batch=500, http=False):
    """The OTLP/gRPC receiver (and OTLP/HTTP with |http|) to one otlp exporter,
    one batch in flight."""
    return (storage +
            "receivers:\n  otlp:\n    protocols:\n"
            "      grpc:\n        endpoint: 127.0.0.1:@GRPC_PORT@\n" +
            ("      http:\n        endpoint: 127.0.0.1:@HTTP_PORT@\n" if http else "") +
            "exporters:\n  %s:\n    endpoint: 127.0.0.1:%d\n"
            "    compression: none\n    timeout: 2s\n    max_concurrency: 1\n"
            "    retry: {initial_interval: 100ms, max_interval: 500ms, max_elapsed_time: %s}\n"
            "    batch: {send_batch_size: %d, timeout: 50ms}\n"
            "    queue: {queue_size: %d, overflow: %s}\n"
            "pipelines:\n  traces:\n    receivers: [otlp]\n    exporters: [%s]\n"
            % (EXPORTER, sink_port, max_elapsed, batch, queue_size, overflow, EXPORTER))


def dropped_by_reason(metrics):
    out = collections.Counter()
    for _, labels, v in metrics.find("lookout_dropped_items_total"):
        out[labels.get("reason")] += int(v)
    return out


class DurabilityCase(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        helpers.raise_fd_limit()
        self.spool_dir = tempfile.mkdtemp(prefix="lk-spool-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.spool_dir, True)
        self.spool = os.path.join(self.spool_dir, "spool.db")

    def start_agent(self, body, shutdown_timeout="5s"):
        """A YamlAgent on |body|, started and ready; killed at cleanup."""
        agent = YamlAgent(body, shutdown_timeout=shutdown_timeout, log_level="info")
        self.addCleanup(shutil.rmtree, agent.dir, True)
        agent.start()
        self.addCleanup(agent.kill)
        agent.wait_ready()
        return agent

    def metric(self, agent, name, **labels):
        """A metric's value, 0 when the series does not exist (yet)."""
        return agent.metric(name, **labels) or 0

    def wait_metric(self, agent, name, pred, what, timeout=30.0, **labels):
        def check():
            if not agent.alive:
                raise AssertionError("agent died waiting for %s (exit %r)\n%s"
                                     % (what, agent.proc.returncode, agent.log_tail()))
            return pred(self.metric(agent, name, **labels))
        ok = wait_until(check, timeout, 0.1)
        self.assertTrue(ok, "%s: %s%s = %r after %.0f s\n%s"
                        % (what, name, labels, self.metric(agent, name, **labels), timeout,
                           agent.log_tail()))

    def wait_drained(self, agent, timeout=DELIVERY):
        """Waits until the exporter's queue and the spool hold nothing."""
        def empty():
            m = agent.metrics()
            return ((m.value("lookout_exporter_queue_size", exporter=EXPORTER) or 0) == 0
                    and (m.value(SPOOL_BATCHES) or 0) == 0)
        wait_until(empty, timeout, 0.2)

    def wait_delivered(self, acked, arrived_fn, timeout=DELIVERY):
        """Waits until every id of |acked| arrived (arrived_fn() gives them)."""
        acked = set(acked)
        wait_until(lambda: acked <= set(arrived_fn()), timeout, 0.25)

    def assert_alive(self, agent, what):
        self.assertTrue(agent.alive, "agent died %s (exit %r)\n%s"
                        % (what, agent.proc.returncode, agent.log_tail()))
        self.assertEqual(agent.http_get("/healthz")[0], 200, "/healthz " + what)

    def assert_clean_exit(self, agent):
        rc = agent.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, "exit status after SIGTERM (None: killed)\n" + agent.log_tail())

    def name(self):
        return self.id().split(".")[-1]

    def assert_no_duplicates(self, d, phases, senders, backend, agent):
        """Fails when spans arrived more than once, saying when they were
        acknowledged, in which calls they came and what the exporter retried."""
        if d.duplicated:
            self.fail("spans delivered more than once: %d copies; %s; arrivals: %s; "
                      "lookout_exporter_retries_total %d\n%s"
                      % (d.duplicated, phases.describe(d.dup_ids, senders.acked_at),
                         backend.calls_with(d.dup_ids),
                         self.metric(agent, "lookout_exporter_retries_total"), agent.log_tail()))


class DurabilityTest(DurabilityCase):

    # --- 1. backend down 30 s then back

    def outage(self, spool):
        backend = GrpcBackend(self)
        storage = storage_yaml(self.spool) if spool else ""
        agent = self.start_agent(traces_body(backend.port, storage, queue_size=2000,
                                             overflow="drop", max_elapsed="5s"))
        before = dropped_by_reason(agent.metrics())
        senders = SeqSenders(agent.grpc_endpoint, count=2, spans=5, interval=0.01).start()
        self.addCleanup(senders.stop)
        phases = Phases("backend up")
        time.sleep(2)
        backend.down()
        phases.mark("backend down")
        time.sleep(OUTAGE_SECONDS)
        self.assert_alive(agent, "during the outage")
        spooled_in_outage = self.metric(agent, SPOOL_WRITTEN)
        backend.up()
        phases.mark("backend back")
        time.sleep(3)
        senders.stop()
        if spool:
            self.wait_delivered(senders.acked, backend.arrived)
        self.wait_drained(agent)
        time.sleep(0.5)   # a late duplicate, if any, has time to arrive
        d = Delivery(senders.acked, senders.unknown, backend.arrived())
        m = agent.metrics()
        dropped = dropped_by_reason(m) - before
        result_line(self.name(), sent=senders.sent, acked=len(senders.acked),
                    delivered=d.delivered, duplicated=d.duplicated, lost=d.lost,
                    dropped=sum(dropped.values()),
                    dropped_by_reason=",".join("%s:%d" % x for x in sorted(dropped.items()))
                    or "none",
                    refused=len(senders.refused), unanswered=len(senders.unknown),
                    out_of_order=len(d.out_of_order), outage_s=OUTAGE_SECONDS,
                    spooled_batches=int(spooled_in_outage))
        self.assertEqual(senders.errors[:5], [], "answers that are neither OK nor a retryable "
                         "refusal")
        self.assertGreater(len(senders.acked), 0, "nothing acknowledged")
        self.assertEqual(d.unexpected, set(), "spans delivered that the senders were refused")
        self.assert_no_duplicates(d, phases, senders, backend, agent)
        return agent, senders, d, dropped, spooled_in_outage

    def test_1a_backend_down_with_spool(self):
        agent, senders, d, dropped, spooled = self.outage(spool=True)
        self.assertGreater(spooled, 0, "nothing was written to the spool during a %.0f s "
                           "outage behind a queue of 2000 spans\n%s"
                           % (OUTAGE_SECONDS, agent.log_tail()))
        self.assertEqual(d.lost, 0, "acknowledged spans lost: %s\n%s"
                         % (d.describe_lost(), agent.log_tail()))
        self.assertEqual(d.out_of_order[:5], [], "(sender, seq, after seq) delivered out of "
                         "order")
        self.assertEqual(dict(dropped), {}, "lookout_dropped_items_total by reason")
        self.assertEqual(len(senders.refused), 0, "spans refused while the spool had room")
        self.assert_clean_exit(agent)

    def test_1b_backend_down_without_spool(self):
        agent, senders, d, dropped, _ = self.outage(spool=False)
        total = sum(dropped.values())
        self.assertGreater(d.lost, 0, "a %.0f s outage behind a queue of 2000 spans that "
                           "drops lost nothing: the scenario did not happen" % OUTAGE_SECONDS)
        # Spans whose answer never came (unknown) may have been dropped too.
        if d.unknown_lost == 0:
            self.assertEqual(d.lost, total, "acknowledged spans lost vs the increase of "
                             "lookout_dropped_items_total %s" % dict(dropped))
        else:
            self.assertTrue(d.lost <= total <= d.lost + d.unknown_lost,
                            "lost %d (+%d unanswered) vs dropped %d %s"
                            % (d.lost, d.unknown_lost, total, dict(dropped)))
        self.assert_clean_exit(agent)

    # --- 2. SIGTERM with data in the spool, start again

    def multi_body(self, otlp_port, http_url, loki_url):
        return (storage_yaml(self.spool) +
                "receivers:\n  otlp:\n    protocols:\n"
                "      grpc:\n        endpoint: 127.0.0.1:@GRPC_PORT@\n"
                "  lines:\n    path: @DIR@/lines.sock\n"
                "exporters:\n"
                "  otlp/sink:\n    endpoint: 127.0.0.1:%d\n    compression: none\n"
                "    timeout: 2s\n    max_concurrency: 1\n"
                "    batch: {send_batch_size: 100, timeout: 50ms}\n"
                "    queue: {queue_size: 300}\n"
                "  otlphttp/sink:\n    endpoint: %s\n    timeout: 2s\n"
                "    batch: {send_batch_size: 100, timeout: 50ms}\n"
                "    queue: {queue_size: 300}\n"
                "  loki/sink:\n    endpoint: %s\n    timeout: 2s\n"
                "    batch: {send_batch_size: 100, timeout: 50ms}\n"
                "    queue: {queue_size: 300}\n"
                "pipelines:\n"
                "  traces:\n    receivers: [otlp]\n    exporters: [otlp/sink, otlphttp/sink]\n"
                "  logs:\n    receivers: [lines]\n    exporters: [loki/sink]\n"
                % (otlp_port, http_url, loki_url))

    def test_2_sigterm_with_data_in_spool_then_restart(self):
        n_spans, n_lines = 1000, 1000
        shutdown_timeout = 10.0
        dead = dead_port()
        agent = self.start_agent(self.multi_body(dead, "http://127.0.0.1:%d" % dead,
                                                 "http://127.0.0.1:%d/loki/api/v1/push" % dead),
                                 shutdown_timeout="%ds" % shutdown_timeout)
        acked = send_acked(self, agent.grpc_endpoint, 1, n_spans)
        lines = ["durability line %d" % i for i in range(n_lines)]
        write_stream(os.path.join(agent.dir, "lines.sock"),
                     "".join(line + "\n" for line in lines).encode())
        self.wait_metric(agent, "lookout_receiver_accepted_log_records_total",
                         lambda v: v == n_lines, "lines taken", receiver="lines")
        t0 = time.monotonic()
        rc = agent.stop(signal.SIGTERM)
        took = time.monotonic() - t0
        first_log = agent.log_tail()
        self.assertEqual(rc, 0, "exit status after SIGTERM (None: killed)\n" + first_log)
        self.assertLess(took, shutdown_timeout, "SIGTERM with the backends down took %.1f s "
                        "(shutdown_timeout %.0f s): the agent waited for them\n%s"
                        % (took, shutdown_timeout, first_log))
        self.assertTrue(os.path.exists(self.spool), "no spool file at %s" % self.spool)
        # Start again, the backends up.
        grpc_sink = GrpcBackend(self)
        http_sink = otlp_http_sink.OtlpHttpSink().start()
        self.addCleanup(http_sink.stop)
        loki = LokiSink()
        loki.start()
        self.addCleanup(loki.stop)
        agent2 = self.start_agent(self.multi_body(grpc_sink.port, http_sink.endpoint, loki.url))

        def http_arrived():
            return [sp.span_id for p in http_sink.posts() if p.status == 200 and p.request
                    for rs in p.request.resource_spans for ss in rs.scope_spans
                    for sp in ss.spans]

        def loki_arrived():
            return [e.line for _, e in loki.entries()]
        self.wait_delivered(acked, grpc_sink.arrived)
        self.wait_delivered(acked, http_arrived)
        wait_until(lambda: set(lines) <= set(loki_arrived()), DELIVERY, 0.25)
        time.sleep(0.5)
        d_grpc = Delivery(acked, (), grpc_sink.arrived())
        d_http = Delivery(acked, (), http_arrived())
        got_lines = collections.Counter(loki_arrived())
        lines_lost = len(set(lines) - set(got_lines))
        lines_dup = sum(c - 1 for line, c in got_lines.items() if line in set(lines))
        restored = self.metric(agent2, SPOOL_RESTORED)
        result_line(self.name(), sent=2 * n_spans + n_lines, acked=2 * n_spans + n_lines,
                    delivered=d_grpc.delivered + d_http.delivered + n_lines - lines_lost,
                    duplicated=d_grpc.duplicated + d_http.duplicated + lines_dup,
                    lost=d_grpc.lost + d_http.lost + lines_lost, sigterm_exit_s=took,
                    restored_batches=int(restored),
                    per_exporter="otlp:%d/%d,otlphttp:%d/%d,loki:%d/%d"
                    % (d_grpc.delivered, n_spans, d_http.delivered, n_spans,
                       n_lines - lines_lost, n_lines))
        self.assertEqual((d_grpc.lost, d_http.lost, lines_lost), (0, 0, 0),
                         "lost after the restart (otlp, otlphttp, loki)\n--- first run\n%s\n"
                         "--- second run\n%s" % (first_log, agent2.log_tail()))
        self.assertEqual((d_grpc.duplicated, d_http.duplicated, lines_dup), (0, 0, 0),
                         "duplicated (otlp, otlphttp, loki): nothing was sent before the "
                         "restart")
        self.assertEqual(d_grpc.out_of_order[:5], [], "otlp: delivered out of order")
        self.assertGreater(restored, 0, "%s after a restart on a spool with data" % SPOOL_RESTORED)
        self.assert_clean_exit(agent2)

    # --- 3. kill -9 in durable mode

    def test_3_kill9_durable_restart(self):
        backend = GrpcBackend(self)
        backend.current.set_delay(0.2)    # slower than the senders: a backlog builds
        body = lambda port: traces_body(port, storage_yaml(self.spool, durable=True),  # noqa: E731
                                        batch=200, http=True)
        agent = self.start_agent(body(backend.port))
        grpc_senders = SeqSenders(agent.grpc_endpoint, count=2, spans=10, interval=0).start()
        self.addCleanup(grpc_senders.stop)
        http_senders = SeqSenders(None, count=1, spans=10, interval=0, first_sender=2,
                                  http_port=agent.http_port).start()
        self.addCleanup(http_senders.stop)
        wait_until(lambda: grpc_senders.acked_count() + http_senders.acked_count() >= 3000,
                   20, 0.1)
        time.sleep(1)
        m = agent.metrics()
        pending = m.value(SPOOL_BATCHES) or 0
        killed_at = time.monotonic()
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
        copy = os.path.join(self.spool_dir, "at-kill")   # what the disk held, to explain a loss
        os.mkdir(copy)
        for ext in ("", "-wal"):
            if os.path.exists(self.spool + ext):
                shutil.copy(self.spool + ext, os.path.join(copy, "spool.db" + ext))
        grpc_senders.halt()
        http_senders.halt()
        senders = Merged(grpc_senders.stop(), http_senders.stop())
        delivered_before = len(set(backend.arrived()))
        backend.current.set_delay(0)
        agent2 = self.start_agent(body(backend.port))
        self.wait_delivered(senders.acked, backend.arrived)
        self.wait_drained(agent2)
        time.sleep(0.5)
        d = Delivery(senders.acked, senders.unknown, backend.arrived())
        result_line(self.name(), sent=senders.sent, acked=len(senders.acked),
                    delivered=d.delivered, duplicated=d.duplicated, lost=d.lost,
                    unanswered=len(senders.unknown), refused=len(senders.refused),
                    acked_http=len(http_senders.acked),
                    delivered_before_kill=delivered_before, spool_batches_at_kill=int(pending),
                    restored_batches=int(self.metric(agent2, SPOOL_RESTORED)))
        self.assertGreater(len(grpc_senders.acked), 0, "nothing acknowledged over gRPC")
        self.assertGreater(len(http_senders.acked), 0, "nothing acknowledged over HTTP")
        if d.lost:
            in_file = spool_rows_holding(os.path.join(copy, "spool.db"), d.lost_ids)
            last = {}
            for i in senders.acked:
                sender, seq = sender_seq(i)
                last[sender] = max(seq, last.get(sender, -1))
            self.fail("acknowledged spans lost across kill -9: %s; in the spool file at the "
                      "kill: %s; each sender's last acknowledged seq: %s; acknowledged %.3f s "
                      "before the kill\n--- first run\n%s\n--- after the restart\n%s"
                      % (d.describe_lost(), "unreadable" if in_file is None else
                         describe_ids(in_file) or "none", last,
                         killed_at - max(senders.acked_at[i] for i in d.lost_ids),
                         agent.log_tail(), agent2.log_tail()))
        self.assertGreater(pending, 0, "the spool held nothing when the agent was killed: "
                           "the test did not test anything")
        self.assertEqual(d.unexpected, set(), "spans delivered that the senders were refused")
        self.assertEqual(d.out_of_order[:5], [],
                         "(sender, seq, after seq) first delivered out of order")
        self.assert_clean_exit(agent2)

    # --- 4. disk full

    def disk_full(self, overflow):
        backend = GrpcBackend(self, up=False)
        agent = self.start_agent(traces_body(backend.port, storage_yaml(self.spool),
                                             queue_size=500, overflow=overflow))
        before = dropped_by_reason(agent.metrics())
        senders = SeqSenders(agent.grpc_endpoint, count=2, spans=10, payload=1024,
                             interval=0.005).start()
        self.addCleanup(senders.stop)
        phases = Phases("backend down")
        self.wait_metric(agent, SPOOL_WRITTEN, lambda v: v > 0, "spilled to the spool")
        files = [self.spool, self.spool + "-wal"]
        limit = max(os.path.getsize(f) for f in files if os.path.exists(f)) + (1 << 20)
        pid = agent.proc.pid
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))
        phases.mark("file-size limit set")
        limited_at = senders.acked_count()
        self.wait_metric(agent, SPOOL_WRITE_ERRORS, lambda v: v > 0,
                         "spool writes failing past RLIMIT_FSIZE %d" % limit, reason="disk_full")
        self.wait_metric(agent, SPOOL_ACCEPTING, lambda v: v == 0, "the spool full")
        phases.mark("spool not accepting")
        time.sleep(3)   # the overflow policy at work
        self.assert_alive(agent, "with the spool's disk full")
        m_full = agent.metrics()
        refused_full = len(senders.refused)
        acked_full = senders.acked_count()
        # Space returns; the backend still down: the spool must accept again.
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))
        phases.mark("limit lifted")
        written = self.metric(agent, SPOOL_WRITTEN)
        self.wait_metric(agent, SPOOL_ACCEPTING, lambda v: v == 1, "the spool accepting again")
        self.wait_metric(agent, SPOOL_WRITTEN, lambda v: v > written,
                         "spool writes after the limit was lifted")
        backend.up()
        phases.mark("backend up")
        time.sleep(2)
        senders.stop()
        if overflow == "refuse":   # with drop, some acknowledged spans are meant to be lost
            self.wait_delivered(senders.acked, backend.arrived)
        self.wait_drained(agent)
        time.sleep(0.5)
        d = Delivery(senders.acked, senders.unknown, backend.arrived())
        dropped = dropped_by_reason(agent.metrics()) - before
        errors = {l.get("reason"): int(v) for _, l, v in m_full.find(SPOOL_WRITE_ERRORS)}
        result_line(self.name(), sent=senders.sent, acked=len(senders.acked),
                    delivered=d.delivered, duplicated=d.duplicated, lost=d.lost,
                    refused=len(senders.refused), refused_while_full=refused_full,
                    dropped=sum(dropped.values()),
                    dropped_by_reason=",".join("%s:%d" % x for x in sorted(dropped.items()))
                    or "none",
                    write_errors=",".join("%s:%d" % x for x in sorted(errors.items())),
                    fsize_limit_kib=limit // 1024, acked_before_limit=limited_at,
                    acked_while_full=acked_full - limited_at)
        self.assertEqual(senders.errors[:5], [], "answers that are neither OK nor a retryable "
                         "refusal")
        self.assertEqual(d.unexpected, set(), "spans delivered that the senders were refused")
        self.assert_no_duplicates(d, phases, senders, backend, agent)
        self.assert_clean_exit(agent)
        return d, dropped, refused_full

    def test_4a_disk_full_refuse(self):
        d, dropped, refused = self.disk_full("refuse")
        self.assertGreater(refused, 0, "no refusal while the spool's disk was full")
        self.assertEqual(d.lost, 0, "acknowledged spans lost (%s ...)" % d.describe_lost())
        self.assertEqual(dict(dropped), {}, "lookout_dropped_items_total by reason")

    def test_4b_disk_full_drop(self):
        d, dropped, refused = self.disk_full("drop")
        self.assertEqual(refused, 0, "refusals with overflow: drop")
        self.assertGreater(dropped.get("spool_full", 0), 0,
                           "nothing counted as dropped (spool_full) while the disk was full")
        self.assertEqual(set(dropped) - {"spool_full"}, set(),
                         "dropped for other reasons: %s" % dict(dropped))
        if d.unknown_lost == 0:
            self.assertEqual(d.lost, dropped["spool_full"], "acknowledged spans lost vs "
                             "lookout_dropped_items_total{reason=\"spool_full\"}")
        else:
            self.assertTrue(d.lost <= dropped["spool_full"] <= d.lost + d.unknown_lost,
                            "lost %d (+%d unanswered) vs dropped %d"
                            % (d.lost, d.unknown_lost, dropped["spool_full"]))

    # --- 5. corrupt spool at start

    def corrupt_start(self, make_corrupt, compare_from=0):
        """|make_corrupt| writes the corrupt spool and returns its bytes; the
        moved file must hold them from |compare_from| on (opening a database
        may rewrite its header)."""
        garbage = make_corrupt()
        t_before = int(time.time())
        backend = GrpcBackend(self, up=False)
        agent = self.start_agent(traces_body(backend.port, storage_yaml(self.spool),
                                             queue_size=200, batch=100))
        moved = [f for f in os.listdir(self.spool_dir) if re.fullmatch(r"spool\.db\.corrupt-\d+", f)]
        self.assertEqual(len(moved), 1, "files in the spool directory: %s\n%s"
                         % (sorted(os.listdir(self.spool_dir)), agent.log_tail()))
        suffix = moved[0][len("spool.db.corrupt-"):]
        self.assertTrue(suffix.isdigit() and t_before - 1 <= int(suffix) <= time.time() + 1,
                        "%s: want .corrupt-<unix seconds>" % moved[0])
        with open(os.path.join(self.spool_dir, moved[0]), "rb") as f:
            self.assertEqual(f.read()[compare_from:], garbage[compare_from:],
                             "the moved file is not the corrupt one")
        errors = [line for line in agent.stderr_text().splitlines()
                  if '"level":"error"' in line and ".corrupt-" in line]
        self.assertTrue(errors, "no error log line naming the moved file\n" + agent.log_tail())
        self.assertEqual(self.metric(agent, SPOOL_MOVED_ASIDE), 1, SPOOL_MOVED_ASIDE)
        # The fresh spool spills and delivers.
        acked = send_acked(self, agent.grpc_endpoint, 1, 2000, payload=512)
        self.wait_metric(agent, SPOOL_WRITTEN, lambda v: v > 0, "spilled to the fresh spool")
        backend.up()
        self.wait_delivered(acked, backend.arrived)
        self.wait_drained(agent)
        time.sleep(0.5)
        d = Delivery(acked, (), backend.arrived())
        result_line(self.name(), sent=len(acked), acked=len(acked), delivered=d.delivered,
                    duplicated=d.duplicated, lost=d.lost, moved_to=moved[0],
                    error_line=len(errors))
        self.assertEqual((d.lost, d.duplicated), (0, 0), "lost, duplicated\n" + agent.log_tail())
        self.assertEqual(d.out_of_order[:5], [], "delivered out of order")
        self.assert_clean_exit(agent)

    def test_5a_corrupt_spool_garbage(self):
        def garbage():
            data = b"not a database\n" + os.urandom(64 << 10)
            with open(self.spool, "wb") as f:
                f.write(data)
            return data
        self.corrupt_start(garbage)

    def test_5b_corrupt_spool_torn_pages(self):
        """A spool a first agent left with data (SIGTERM, backend down), whose
        pages after the first are then overwritten with random bytes (the
        header stays valid: SQLite opens it; only checking finds the damage)."""
        def torn():
            agent = self.start_agent(traces_body(dead_port(), storage_yaml(self.spool),
                                                 queue_size=200, batch=100))
            send_acked(self, agent.grpc_endpoint, 7, 2000, payload=512)
            self.assert_clean_exit(agent)
            for ext in ("-wal", "-shm"):
                if os.path.exists(self.spool + ext):
                    os.unlink(self.spool + ext)
            with open(self.spool, "r+b") as f:
                header = f.read(100)
                self.assertTrue(header.startswith(b"SQLite format 3\0"), "not an SQLite file")
                page = int.from_bytes(header[16:18], "big")
                page = 65536 if page == 1 else page
                size = os.path.getsize(self.spool)
                self.assertGreaterEqual(size, 4 * page, "the first agent's spool holds "
                                        "%d bytes: no data was spooled" % size)
                f.seek(page)
                f.write(os.urandom(size - page))
            with open(self.spool, "rb") as f:
                return f.read()
        self.corrupt_start(torn, compare_from=100)

    # --- 6. reloads that change storage under load

    def test_6_reload_storage_under_load(self):
        backend = GrpcBackend(self)
        paths = {k: os.path.join(self.spool_dir, "%s.db" % k) for k in "AB"}

        def body(storage):
            return traces_body(backend.port, storage, queue_size=1000, batch=200)
        agent = self.start_agent(body(""))
        senders = SeqSenders(agent.grpc_endpoint, count=2, spans=5, payload=256,
                             interval=0.005).start()
        self.addCleanup(senders.stop)
        reloads = [0]
        phases = Phases("start, no storage")
        steps = []   # (what, spans acked so far, spool batches written in the step)

        def reload(storage, what):
            path = agent.config_path
            head = agent.config_text.split("\nadmin:\n")[0] + \
                "\nadmin:\n  endpoint: 127.0.0.1:%d\n" % agent.admin_port
            with open(path + ".new", "w") as f:
                f.write(head + body(storage).replace("@GRPC_PORT@", str(agent.grpc_port)))
            os.replace(path + ".new", path)
            agent.send_signal(signal.SIGHUP)
            reloads[0] += 1
            ok = wait_until(lambda: self.metric(agent, "lookout_config_reloads_total",
                                                result="success") >= reloads[0], 10, 0.05)
            self.assertTrue(ok, "reload %d (%s) did not succeed: failures %r\n%s"
                            % (reloads[0], what, self.metric(agent, "lookout_config_reloads_total",
                                                             result="failure"), agent.log_tail()))
            written = self.metric(agent, SPOOL_WRITTEN)
            phases.mark(what)
            time.sleep(2.5)
            after = self.metric(agent, SPOOL_WRITTEN)
            # A new spool may count from 0 again: any change is writing.
            steps.append((what, senders.acked_count(), after - written if after >= written
                          else after))

        # An old spool file keeps what its queue could not send within
        # shutdown_timeout after the reload, until storage.path names it again
        # (docs/configuration.md, storage): the last steps name A and B again.
        def backend_to(up):
            (backend.up if up else backend.down)()
            phases.mark("backend " + ("up" if up else "down"))

        time.sleep(1)
        backend_to(False)
        reload(storage_yaml(paths["A"]), "add storage A")
        reload(storage_yaml(paths["A"], durable=True), "A durable")
        reload(storage_yaml(paths["B"], durable=True), "move to B, durable")
        backend_to(True)
        reload(storage_yaml(paths["B"]), "B not durable")
        backend_to(False)
        reload("", "remove storage")
        reload(storage_yaml(paths["A"]), "add storage A again")
        backend_to(True)
        time.sleep(2)
        reload(storage_yaml(paths["B"]), "move to B again")
        senders.stop()
        self.wait_delivered(senders.acked, backend.arrived)
        self.wait_drained(agent)
        time.sleep(0.5)
        d = Delivery(senders.acked, senders.unknown, backend.arrived())
        dropped = dropped_by_reason(agent.metrics())
        result_line(self.name(), sent=senders.sent, acked=len(senders.acked),
                    delivered=d.delivered, duplicated=d.duplicated, lost=d.lost,
                    refused=len(senders.refused), unanswered=len(senders.unknown),
                    reloads=reloads[0], dropped=sum(dropped.values()),
                    out_of_order=len(d.out_of_order),
                    spooled_per_step=",".join(str(w) for _, _, w in steps))
        self.assertEqual(senders.errors[:5], [], "answers that are neither OK nor a retryable "
                         "refusal")
        self.assertEqual(d.lost, 0, "acknowledged spans lost (%s ...); acked after each step: "
                         "%s\n%s" % (d.describe_lost(), steps, agent.log_tail()))
        self.assert_no_duplicates(d, phases, senders, backend, agent)
        self.assertEqual(d.unexpected, set(), "spans delivered that the senders were refused")
        self.assertEqual(dict(dropped), {}, "lookout_dropped_items_total by reason")
        # With storage and the backend down, the queue (1000 spans) overflows
        # into the spool within the step.
        idle = [what for what, _, w in steps if w == 0 and what in
                ("add storage A", "A durable", "move to B, durable", "add storage A again")]
        self.assertEqual(idle, [], "steps with storage and the backend down that wrote "
                         "nothing to the spool: %s" % steps)
        self.assert_clean_exit(agent)


if __name__ == "__main__":
    unittest.main()
