#!/bin/sh
# Offline checks of the compose stack (no Docker engine needed): every YAML file
# parses, promtool accepts the Prometheus config, Prometheus keeps exemplars,
# every port is published on 127.0.0.1 only and none takes one of lookout's host
# ports, Jaeger's OTLP ports are published as 14317 and 14318, images are pinned,
# bind-mounted files exist, the Grafana data sources and the Loki schema are what
# docs/compose.md says. The Grafana checks (check_grafana.py): dashboards parse,
# uids are unique and every data source a link or panel names is provisioned,
# the log/trace/metric links are wired as docs/compose.md says, and every PromQL
# query parses and names only metrics and labels lookout exports or the
# semantic conventions define.
# When `docker compose` is installed it also validates the file with it.
# Ends with "compose: N passed, N failed"; exit status non-zero on any failure.

cd "$(dirname "$0")" || exit 1

passed=0
failed=0

# check NAME COMMAND...: runs COMMAND, counts it, shows its output on failure.
check() {
    name=$1
    shift
    if out=$("$@" 2>&1); then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        printf '%s\n' "$out" | sed 's/^/     /'
    fi
}

# Debian's PyYAML loads only in /usr/bin/python3; elsewhere (macOS) use whichever
# python3 has it.
PY=
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import yaml' >/dev/null 2>&1; then PY=$p; break; fi
done

# py SNIPPET: runs a Python snippet that exits non-zero and prints why on failure;
# an exception (unreadable file, YAML error, missing key) is one line, not a trace.
py() {
    "$PY" -c '
import sys
try:
    exec(sys.argv[1], {})
except SystemExit:
    raise
except Exception as e:
    print("%s: %s" % (type(e).__name__, e))
    sys.exit(1)
' "$1"
}

no_python() {
    echo "no python3 with PyYAML (apt-get install python3-yaml, or pip install pyyaml)"
    return 1
}

if [ -z "$PY" ]; then
    check "python3 with PyYAML" no_python
    echo "compose: $passed passed, $failed failed"
    exit 1
fi

# --- every YAML file parses
for f in $(find . -name '*.yml' -o -name '*.yaml' | sort); do
    check "yaml parses: ${f#./}" py "
import sys, yaml
with open('$f') as fh:
    yaml.safe_load(fh)
"
done

# --- Prometheus config
if command -v promtool >/dev/null 2>&1; then
    check "promtool check config prometheus/prometheus.yml" \
        promtool check config prometheus/prometheus.yml
else
    check "promtool check config (promtool not found: make deps)" false
fi

# Shared preamble: loads docker-compose.yml as C and parses a short-syntax port
# "[IP:]HOST:CONTAINER[/proto]" (or the long syntax mapping) into
# (host_ip, published, target).
LOAD='
import sys, yaml
C = yaml.safe_load(open("docker-compose.yml"))
S = C["services"]
def ports(svc):
    for p in S[svc].get("ports", []):
        if isinstance(p, dict):
            yield str(p.get("host_ip", "")), str(p.get("published", "")), str(p.get("target", ""))
            continue
        parts = str(p).split("/")[0].split(":")
        if len(parts) == 3:
            yield parts[0], parts[1], parts[2]
        elif len(parts) == 2:
            yield "", parts[0], parts[1]
        else:
            yield "", "", parts[0]
bad = []
'

check "every published port is bound to 127.0.0.1" py "$LOAD
for svc in S:
    if S[svc].get('network_mode') == 'host':
        bad.append(svc + ': network_mode host bypasses the 127.0.0.1 bindings')
    for ip, pub, tgt in ports(svc):
        if ip != '127.0.0.1':
            bad.append('%s: %s:%s -> %s' % (svc, ip or '(all interfaces)', pub, tgt))
print('\n'.join(bad))
sys.exit(1 if bad else 0)
"

check "no service publishes lookout's host ports 4317 4318 9464" py "$LOAD
for svc in S:
    for ip, pub, tgt in ports(svc):
        if pub in ('4317', '4318', '9464'):
            bad.append('%s publishes host port %s' % (svc, pub))
print('\n'.join(bad))
sys.exit(1 if bad else 0)
"

check "jaeger OTLP (4317, 4318) published as 127.0.0.1:14317, 14318, UI as 16686" py "$LOAD
got = set((ip, pub, tgt) for ip, pub, tgt in ports('jaeger'))
for want in (('127.0.0.1', '14317', '4317'), ('127.0.0.1', '14318', '4318'),
             ('127.0.0.1', '16686', '16686')):
    if want not in got:
        bad.append('jaeger does not publish %s:%s -> %s' % want)
env = S['jaeger'].get('environment', {})
if str(env.get('COLLECTOR_OTLP_ENABLED', 'true')).lower() != 'true':
    bad.append('jaeger: COLLECTOR_OTLP_ENABLED is not true')
print('\n'.join(bad))
sys.exit(1 if bad else 0)
"

check "loki 3100, prometheus 9090, grafana 3000 published" py "$LOAD
for svc, port in (('loki', '3100'), ('prometheus', '9090'), ('grafana', '3000')):
    if ('127.0.0.1', port, port) not in set(ports(svc)):
        bad.append('%s does not publish 127.0.0.1:%s' % (svc, port))
print('\n'.join(bad))
sys.exit(1 if bad else 0)
"

check "images pinned to a version (no :latest, no bare name)" py "$LOAD
for svc in S:
    img = S[svc].get('image', '')
    tag = img.rsplit(':', 1)[1] if ':' in img.split('/')[-1] else ''
    if not tag or tag == 'latest':
        bad.append('%s: %s' % (svc, img or '(no image)'))
print('\n'.join(bad))
sys.exit(1 if bad else 0)
"

check "prometheus keeps exemplars (--enable-feature=exemplar-storage)" py "$LOAD
cmd = S['prometheus'].get('command', [])
cmd = cmd.split() if isinstance(cmd, str) else cmd
features = [f for a in cmd if a.startswith('--enable-feature=')
            for f in a.split('=', 1)[1].split(',')]
if 'exemplar-storage' not in features:
    print('prometheus command: %s' % cmd)
    sys.exit(1)
"

check "bind-mounted files and directories exist" py "$LOAD
import os
for svc in S:
    for v in S[svc].get('volumes', []):
        src = v['source'] if isinstance(v, dict) else str(v).split(':')[0]
        if src.startswith('.') and not os.path.exists(src):
            bad.append('%s: %s does not exist' % (svc, src))
print('\n'.join(bad))
sys.exit(1 if bad else 0)
"

check "prometheus scrapes lookout at host.docker.internal:9464, honor_labels" py "
import sys, yaml
P = yaml.safe_load(open('prometheus/prometheus.yml'))
jobs = [j for j in P.get('scrape_configs', []) if j.get('job_name') == 'lookout']
targets = [t for j in jobs for sc in j.get('static_configs', []) for t in sc.get('targets', [])]
if 'host.docker.internal:9464' not in targets:
    print('job lookout targets: %s' % targets)
    sys.exit(1)
# The apps' job and instance (service.name, service.instance.id) must survive.
if not all(j.get('honor_labels') is True for j in jobs):
    print('job lookout lacks honor_labels: true')
    sys.exit(1)
"

check "prometheus maps host.docker.internal to the host (host-gateway, Linux)" py "$LOAD
if 'host.docker.internal:host-gateway' not in S['prometheus'].get('extra_hosts', []):
    print('prometheus extra_hosts: %s' % S['prometheus'].get('extra_hosts'))
    sys.exit(1)
"

check "grafana datasources: Prometheus, Loki, Jaeger at their compose services" py "
import glob, sys, yaml
want = {'prometheus': 'http://prometheus:9090', 'loki': 'http://loki:3100',
        'jaeger': 'http://jaeger:16686'}
got = {}
for f in sorted(glob.glob('grafana/provisioning/datasources/*.yml')):
    d = yaml.safe_load(open(f))
    if d.get('apiVersion') != 1:
        print(f + ': apiVersion is not 1'); sys.exit(1)
    for ds in d.get('datasources', []):
        got[ds['type']] = ds.get('url')
bad = ['%s: url %r, want %r' % (t, got.get(t), u) for t, u in want.items() if got.get(t) != u]
print('\n'.join(bad))
sys.exit(1 if bad else 0)
"

check "loki: tsdb, schema v13, structured metadata allowed" py "
import sys, yaml
L = yaml.safe_load(open('loki/loki.yaml'))
last = L['schema_config']['configs'][-1]
ok = (last.get('store') == 'tsdb' and last.get('schema') == 'v13'
      and L.get('limits_config', {}).get('allow_structured_metadata') is True)
sys.exit(0 if ok else 1)
"

# --- Grafana: dashboards, links between the data sources, PromQL (check_grafana.py)
grafana() {
    "$PY" check_grafana.py "$@"
}
for f in grafana/dashboards/*.json; do
    check "json parses: $f" py "
import json
with open('$f') as fh:
    json.load(fh)
"
done
check "dashboards have a uid, a title and panels" grafana dashboards-json
check "dashboard uids and titles, data source uids unique" grafana uids
check "every data source uid a link, panel or variable names is provisioned" grafana datasource-refs
check "every \$ in grafana/provisioning is escaped as \$\$" grafana escapes
check "dashboards provider reads grafana/dashboards, as mounted" grafana dashboards-mounted
check "loki: trace_id structured metadata (and trace ids in lines) link to jaeger" grafana loki-links
check "jaeger: spans link to their trace's logs (loki) and RED metrics (prometheus)" grafana jaeger-links
check "prometheus: exemplars' trace_id links to jaeger, latency panel shows them" grafana exemplars
check "PromQL queries name only lookout's and semconv metrics and their labels" grafana promql-names
check "PromQL queries parse (promtool check rules)" grafana promql-parses

# --- optional: Docker's own validation, where the compose plugin is installed
if docker compose version >/dev/null 2>&1; then
    check "docker compose config" docker compose -f docker-compose.yml config -q
else
    echo "skip docker compose config (docker compose not installed)"
fi

if command -v shellcheck >/dev/null 2>&1; then
    check "shellcheck check.sh" shellcheck -s sh check.sh
else
    echo "skip shellcheck (not installed)"
fi

echo "compose: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
