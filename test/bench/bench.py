"""make bench: lookout's throughput and CPU cost per item, measured end to end.

For each scenario and each of RUNS runs: a fresh sink (build/bench/sink, lookout's
own receivers counting and discarding, plus a Loki push endpoint), a fresh agent
(build/lookout on a config written here), then the load generator
(build/bench/loadgen) sends a fixed amount of pre-serialised load. The run ends
when the sink has counted every item. Reported per scenario, as the median of the
runs:

  sent       items the generator got accepted by the agent
  delivered  items the sink counted
  cpu_us     agent CPU time (user + system, all threads, from /proc/PID/stat, or
             ps on systems without /proc) between the start of the load and the
             last delivery, divided by the items: microseconds per item
  items/s    items over the wall time from the start of the load to the last
             delivery
  peak RSS   the agent's peak resident set size (VmHWM; sampled on systems
             without /proc)

Also the agent's idle RSS with the default configuration's shape. Results go to
stdout as a table and to build/bench/results.json. Run from the repository root:
/usr/bin/python3 test/bench/bench.py [--runs N] [--scale F] [--only NAME,...]
"""

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, "build")
AGENT = os.path.join(BUILD, "lookout")
SINK = os.path.join(BUILD, "bench", "sink")
LOADGEN = os.path.join(BUILD, "bench", "loadgen")
OUT = os.path.join(BUILD, "bench")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def http_get(port, path, timeout=2.0):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.status, r.read().decode()


def metric_sum(text, name):
    """Sum of every series of |name| in a Prometheus text page."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_ready(port, proc, what, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %d before it was ready" % (what, proc.returncode))
        try:
            if http_get(port, "/readyz", 0.5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("%s not ready within %.0fs" % (what, timeout))


def proc_cpu_seconds(pid):
    """User + system CPU of |pid|, all its threads."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except FileNotFoundError:
        out = subprocess.run(["ps", "-o", "time=", "-p", str(pid)], capture_output=True,
                             text=True).stdout.strip()
        secs = 0.0
        for part in out.replace("-", ":").split(":"):
            secs = secs * 60 + float(part)
        return secs


def proc_rss_kib(pid, peak=False):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:" if peak else "VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True,
                             text=True).stdout.strip()
        return int(out or 0)
    return 0


class Proc:
    def __init__(self, args, name, tmp):
        self.name = name
        self.err_path = os.path.join(tmp, name + ".err")
        with open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=err)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def tail(self, n=15):
        with open(self.err_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])


AGENT_COMMON = """log_level: warn
shutdown_timeout: 2s
admin: {{endpoint: 127.0.0.1:{admin}}}
"""

OTLP_RECEIVER = """  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:{grpc}}}
      http: {{endpoint: 127.0.0.1:{http}}}
"""

LINES_RECEIVER = """  lines:
    path: {sock}
"""


def agent_config(s, ports):
    receivers = OTLP_RECEIVER.format(**ports)
    if s["receiver"] == "lines":
        receivers += LINES_RECEIVER.format(**ports)
    exporter = {
        "otlp": "  otlp/sink:\n    endpoint: 127.0.0.1:{sink_grpc}\n    compression: none\n",
        # the exporter as the default configuration has it: compression left to
        # its default (which the default config file also names)
        "otlp-default": "  otlp/sink:\n    endpoint: 127.0.0.1:{sink_grpc}\n",
        "otlp-gzip": "  otlp/sink:\n    endpoint: 127.0.0.1:{sink_grpc}\n    compression: gzip\n",
        "otlphttp": "  otlphttp/sink:\n    endpoint: http://127.0.0.1:{sink_http}\n"
                    "    compression: %s\n" % OPTIONS["otlphttp_compression"],
        "loki": "  loki:\n    endpoint: http://127.0.0.1:{sink_loki}/loki/api/v1/push\n",
        "prometheus": "  prometheus: {{}}\n",
        "prometheusremotewrite": "  prometheusremotewrite:\n"
                                 "    endpoint: http://127.0.0.1:{sink_loki}/api/v1/write\n",
    }[s["exporter"]].format(**ports)
    xname = {"otlp": "otlp/sink", "otlp-default": "otlp/sink", "otlp-gzip": "otlp/sink",
             "otlphttp": "otlphttp/sink",
             "loki": "loki",
             "prometheus": "prometheus",
             "prometheusremotewrite": "prometheusremotewrite"}[s["exporter"]]
    rname = "lines" if s["receiver"] == "lines" else "otlp"
    storage = ""
    if "storage" in s:
        storage = ("storage:\n  path: %s\n  durable: %s\n"
                   % (os.path.join(ports["tmp"], "spool.db"), "true" if s["storage"] else "false"))
    return (AGENT_COMMON.format(**ports) + storage + "receivers:\n" + receivers + "exporters:\n"
            + exporter
            + "pipelines:\n  %s:\n    receivers: [%s]\n    exporters: [%s]\n"
            % (s["signal"], rname, xname))


def bench_ports(tmp):
    """Free ports for the agent and the sink, and the line socket's path."""
    names = ["admin", "grpc", "http", "sink_grpc", "sink_http", "sink_loki", "sink_admin"]
    ports = dict(zip(names, free_ports(len(names))))
    ports["sock"] = os.path.join(tmp, "lines.sock")
    ports["tmp"] = tmp
    return ports


def start_pair(config_text, tmp, ports):
    """A sink, then an agent on |config_text|, both ready."""
    sink = Proc([SINK, "--grpc", "127.0.0.1:%d" % ports["sink_grpc"],
                 "--http", "127.0.0.1:%d" % ports["sink_http"],
                 "--loki", "127.0.0.1:%d" % ports["sink_loki"],
                 "--admin", "127.0.0.1:%d" % ports["sink_admin"]], "sink", tmp)
    wait_ready(ports["sink_admin"], sink.p, "sink")
    cfg = os.path.join(tmp, "agent.yaml")
    with open(cfg, "w") as f:
        f.write(config_text)
    agent = Proc([AGENT, "-c", cfg], "agent", tmp)
    try:
        wait_ready(ports["admin"], agent.p, "agent")
    except RuntimeError:
        sink.stop()
        raise RuntimeError("agent did not start:\n" + agent.tail())
    return sink, agent


def delivered(s, sink_admin, agent_admin):
    """Items the sink counted, or for the Prometheus exporters the points the
    agent counts as sent (the prometheus exporter has no sink: the store is
    the end; remote write sends each series a batch updated once, so the
    sink's samples are fewer than the points)."""
    port = agent_admin if s.get("delivered_at") == "agent" else sink_admin
    _, text = http_get(port, "/metrics")
    return int(metric_sum(text, s["delivered_metric"]))


PERF = {"file": None, "call_graph": "fp"}
OPTIONS = {"otlphttp_compression": "none"}


def one_run(s, scale):
    tmp = tempfile.mkdtemp(prefix="lookout-bench-")
    ports = bench_ports(tmp)
    sink, agent = start_pair(agent_config(s, ports), tmp, ports)
    try:
        target = {"grpc": "127.0.0.1:%d" % ports["grpc"], "http": "127.0.0.1:%d" % ports["http"],
                  "lines": ports["sock"]}[s["target"]]
        count = max(1, int(s["count"] * scale))
        args = [LOADGEN, "--mode", s["mode"], "--target", target,
                "--lines" if s["mode"] == "lines" else "--requests", str(count)] + s["args"]
        perf = None
        if PERF["file"]:
            perf = subprocess.Popen(["perf", "record", "-q", "--call-graph", PERF["call_graph"],
                                     "-o", PERF["file"], "-p", str(agent.p.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        cpu0 = proc_cpu_seconds(agent.p.pid)
        t0 = time.time()
        gen = subprocess.run(args, capture_output=True, text=True, timeout=240)
        if gen.returncode != 0:
            raise RuntimeError("loadgen failed: %s" % gen.stderr.strip())
        report = json.loads(gen.stdout.strip().splitlines()[-1])
        sent = int(report["items"])
        if report.get("failed"):
            raise RuntimeError("loadgen: %d requests failed" % report["failed"])
        deadline = time.time() + 120
        got = 0
        rss_peak = 0
        while time.time() < deadline:
            got = delivered(s, ports["sink_admin"], ports["admin"])
            rss_peak = max(rss_peak, proc_rss_kib(agent.p.pid))
            if got >= sent:
                break
            time.sleep(0.01)
        t1 = time.time()
        cpu1 = proc_cpu_seconds(agent.p.pid)
        if perf is not None:
            perf.send_signal(2)
            perf.wait(30)
        peak = proc_rss_kib(agent.p.pid, peak=True) or rss_peak
        if got < sent:
            raise RuntimeError("only %d of %d items delivered\n%s" % (got, sent, agent.tail()))
        return {"sent": sent, "delivered": got, "agent_cpu_s": cpu1 - cpu0,
                "cpu_us_per_item": (cpu1 - cpu0) / sent * 1e6, "wall_s": t1 - t0,
                "items_per_s": sent / (t1 - t0), "peak_rss_kib": peak,
                "loadgen": report}
    finally:
        agent.stop()
        sink.stop()


def idle_rss(tmp_scale):
    """RSS of an agent with the default configuration's receivers and exporters
    (OTLP gRPC + HTTP, a line socket, OTLP and Loki exporters), nothing sent."""
    tmp = tempfile.mkdtemp(prefix="lookout-bench-")
    ports = bench_ports(tmp)
    cfg = os.path.join(tmp, "agent.yaml")
    with open(cfg, "w") as f:
        f.write(AGENT_COMMON.format(**ports) + "receivers:\n" + OTLP_RECEIVER.format(**ports)
                + LINES_RECEIVER.format(**ports)
                + "exporters:\n  otlp/jaeger:\n    endpoint: 127.0.0.1:{sink_grpc}\n"
                  "  loki:\n    endpoint: http://127.0.0.1:{sink_loki}/loki/api/v1/push\n"
                  .format(**ports)
                + "pipelines:\n  traces: {receivers: [otlp], exporters: [otlp/jaeger]}\n"
                  "  logs: {receivers: [otlp, lines], exporters: [loki]}\n")
    agent = Proc([AGENT, "-c", cfg], "agent", tmp)
    try:
        wait_ready(ports["admin"], agent.p, "agent")
        time.sleep(1.0)
        rss = proc_rss_kib(agent.p.pid)
        anon = None
        try:
            with open("/proc/%d/status" % agent.p.pid) as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        anon = int(line.split()[1])
        except FileNotFoundError:
            pass
        return {"rss_kib": rss, "rss_anon_kib": anon}
    finally:
        agent.stop()


def prom_bench(runs):
    """build/bench/prom_bench (test/bench/prom_bench.c): the prometheus exporter's
    ingest CPU per point and render time of 100k series; the median of |runs|."""
    exe = os.path.join(BUILD, "bench", "prom_bench")
    if not os.access(exe, os.X_OK):
        return None
    got = []
    for _ in range(runs):
        out = subprocess.run([exe], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("prom_bench failed: %s" % out.stderr.strip())
        got.append(json.loads(out.stdout))
    return {k: statistics.median(g[k] for g in got) for k in got[0]}


def thread_ctx_switches(pid):
    """Voluntary context switches of every thread of |pid| (None without /proc)."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return total


def default_config(ports, compression=None):
    """config/lookout.yaml itself, its addresses moved to free ports and the sinks
    (and the Jaeger exporter's compression set to |compression| when given, to
    compare)."""
    with open(os.path.join(REPO, "config", "lookout.yaml")) as f:
        text = f.read()
    for old, new in (("127.0.0.1:9464", "127.0.0.1:%d" % ports["admin"]),
                     ("127.0.0.1:4317", "127.0.0.1:%d" % ports["grpc"]),
                     ("127.0.0.1:4318", "127.0.0.1:%d" % ports["http"]),
                     ("/tmp/lookout.sock", ports["sock"]),
                     ("127.0.0.1:14317", "127.0.0.1:%d" % ports["sink_grpc"]),
                     ("http://127.0.0.1:3100", "http://127.0.0.1:%d" % ports["sink_loki"])):
        if old not in text:
            raise RuntimeError("config/lookout.yaml no longer has %s" % old)
        text = text.replace(old, new)
    if compression is not None:
        text = text.replace("compression: auto", "compression: %s" % compression)
    return text.replace("log_level: info", "log_level: warn")


STEADY_SECONDS = 30


def steady(seconds=STEADY_SECONDS, compression=None):
    """The default configuration under a busy developer machine's load for
    |seconds|: 10k spans/s (100-span gRPC requests), 2k lines/s on the socket,
    1k metric points/s (100-point gRPC requests); then the same agent idle."""
    tmp = tempfile.mkdtemp(prefix="lookout-bench-")
    ports = bench_ports(tmp)
    sink, agent = start_pair(default_config(ports, compression), tmp, ports)
    try:
        time.sleep(1.0)
        pid = agent.p.pid
        grpc = "127.0.0.1:%d" % ports["grpc"]
        gens = [
            [LOADGEN, "--mode", "grpc-traces", "--target", grpc, "--items", "100",
             "--connections", "1", "--streams", "2", "--rate", "100",
             "--requests", str(100 * seconds)],
            [LOADGEN, "--mode", "lines", "--target", ports["sock"], "--connections", "1",
             "--rate", "2000", "--lines", str(2000 * seconds)],
            [LOADGEN, "--mode", "grpc-metrics", "--target", grpc, "--items", "100",
             "--connections", "1", "--streams", "1", "--rate", "10",
             "--requests", str(10 * seconds)],
        ]
        cpu0, cs0, t0 = proc_cpu_seconds(pid), thread_ctx_switches(pid), time.time()
        _, text = http_get(ports["admin"], "/metrics")
        batches0 = metric_sum(text, "lookout_exporter_request_duration_seconds_count")
        perf = None
        if PERF["file"]:
            perf = subprocess.Popen(["perf", "record", "-q", "--call-graph", PERF["call_graph"],
                                     "-o", PERF["file"], "-p", str(pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs = [subprocess.Popen(g, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for g in gens]
        rss_peak = 0
        while any(p.poll() is None for p in procs):
            rss_peak = max(rss_peak, proc_rss_kib(pid))
            time.sleep(0.2)
        for p in procs:
            out, err = p.communicate()
            if p.returncode != 0:
                raise RuntimeError("steady loadgen failed: %s" % err.strip())
        time.sleep(1.0)  # the last batches leave
        cpu1, cs1, t1 = proc_cpu_seconds(pid), thread_ctx_switches(pid), time.time()
        if perf is not None:
            perf.send_signal(2)
            perf.wait(30)
        _, text = http_get(ports["admin"], "/metrics")
        batches = metric_sum(text, "lookout_exporter_request_duration_seconds_count") - batches0
        wall = t1 - t0
        # Idle: the same agent with nothing coming in.
        time.sleep(1.0)
        icpu0, ics0, it0 = proc_cpu_seconds(pid), thread_ctx_switches(pid), time.time()
        time.sleep(10.0)
        icpu1, ics1, it1 = proc_cpu_seconds(pid), thread_ctx_switches(pid), time.time()
        return {
            "seconds": wall,
            "core_pct": (cpu1 - cpu0) / wall * 100,
            "wakeups_per_s": (cs1 - cs0) / wall if cs0 is not None else None,
            "batches_per_s": batches / wall,
            "peak_rss_kib": proc_rss_kib(pid, peak=True) or rss_peak,
            "idle_core_pct": (icpu1 - icpu0) / (it1 - it0) * 100,
            "idle_wakeups_per_s": (ics1 - ics0) / (it1 - it0) if ics0 is not None else None,
            "idle_rss_kib": proc_rss_kib(pid),
        }
    finally:
        agent.stop()
        sink.stop()


def compress_bench():
    """build/bench/compress_bench on a 512-span and a 512-record request from
    loadgen --dump: ratio and CPU per MiB of gzip (zlib, libdeflate), zstd and
    snappy at their levels."""
    exe = os.path.join(BUILD, "bench", "compress_bench")
    if not os.access(exe, os.X_OK):
        return None
    files = []
    for mode in ("grpc-traces", "grpc-logs"):
        path = os.path.join(OUT, mode + ".bin")
        subprocess.run([LOADGEN, "--mode", mode, "--items", "512", "--dump", path],
                       check=True, capture_output=True, timeout=60)
        files.append(path)
    out = subprocess.run([exe] + files, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError("compress_bench failed: %s" % out.stderr.strip())
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


GZIP_IN = {"name": "traces-gzip-in", "title": "as traces-grpc, the requests gzip-compressed "
           "(SDKs with OTEL_EXPORTER_OTLP_COMPRESSION=gzip)",
           "receiver": "otlp", "exporter": "otlp", "signal": "traces", "target": "grpc",
           "mode": "grpc-traces", "count": 4000, "args": ["--items", "512", "--connections", "2",
                                                           "--streams", "4", "--gzip", "1"],
           "delivered_metric": "lookout_receiver_accepted_spans_total", "unit": "span",
           "target_us": 0.8}

LINES_LOKI = {
    "name": "lines-loki", "title": "zerolog JSON lines (Unix socket) -> Loki protobuf+snappy",
    "receiver": "lines", "exporter": "loki", "signal": "logs", "target": "lines",
    "mode": "lines", "count": 2000000, "args": ["--connections", "4", "--line-bytes", "150"],
    "delivered_metric": "bench_sink_loki_entries_total", "unit": "line", "target_us": 0.5}

TRACES_GRPC = {
    "name": "traces-grpc", "title": "OTLP/gRPC traces -> OTLP/gRPC sink (512-span requests)",
    "receiver": "otlp", "exporter": "otlp", "signal": "traces", "target": "grpc",
    "mode": "grpc-traces", "count": 4000, "args": ["--items", "512", "--connections", "2",
                                                    "--streams", "4"],
    "delivered_metric": "lookout_receiver_accepted_spans_total", "unit": "span",
    "target_us": 0.4}

SCENARIOS = [
    TRACES_GRPC,
    {"name": "traces-default", "title": "as traces-grpc, the exporter's compression left to "
     "its default (what the default config runs)",
     "receiver": "otlp", "exporter": "otlp-default", "signal": "traces", "target": "grpc",
     "mode": "grpc-traces", "count": 4000, "args": ["--items", "512", "--connections", "2",
                                                     "--streams", "4"],
     "delivered_metric": "lookout_receiver_accepted_spans_total", "unit": "span",
     "target_us": 0.4},
    {"name": "traces-grpc-gzip", "title": "as traces-grpc, the exporter's requests "
     "gzip-compressed (compression: gzip, as for a remote backend)",
     "receiver": "otlp", "exporter": "otlp-gzip", "signal": "traces", "target": "grpc",
     "mode": "grpc-traces", "count": 4000, "args": ["--items", "512", "--connections", "2",
                                                     "--streams", "4"],
     "delivered_metric": "lookout_receiver_accepted_spans_total", "unit": "span",
     "target_us": 0.8},
    dict(TRACES_GRPC, name="traces-spool", storage=False,
         title="as traces-grpc, with a disk spool (storage, durable: false): the backend "
         "keeps up, so nothing goes to disk"),
    dict(TRACES_GRPC, name="traces-durable", storage=True,
         title="as traces-grpc, with storage durable: true: every request committed "
         "(fsync) before its answer, deleted once sent", target_us=4.0),
    GZIP_IN,
    dict(GZIP_IN, name="traces-gzip-big", count=1000,
         title="as traces-gzip-in, 2048-span requests (about 100 KB compressed: above the "
         "receivers' 64 KiB inflate-off-the-loop threshold)",
         args=["--items", "2048", "--connections", "2", "--streams", "4", "--gzip", "1"]),
    {"name": "traces-http", "title": "OTLP/HTTP protobuf traces -> OTLP/HTTP sink",
     "receiver": "otlp", "exporter": "otlphttp", "signal": "traces", "target": "http",
     "mode": "http-traces", "count": 4000, "args": ["--items", "512", "--connections", "4"],
     "delivered_metric": "lookout_receiver_accepted_spans_total", "unit": "span",
     "target_us": 0.5},
    LINES_LOKI,
    dict(LINES_LOKI, name="lines-durable", storage=True, target_us=4.0,
         title="as lines-loki with storage durable: true: a socket is read on only once "
         "what its last read held is committed"),
    {"name": "metrics-prom", "title": "OTLP/gRPC metrics -> prometheus exporter series store "
     "(512 points of 8 attributes per request, 512 series updated again and again)",
     "receiver": "otlp", "exporter": "prometheus", "signal": "metrics", "target": "grpc",
     "mode": "grpc-metrics", "count": 2000, "args": ["--items", "512", "--connections", "2",
                                                     "--streams", "4"],
     "delivered_metric": "lookout_exporter_sent_metric_points_total", "delivered_at": "agent",
     "unit": "point", "target_us": 0.5},
    {"name": "metrics-rw", "title": "OTLP/gRPC metrics -> prometheusremotewrite -> remote "
     "write sink (as metrics-prom; a batch sends each series it updated once)",
     "receiver": "otlp", "exporter": "prometheusremotewrite", "signal": "metrics",
     "target": "grpc", "mode": "grpc-metrics", "count": 2000,
     "args": ["--items", "512", "--connections", "2", "--streams", "4"],
     "delivered_metric": "lookout_exporter_sent_metric_points_total", "delivered_at": "agent",
     "unit": "point", "target_us": 1.0},
    {"name": "logs-grpc-loki", "title": "OTLP/gRPC logs -> Loki protobuf+snappy",
     "receiver": "otlp", "exporter": "loki", "signal": "logs", "target": "grpc",
     "mode": "grpc-logs", "count": 2000, "args": ["--items", "512", "--connections", "2",
                                                  "--streams", "4"],
     "delivered_metric": "bench_sink_loki_entries_total", "unit": "record", "target_us": 0.6},
]


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--otlphttp-compression", default="none",
                    help="compression of the otlphttp exporter in traces-http (none, gzip; the "
                         "sink, lookout's own receiver, takes no zstd)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every item count")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--perf", default="", help="record the agent with perf into this file "
                    "(the last run of the last scenario wins)")
    ap.add_argument("--call-graph", default="fp", help="perf --call-graph mode (fp, dwarf)")
    a = ap.parse_args(argv)
    OPTIONS["otlphttp_compression"] = a.otlphttp_compression
    PERF["file"] = a.perf or None
    PERF["call_graph"] = a.call_graph
    for path in (AGENT, SINK, LOADGEN):
        if not os.access(path, os.X_OK):
            print("bench: %s is missing (make bench builds it)" % path, file=sys.stderr)
            return 1
    os.makedirs(OUT, exist_ok=True)
    only = set(filter(None, a.only.split(",")))
    results = {"machine": {"cpus": os.cpu_count(), "system": platform.platform(),
                           "python": platform.python_version()},
               "runs": a.runs, "scale": a.scale, "scenarios": []}
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        results["git"] = rev
    except OSError:
        pass
    started = time.time()
    failed = False
    for s in SCENARIOS:
        if only and s["name"] not in only:
            continue
        runs = []
        try:
            for _ in range(a.runs):
                runs.append(one_run(s, a.scale))
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
            print("bench: %s: %s" % (s["name"], e), file=sys.stderr)
            failed = True
            continue
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("sent", "delivered", "cpu_us_per_item", "items_per_s", "peak_rss_kib",
                         "agent_cpu_s", "wall_s")}
        results["scenarios"].append({"name": s["name"], "title": s["title"], "unit": s["unit"],
                                     "target_cpu_us_per_item": s["target_us"], "median": med,
                                     "runs": runs})
    if not only or "prometheus" in only:
        results["prometheus"] = prom_bench(a.runs)
    if not only or "idle" in only:
        results["idle"] = idle_rss(a.scale)
    if not only or "compress" in only:
        try:
            results["compress"] = compress_bench()
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            print("bench: compress: %s" % e, file=sys.stderr)
            failed = True
    if not only or "steady" in only:
        try:
            results["steady"] = steady()
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
            print("bench: steady: %s" % e, file=sys.stderr)
            failed = True
    results["seconds"] = time.time() - started

    print()
    print("lookout bench (%s, %d CPUs, median of %d runs; agent CPU from /proc, %d Hz ticks)"
          % (results.get("git", "?"), os.cpu_count(), a.runs, TICK))
    hdr = "%-15s %10s %10s %12s %10s %12s %9s" % ("scenario", "sent", "delivered",
                                                  "cpu us/item", "target", "items/s",
                                                  "peak RSS")
    print(hdr)
    print("-" * len(hdr))
    for sc in results["scenarios"]:
        m = sc["median"]
        print("%-15s %10d %10d %12.3f %10s %12.0f %7.1f MiB"
              % (sc["name"], m["sent"], m["delivered"], m["cpu_us_per_item"],
                 "<= %.1f" % sc["target_cpu_us_per_item"], m["items_per_s"],
                 m["peak_rss_kib"] / 1024))
    if results.get("prometheus"):
        p = results["prometheus"]
        print("prometheus exporter (in process, median of %d): ingest %.3f us/point "
              "(1,000 series x 8 attributes, steady state; target <= 0.5); render %d series "
              "%.1f ms (%.1f MiB of text; target <= 30 ms); %.0f bytes RSS per series"
              % (a.runs, p["ingest_cpu_us_per_point"], p["render_series"], p["render_ms"],
                 p["render_bytes"] / 1048576, p["rss_bytes_per_series"]))
        print("remote write out (in process): %.3f us/sample to encode and snappy the series "
              "a batch touched, %.1f bytes/sample on the wire"
              % (p["rw_cpu_us_per_sample"], p["rw_bytes_per_sample"]))
    if "idle" in results:
        i = results["idle"]
        print("idle RSS: %.1f MiB (anonymous memory %s; the rest are shared library pages)"
              % (i["rss_kib"] / 1024,
                 "%.1f MiB" % (i["rss_anon_kib"] / 1024) if i["rss_anon_kib"] else "n/a"))
    if results.get("compress"):
        print("compression of one export request (loadgen's payloads; CPU us per MiB in, ratio):")
        for r in results["compress"]:
            print("  %-16s %-15s %-8s %8.0f us/MiB  ratio %.2f"
                  % (r["file"], r["codec"], "level %d" % r["level"] if r["codec"] != "snappy" else "",
                     r["cpu_us_per_mib"], r["ratio"]))
    if "steady" in results:
        st = results["steady"]
        print("steady (the default config, %.0f s of 10k spans/s + 2k lines/s + 1k points/s): "
              "%.2f %% of a core (target <= 0.5), %s wakeups/s of lookout's threads for %.1f "
              "batches/s sent, peak RSS %.1f MiB; idle: %.3f %% of a core, %s wakeups/s, "
              "RSS %.1f MiB"
              % (st["seconds"], st["core_pct"],
                 "%.0f" % st["wakeups_per_s"] if st["wakeups_per_s"] is not None else "n/a",
                 st["batches_per_s"], st["peak_rss_kib"] / 1024, st["idle_core_pct"],
                 "%.1f" % st["idle_wakeups_per_s"]
                 if st["idle_wakeups_per_s"] is not None else "n/a",
                 st["idle_rss_kib"] / 1024))
    print("total %.0f s; JSON: %s" % (results["seconds"], os.path.join(OUT, "results.json")))
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
