"""The valgrind smoke run (see smoke.sh): build/lookout under memcheck with a
small config (OTLP receiver on gRPC and HTTP, a lines socket, the admin
listener, one OTLP exporter to an in-process sink for traces and logs, a durable
disk spool); 20 gRPC
exports, 20 HTTP POSTs (half gzip), 200 lines, a /metrics scrape; everything
must reach the sink; then SIGTERM, and the agent must exit 0: valgrind's
--error-exitcode (97) says a memory error or a definite leak was found. The
suppressions (lookout.supp) cover third-party libraries only."""

import gzip
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "test", "integration"))

import helpers  # noqa: E402
import otlp_sink  # noqa: E402

VALGRIND_ERROR = 97
OUT = os.path.join(REPO, "build", "valgrind")


def main():
    os.makedirs(OUT, exist_ok=True)
    sink = otlp_sink.OtlpSink()
    sink.start()
    grpc_port, http_port, admin_port = helpers.free_ports(3)
    sock = "/tmp/lk-vg-%d.sock" % os.getpid()
    config = os.path.join(OUT, "lookout.yaml")
    spool = os.path.join(OUT, "spool.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(spool + suffix):
            os.unlink(spool + suffix)
    with open(config, "w") as f:
        # A durable spool: its thread, grouped commits and deletes run too.
        f.write("log_level: info\nshutdown_timeout: 10s\nadmin:\n  endpoint: 127.0.0.1:%d\n"
                "storage:\n  path: %s\n  durable: true\n"
                "receivers:\n  otlp:\n    protocols:\n"
                "      grpc:\n        endpoint: 127.0.0.1:%d\n"
                "      http:\n        endpoint: 127.0.0.1:%d\n"
                "  lines:\n    path: %s\n"
                "exporters:\n  otlp/sink:\n    endpoint: 127.0.0.1:%d\n"
                "    batch: {timeout: 100ms}\n"
                "pipelines:\n  traces:\n    receivers: [otlp]\n    exporters: [otlp/sink]\n"
                "  logs:\n    receivers: [lines]\n    exporters: [otlp/sink]\n"
                % (admin_port, spool, grpc_port, http_port, sock, sink.port))
    log = os.path.join(OUT, "valgrind.log")
    cmd = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
           "--error-exitcode=%d" % VALGRIND_ERROR, "--track-origins=yes",
           "--suppressions=" + os.path.join(HERE, "lookout.supp"), "--log-file=" + log,
           os.environ.get("LOOKOUT_BIN", os.path.join(REPO, "build", "lookout")), "-c", config]
    print("valgrind smoke: " + " ".join(cmd), flush=True)
    with open(os.path.join(OUT, "stderr.log"), "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        def ready():
            if proc.poll() is not None:
                raise SystemExit("agent exited with %d before ready" % proc.returncode)
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % admin_port,
                                            timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        if not helpers.wait_until(ready, 120, interval=0.5):
            raise SystemExit("not ready within 120 s")
        client = helpers.Client("127.0.0.1:%d" % grpc_port)
        want = set()
        for i in range(20):
            req = helpers.make_request("vg-grpc-%d" % i, resources=1, scopes=2, spans=3)
            client.export(req, timeout=30, compression=None)
            want.update(sp.span_id for rs in req.resource_spans for ss in rs.scope_spans
                        for sp in ss.spans)
        client.close()
        for i in range(20):
            req = helpers.make_request("vg-http-%d" % i, resources=1, scopes=1, spans=2)
            body, headers = req.SerializeToString(), {"Content-Type": "application/x-protobuf"}
            if i % 2:
                body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
            r = urllib.request.urlopen(urllib.request.Request(
                "http://127.0.0.1:%d/v1/traces" % http_port, body, headers), timeout=30)
            if r.status != 200:
                raise SystemExit("POST answered %d" % r.status)
            want.update(sp.span_id for rs in req.resource_spans for ss in rs.scope_spans
                        for sp in ss.spans)
        lines = ['{"level":"info","msg":"vg line %d"}' % i for i in range(200)]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(sock)
            s.sendall("".join(line + "\n" for line in lines).encode())
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=30) as r:
            r.read()
        ok = sink.wait_for(lambda s: want <= {sp.span_id for _, _, sp in s.spans()}
                           and s.item_count(otlp_sink.LOGS) >= len(lines), 60)
        if not ok:
            raise SystemExit("not everything reached the sink: %d of %d spans, %d of %d lines"
                             % (len(want & {sp.span_id for _, _, sp in sink.spans()}), len(want),
                                sink.item_count(otlp_sink.LOGS), len(lines)))
        print("valgrind smoke: %d spans and %d lines delivered" % (len(want), len(lines)),
              flush=True)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sink.stop()
    with open(log) as f:
        text = f.read()
    summary = [line for line in text.splitlines() if "ERROR SUMMARY" in line or
               "definitely lost" in line]
    print("\n".join(summary), flush=True)
    if rc != 0:
        print(text[-20000:])
        raise SystemExit("exit status %d after SIGTERM (%d: valgrind found errors); log: %s"
                         % (rc, VALGRIND_ERROR, log))


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print("valgrind smoke: passed in %.0f s" % (time.monotonic() - t0))
