// Records every metric instrument kind of the official OpenTelemetry JavaScript SDK
// with known values, in two rounds, and exports each round with the SDK's OTLP
// metric exporter: the lookout side of test_node_prometheus.py, which checks what
// lookout's prometheus exporter makes of them on /metrics.
//
// Use: node emit_prom.mjs <grpc|http/protobuf|http/json> <endpoint> <cumulative|delta> <instance>
//   endpoint: grpc -> http://127.0.0.1:PORT; http/* -> http://127.0.0.1:PORT/v1/metrics
//   instance: the resource's service.instance.id (one per run, so that the runs'
//             series are told apart by their instance label)
// Env: INTEROP_NODE_DIR  where package.json + node_modules were installed
//                        (default <repo>/build/interop-node)
//
// Protocol with the caller: after each round's export this prints one JSON line
// {"round": N, "ok": bool, "points": data points exported, "temporalities":
// {instrument name: "delta" | "cumulative"} of the sums and histograms sent,
// "error": text}; after
// round 1 it waits for one line on stdin (the caller has checked /metrics) before
// round 2. Exit status: 0 when both exports succeeded, 1 when one failed, 2 on bad
// usage, 3 when not done within the deadline (stdin closed early also ends it: 1).
//
// What is recorded (the test holds the Prometheus series it must become):
//   round 1                                   round 2
//   orders (Counter, {order}, int)
//     +3 {GET}, +2 {POST}                     +4 {GET}
//   checkout.payload.size (Counter, By, double)
//     +1.5 {POST}                             +0.25 {POST}
//   cart.items (UpDownCounter, {item}, int)
//     +10 {standard}, -2 {gift}               -4 {standard}
//   http.server.request.duration (Histogram, s, bounds 0.1 0.5 1)
//     0.0625, 0.25 {GET}                      0.75, 2 {GET}
//   checkout.duration (Histogram, ms, bounds 10 50 100)
//     5, 20 {POST}                            70, 120 {POST}
//   cpu.utilization (ObservableGauge, 1, double)
//     0.25 {cpu 0}, 0.5 {cpu 1}               0.375 {cpu 0}, 0.625 {cpu 1}
//   checkout.worker.time (ObservableCounter, s, double; the running total)
//     1.5 {w1}                                4.25 {w1}
//   checkout.connections (ObservableUpDownCounter, {connection}, int)
//     8 {db}                                  5 {db}

import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const NODE_DIR = process.env.INTEROP_NODE_DIR
  || resolve(HERE, '..', '..', 'build', 'interop-node');
const require = createRequire(join(NODE_DIR, 'package.json'));

const DEADLINE_MS = 30000;
const EXPORT_TIMEOUT_MS = 10000;
const PROTOCOLS = ['grpc', 'http/protobuf', 'http/json'];
const TEMPORALITIES = ['cumulative', 'delta'];

function usage(msg) {
  process.stderr.write(`emit_prom.mjs: ${msg}\n`
    + 'usage: node emit_prom.mjs <grpc|http/protobuf|http/json> <endpoint> '
    + '<cumulative|delta> <instance>\n');
  process.exit(2);
}

if (process.argv.length !== 6) usage('expected 4 arguments');
const [protocol, endpoint, temporality, instance] = process.argv.slice(2);
if (!PROTOCOLS.includes(protocol)) usage(`unknown protocol ${protocol}`);
if (!TEMPORALITIES.includes(temporality)) usage(`unknown temporality ${temporality}`);
const RUN = `${protocol}-${temporality}`;

const api = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { MeterProvider, MetricReader, DataPointType, AggregationTemporality } =
  require('@opentelemetry/sdk-metrics');
const { AggregationTemporalityPreference } = require('@opentelemetry/exporter-metrics-otlp-http');

api.diag.setLogger(new api.DiagConsoleLogger(), api.DiagLogLevel.WARN);

const deadline = setTimeout(() => {
  process.stderr.write(`emit_prom.mjs: ${RUN}: not done within ${DEADLINE_MS} ms\n`);
  process.exit(3);
}, DEADLINE_MS);

const suffix = { grpc: 'grpc', 'http/protobuf': 'proto', 'http/json': 'http' }[protocol];
const { OTLPMetricExporter } = require(`@opentelemetry/exporter-metrics-otlp-${suffix}`);
const exporter = new OTLPMetricExporter({
  url: endpoint,
  timeoutMillis: EXPORT_TIMEOUT_MS,
  temporalityPreference: temporality === 'delta'
    ? AggregationTemporalityPreference.DELTA
    : AggregationTemporalityPreference.CUMULATIVE,
});

// Collects only when asked, with the temporality the exporter prefers.
class OnDemandReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}
const reader = new OnDemandReader({
  aggregationTemporalitySelector: (type) => exporter.selectAggregationTemporality(type),
});

const provider = new MeterProvider({
  resource: resourceFromAttributes({
    'service.name': 'checkout',
    'service.namespace': 'shop',
    'service.instance.id': instance,
    'deployment.environment.name': 'interop',
  }),
  readers: [reader],
});
const meter = provider.getMeter('interop.shop', '1.4.2');
const { ValueType } = api;

const GET = { 'http.request.method': 'GET' };
const POST = { 'http.request.method': 'POST' };

const orders = meter.createCounter('orders',
  { description: 'Orders placed', unit: '{order}', valueType: ValueType.INT });
const payload = meter.createCounter('checkout.payload.size',
  { description: 'Payload bytes received', unit: 'By', valueType: ValueType.DOUBLE });
const cartItems = meter.createUpDownCounter('cart.items',
  { description: 'Items in carts', unit: '{item}', valueType: ValueType.INT });
const requestDuration = meter.createHistogram('http.server.request.duration', {
  description: 'Duration of HTTP server requests', unit: 's', valueType: ValueType.DOUBLE,
  advice: { explicitBucketBoundaries: [0.1, 0.5, 1] },
});
const checkoutDuration = meter.createHistogram('checkout.duration', {
  description: 'Checkout duration', unit: 'ms', valueType: ValueType.DOUBLE,
  advice: { explicitBucketBoundaries: [10, 50, 100] },
});

// The observable instruments report what the current round says.
let round = 1;
const OBSERVED = {
  1: { cpu: [0.25, 0.5], workerTime: 1.5, connections: 8 },
  2: { cpu: [0.375, 0.625], workerTime: 4.25, connections: 5 },
};
meter.createObservableGauge('cpu.utilization',
  { description: 'CPU utilization', unit: '1', valueType: ValueType.DOUBLE })
  .addCallback((result) => {
    OBSERVED[round].cpu.forEach((v, cpu) => result.observe(v, { 'cpu.logical_number': cpu }));
  });
meter.createObservableCounter('checkout.worker.time',
  { description: 'Worker busy time', unit: 's', valueType: ValueType.DOUBLE })
  .addCallback((result) => {
    result.observe(OBSERVED[round].workerTime, { 'worker.id': 'w1' });
  });
meter.createObservableUpDownCounter('checkout.connections',
  { description: 'Open connections', unit: '{connection}', valueType: ValueType.INT })
  .addCallback((result) => {
    result.observe(OBSERVED[round].connections, { 'pool.name': 'db' });
  });

function record(n) {
  if (n === 1) {
    orders.add(3, GET);
    orders.add(2, POST);
    payload.add(1.5, POST);
    cartItems.add(10, { 'cart.kind': 'standard' });
    cartItems.add(-2, { 'cart.kind': 'gift' });
    requestDuration.record(0.0625, GET);
    requestDuration.record(0.25, GET);
    checkoutDuration.record(5, POST);
    checkoutDuration.record(20, POST);
  } else {
    orders.add(4, GET);
    payload.add(0.25, POST);
    cartItems.add(-4, { 'cart.kind': 'standard' });
    requestDuration.record(0.75, GET);
    requestDuration.record(2, GET);
    checkoutDuration.record(70, POST);
    checkoutDuration.record(120, POST);
  }
}

async function exportRound(n) {
  round = n;
  record(n);
  const { resourceMetrics, errors } = await reader.collect();
  if (errors.length) throw new Error(`metric collection: ${errors.join('; ')}`);
  let points = 0;
  const temporalities = {};
  for (const sm of resourceMetrics.scopeMetrics) {
    for (const m of sm.metrics) {
      points += m.dataPoints.length;
      if (m.dataPointType !== DataPointType.GAUGE) {
        temporalities[m.descriptor.name] =
          m.aggregationTemporality === AggregationTemporality.DELTA ? 'delta' : 'cumulative';
      }
    }
  }
  const result = await new Promise((done) => exporter.export(resourceMetrics, done));
  const ok = result.code === 0;   // ExportResultCode.SUCCESS
  const line = { round: n, ok, points, temporalities };
  if (!ok) {
    line.error = String(result.error ? (result.error.stack || result.error) : 'no error given');
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
  return ok;
}

function nextLine() {
  const rl = createInterface({ input: process.stdin });
  return new Promise((done) => {
    let got = false;
    rl.once('line', () => { got = true; rl.close(); done(true); });
    rl.once('close', () => done(got));
  });
}

async function main() {
  let ok = await exportRound(1);
  if (ok) {
    if (!await nextLine()) {
      process.stderr.write(`emit_prom.mjs: ${RUN}: stdin closed before round 2\n`);
      process.exit(1);
    }
    ok = await exportRound(2);
  }
  await exporter.shutdown();
  await provider.shutdown();
  clearTimeout(deadline);
  process.exit(ok ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`emit_prom.mjs: ${RUN}: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
