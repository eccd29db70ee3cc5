// Emits one known, deterministic batch of telemetry with the official OpenTelemetry
// JavaScript SDK and its OTLP exporters, for the interop test (test_node_sdk.py).
//
// Use: node emit.mjs <traces|metrics|logs> <grpc|http/protobuf|http/json> <endpoint> <expected.json>
//   endpoint: grpc -> http://127.0.0.1:PORT; http/* -> http://127.0.0.1:PORT/v1/<signal>
// Env:
//   INTEROP_RUN          value of the resource attribute interop.run (default <signal>-<protocol>)
//   INTEROP_COMPRESSION  exporter compression, none (default) or gzip
//   INTEROP_NODE_DIR     where package.json + node_modules were installed
//                        (default <repo>/build/interop-node)
//
// The SDK builds the spans / metric points / log records; they are collected in
// memory first and then handed to the OTLP exporter in ONE export() call, so the
// export result callback tells whether the agent accepted them. expected.json gets
// exactly what was handed to the exporter, in a protocol-independent form:
//   ids lower-case hex ("" when absent), times decimal strings of ns since the epoch,
//   attribute and body values plain JSON (string, bool, integer for OTLP int_value,
//   non-integral number for double_value, list, object; bytes as {"$bytes": hex}),
//   enums as their OTLP numbers (span kind 0..5, status code 0..2, temporality 2).
// Exit status: 0 when the export succeeded, 1 when it failed, 2 on bad usage,
// 3 when nothing finished within the deadline.

import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const NODE_DIR = process.env.INTEROP_NODE_DIR
  || resolve(HERE, '..', '..', 'build', 'interop-node');
// The packages are CommonJS and live outside the source tree: load them with a
// require() rooted where they were installed.
const require = createRequire(join(NODE_DIR, 'package.json'));

const DEADLINE_MS = 30000;   // the whole run, export retries included
const EXPORT_TIMEOUT_MS = 10000;

const SIGNALS = ['traces', 'metrics', 'logs'];
const PROTOCOLS = ['grpc', 'http/protobuf', 'http/json'];

function usage(msg) {
  process.stderr.write(`emit.mjs: ${msg}\n`
    + 'usage: node emit.mjs <traces|metrics|logs> <grpc|http/protobuf|http/json> '
    + '<endpoint> <expected.json>\n');
  process.exit(2);
}

const [signal, protocol, endpoint, expectedPath] = process.argv.slice(2);
if (process.argv.length !== 6) usage('expected 4 arguments');
if (!SIGNALS.includes(signal)) usage(`unknown signal ${signal}`);
if (!PROTOCOLS.includes(protocol)) usage(`unknown protocol ${protocol}`);
const RUN = process.env.INTEROP_RUN || `${signal}-${protocol}`;
const COMPRESSION = process.env.INTEROP_COMPRESSION || 'none';
if (!['none', 'gzip'].includes(COMPRESSION)) usage(`unknown compression ${COMPRESSION}`);

const api = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');

api.diag.setLogger(new api.DiagConsoleLogger(), api.DiagLogLevel.WARN);

const deadline = setTimeout(() => {
  process.stderr.write(`emit.mjs: ${RUN}: not done within ${DEADLINE_MS} ms\n`);
  process.exit(3);
}, DEADLINE_MS);

// --- deterministic ids and times

// Ids are hashes of the run name and a counter: the same on every run of one
// combination, different between combinations.
let idCounter = 0;
function nextId(bytes) {
  idCounter += 1;
  return createHash('sha256').update(`${RUN}/${idCounter}`).digest('hex').slice(0, bytes * 2);
}

const idGenerator = {
  generateTraceId: () => nextId(16),
  generateSpanId: () => nextId(8),
};

// HrTime [s, ns] is used by the SDK as given; odd nanoseconds catch any rounding.
const T0 = 1700000000;
function at(ms, ns = 0) {
  const total = BigInt(T0) * 1000000000n + BigInt(ms) * 1000000n + BigInt(ns);
  return [Number(total / 1000000000n), Number(total % 1000000000n)];
}

// --- expected.json helpers

function hrNanos(hr) {
  return (BigInt(Math.trunc(hr[0])) * 1000000000n + BigInt(Math.trunc(hr[1]))).toString();
}

// An attribute / body value as the OTLP transformer maps it (see the header).
function plain(value) {
  if (value === undefined || value === null) return null;
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('hex') };
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object') {
    const out = {};
    for (const k of Object.keys(value)) out[k] = plain(value[k]);
    return out;
  }
  return value;
}

function plainAttrs(attrs) {
  const out = {};
  for (const k of Object.keys(attrs || {})) out[k] = plain(attrs[k]);
  return out;
}

function resourceOf(resource) {
  return { attributes: plainAttrs(resource.attributes), schema_url: resource.schemaUrl || '' };
}

function scopeOf(scope) {
  return { name: scope.name, version: scope.version || '', schema_url: scope.schemaUrl || '' };
}

// OTLP SpanFlags: W3C trace flags in the low byte, bit 8 "is-remote known",
// bit 9 "is remote".
function spanFlags(traceFlags, isRemote) {
  return (traceFlags & 0xff) | 0x100 | (isRemote ? 0x200 : 0);
}

const RESOURCE = resourceFromAttributes({
  'service.name': 'interop-node',
  'service.version': '1.2.3',
  'interop.run': RUN,
  'interop.signal': signal,
  'interop.protocol': protocol,
  'host.cpus': 4,
  'res.ratio': 0.75,
  'res.enabled': true,
  'res.tags': ['blue', 'green'],
}, { schemaUrl: 'https://opentelemetry.io/schemas/1.26.0' });

// --- exporters

function loadExporter(kind) {
  const pkgs = {
    traces: ['exporter-trace-otlp', 'OTLPTraceExporter'],
    metrics: ['exporter-metrics-otlp', 'OTLPMetricExporter'],
    logs: ['exporter-logs-otlp', 'OTLPLogExporter'],
  };
  const suffix = { grpc: 'grpc', 'http/protobuf': 'proto', 'http/json': 'http' }[protocol];
  const [prefix, cls] = pkgs[kind];
  const Exporter = require(`@opentelemetry/${prefix}-${suffix}`)[cls];
  const config = {
    url: endpoint,
    timeoutMillis: EXPORT_TIMEOUT_MS,
    compression: COMPRESSION,
  };
  if (kind === 'metrics') {
    const { AggregationTemporalityPreference } = require('@opentelemetry/exporter-metrics-otlp-http');
    config.temporalityPreference = AggregationTemporalityPreference.CUMULATIVE;
  }
  return new Exporter(config);
}

function exportOnce(exporter, items) {
  return new Promise((resolveExport) => exporter.export(items, resolveExport));
}

// --- traces

async function buildTraces() {
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } =
    require('@opentelemetry/sdk-trace-base');
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: RESOURCE,
    idGenerator,
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracerA = provider.getTracer('interop-tracer', '0.1.0',
    { schemaUrl: 'https://example.test/scope/tracer-a' });
  const tracerB = provider.getTracer('interop-tracer-b', '2.0.0');
  const { SpanKind, SpanStatusCode, ROOT_CONTEXT, TraceFlags } = api;

  // The request came in with a remote parent and a trace state.
  const remote = {
    traceId: nextId(16),
    spanId: nextId(8),
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: api.createTraceState('vendor=abc,other=1'),
  };
  const under = (span) => api.trace.setSpan(ROOT_CONTEXT, span);

  const root = tracerA.startSpan('GET /checkout', {
    kind: SpanKind.SERVER,
    startTime: at(0, 1),
    attributes: {
      'http.request.method': 'GET',
      'url.path': '/checkout',
      'http.response.status_code': 200,
      'interop.bool': true,
      'interop.false': false,
      'interop.double': 3.25,
      'interop.negative': -42,
      'interop.big': 9007199254740991,
      'interop.empty': '',
      'interop.utf8': 'h\u00e9llo \u4e16\u754c \u{1f600}',
      'interop.strings': ['a', 'b', ''],
      'interop.bools': [true, false],
      'interop.ints': [1, -2, 3],
      'interop.doubles': [0.5, -1.25],
    },
  }, api.trace.setSpanContext(ROOT_CONTEXT, remote));

  const db = tracerA.startSpan('SELECT orders', {
    kind: SpanKind.CLIENT,
    startTime: at(10, 3),
    attributes: { 'db.system.name': 'postgresql', 'db.rows': 3 },
  }, under(root));
  db.addEvent('query.start', { 'db.statement.len': 27 }, at(10, 500));
  db.addEvent('query.end', {}, at(42, 999999));
  db.end(at(42, 999999));

  const linked = {
    traceId: nextId(16),
    spanId: nextId(8),
    traceFlags: TraceFlags.NONE,
    isRemote: true,
    traceState: api.createTraceState('lk=1'),
  };
  const publish = tracerA.startSpan('publish order', {
    kind: SpanKind.PRODUCER,
    startTime: at(50),
    links: [{ context: linked, attributes: { 'link.reason': 'fanout', 'link.n': 2 } }],
    attributes: { 'messaging.system': 'kafka' },
  }, under(root));
  publish.setStatus({ code: SpanStatusCode.OK });
  publish.end(at(60, 7));

  const consume = tracerB.startSpan('consume order', {
    kind: SpanKind.CONSUMER,
    startTime: at(61),
    attributes: { 'messaging.batch.message_count': 1, 'consumer.lag': 0.125 },
  }, under(publish));
  consume.end(at(99, 123456));

  const compute = tracerA.startSpan('compute total', {
    kind: SpanKind.INTERNAL,
    startTime: at(100),
  }, under(root));
  compute.addEvent('exception', {
    'exception.type': 'RangeError',
    'exception.message': 'total overflow',
    'exception.escaped': false,
  }, at(120, 5));
  compute.setAttribute('compute.items', [10, 20]);
  compute.setStatus({ code: SpanStatusCode.ERROR, message: 'overflow' });
  compute.end(at(121));

  root.setStatus({ code: SpanStatusCode.UNSET });
  root.end(at(250, 7));

  await provider.forceFlush();
  const spans = memory.getFinishedSpans();
  const expected = spans.map((s) => {
    const ctx = s.spanContext();
    return {
      scope: scopeOf(s.instrumentationScope),
      trace_id: ctx.traceId,
      span_id: ctx.spanId,
      parent_span_id: s.parentSpanContext?.spanId || '',
      trace_state: ctx.traceState ? ctx.traceState.serialize() : '',
      flags: spanFlags(ctx.traceFlags, s.parentSpanContext?.isRemote),
      name: s.name,
      kind: s.kind + 1,   // the API has no "unspecified": OTLP numbers are one higher
      start_time_unix_nano: hrNanos(s.startTime),
      end_time_unix_nano: hrNanos(s.endTime),
      attributes: plainAttrs(s.attributes),
      dropped_attributes_count: s.droppedAttributesCount,
      events: s.events.map((e) => ({
        name: e.name,
        time_unix_nano: hrNanos(e.time),
        attributes: plainAttrs(e.attributes),
        dropped_attributes_count: e.droppedAttributesCount || 0,
      })),
      dropped_events_count: s.droppedEventsCount,
      links: s.links.map((l) => ({
        trace_id: l.context.traceId,
        span_id: l.context.spanId,
        trace_state: l.context.traceState ? l.context.traceState.serialize() : '',
        flags: spanFlags(l.context.traceFlags, l.context.isRemote),
        attributes: plainAttrs(l.attributes),
        dropped_attributes_count: l.droppedAttributesCount || 0,
      })),
      dropped_links_count: s.droppedLinksCount,
      status: { code: s.status.code, message: s.status.message || '' },
    };
  });
  return { items: spans, expected: { spans: expected }, count: spans.length, provider };
}

// --- metrics

async function buildMetrics(exporter) {
  const { MeterProvider, MetricReader, DataPointType, AggregationTemporality } =
    require('@opentelemetry/sdk-metrics');
  const { ValueType } = api;

  // A reader that collects only when asked: collect() gives the ResourceMetrics that
  // go to the exporter as they are (cumulative, as the exporter prefers).
  class OnDemandReader extends MetricReader {
    async onForceFlush() {}
    async onShutdown() {}
  }
  const reader = new OnDemandReader({
    aggregationTemporalitySelector: (type) => exporter.selectAggregationTemporality(type),
  });
  const provider = new MeterProvider({ resource: RESOURCE, readers: [reader] });
  const meter = provider.getMeter('interop-meter', '0.2.0',
    { schemaUrl: 'https://example.test/scope/meter' });

  const requests = meter.createCounter('interop.requests',
    { description: 'Requests served', unit: '{request}', valueType: ValueType.INT });
  requests.add(3, { route: '/a', ok: true });
  requests.add(4, { route: '/a', ok: true });
  requests.add(5, { route: '/b', ok: false });

  const bytes = meter.createCounter('interop.bytes',
    { description: 'Bytes read', unit: 'By', valueType: ValueType.DOUBLE });
  bytes.add(1.5);
  bytes.add(0.25);

  const depth = meter.createUpDownCounter('interop.queue.depth',
    { description: 'Items queued', unit: '{item}', valueType: ValueType.INT });
  depth.add(10, { queue: 'q1' });
  depth.add(-4, { queue: 'q1' });
  depth.add(-2, { queue: 'q2' });

  const latency = meter.createHistogram('interop.latency', {
    description: 'Latency', unit: 'ms', valueType: ValueType.DOUBLE,
    advice: { explicitBucketBoundaries: [0, 5, 10, 25, 50, 100] },
  });
  for (const v of [1.5, 7, 7.25, 30, 250]) latency.record(v, { route: '/a' });
  latency.record(3, { route: '/b', 'interop.weights': [0.5, 1.5] });

  const temperature = meter.createObservableGauge('interop.temperature',
    { description: 'Temperature', unit: 'Cel', valueType: ValueType.DOUBLE });
  temperature.addCallback((result) => {
    result.observe(21.5, { sensor: 's1' });
    result.observe(-3.25, { sensor: 's2', indoor: false });
  });

  const { resourceMetrics, errors } = await reader.collect();
  if (errors.length) throw new Error(`metric collection: ${errors.join('; ')}`);

  const TYPES = {
    [DataPointType.SUM]: 'sum',
    [DataPointType.GAUGE]: 'gauge',
    [DataPointType.HISTOGRAM]: 'histogram',
  };
  const metrics = [];
  let count = 0;
  for (const sm of resourceMetrics.scopeMetrics) {
    for (const m of sm.metrics) {
      const type = TYPES[m.dataPointType];
      if (!type) throw new Error(`unexpected data point type ${m.dataPointType} for ${m.descriptor.name}`);
      const isDouble = m.descriptor.valueType === ValueType.DOUBLE;
      const out = {
        scope: scopeOf(sm.scope),
        name: m.descriptor.name,
        description: m.descriptor.description,
        unit: m.descriptor.unit,
        type,
      };
      if (type !== 'gauge') {
        out.temporality = m.aggregationTemporality === AggregationTemporality.CUMULATIVE ? 2 : 1;
      }
      if (type === 'sum') out.monotonic = m.isMonotonic;
      out.points = m.dataPoints.map((p) => {
        const point = {
          attributes: plainAttrs(p.attributes),
          start_time_unix_nano: hrNanos(p.startTime),
          time_unix_nano: hrNanos(p.endTime),
        };
        if (type === 'histogram') {
          Object.assign(point, {
            count: p.value.count,
            sum: p.value.sum,
            min: p.value.min,
            max: p.value.max,
            bucket_counts: p.value.buckets.counts,
            explicit_bounds: p.value.buckets.boundaries,
          });
        } else {
          point.value_type = isDouble ? 'double' : 'int';
          point.value = p.value;
        }
        return point;
      });
      count += out.points.length;
      metrics.push(out);
    }
  }
  return { items: resourceMetrics, expected: { metrics }, count, provider };
}

// --- logs

async function buildLogs() {
  const { LoggerProvider, InMemoryLogRecordExporter, SimpleLogRecordProcessor } =
    require('@opentelemetry/sdk-logs');
  const { SeverityNumber } = require('@opentelemetry/api-logs');
  const memory = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    resource: RESOURCE,
    processors: [new SimpleLogRecordProcessor({ exporter: memory })],
  });
  const logger = provider.getLogger('interop-logger', '0.3.0',
    { schemaUrl: 'https://example.test/scope/logger' });

  const spanContext = {
    traceId: nextId(16),
    spanId: nextId(8),
    traceFlags: api.TraceFlags.SAMPLED,
    isRemote: false,
  };

  logger.emit({
    timestamp: at(1000, 1),
    observedTimestamp: at(1000, 2),
    severityNumber: SeverityNumber.INFO,
    severityText: 'INFO',
    body: 'user logged in',
    attributes: { 'user.id': 42, session: 'abc', 'login.ok': true, 'login.ms': 12.5 },
  });
  logger.emit({
    timestamp: at(1001),
    observedTimestamp: at(1001, 77),
    severityNumber: SeverityNumber.WARN,
    severityText: 'WARN',
    body: {
      event: 'cache.miss',
      key: 'k1',
      size: 12,
      ratio: 0.5,
      ok: false,
      tags: ['x', 'y'],
      nested: { a: 1, b: ['c', { d: 'e' }] },
      raw: new Uint8Array([0, 1, 254, 255]),
    },
    attributes: { component: 'cache', 'cache.keys': ['k1', 'k2'] },
  });
  logger.emit({
    timestamp: at(1002, 999999),
    observedTimestamp: at(1003),
    severityNumber: SeverityNumber.ERROR,
    severityText: 'ERROR',
    eventName: 'payment.failed',
    body: 'payment declined: card expired',
    attributes: { 'payment.amount': 99.95, 'payment.currency': 'EUR' },
    context: api.trace.setSpanContext(api.ROOT_CONTEXT, spanContext),
  });
  logger.emit({
    timestamp: at(1004),
    observedTimestamp: at(1004, 1),
    severityNumber: SeverityNumber.DEBUG2,
    severityText: 'debug2',
    body: new Uint8Array([0xde, 0xad, 0xbe, 0xef]),
  });
  logger.emit({
    // No body, severity or attributes: only the times.
    timestamp: at(1005),
    observedTimestamp: at(1005, 5),
  });

  await provider.forceFlush();
  const records = memory.getFinishedLogRecords();
  const expected = records.map((r) => ({
    scope: scopeOf(r.instrumentationScope),
    time_unix_nano: hrNanos(r.hrTime),
    observed_time_unix_nano: hrNanos(r.hrTimeObserved),
    severity_number: r.severityNumber || 0,
    severity_text: r.severityText || '',
    event_name: r.eventName || '',
    body: plain(r.body),
    attributes: plainAttrs(r.attributes),
    dropped_attributes_count: r.droppedAttributesCount || 0,
    flags: r.spanContext ? r.spanContext.traceFlags : 0,
    trace_id: r.spanContext?.traceId || '',
    span_id: r.spanContext?.spanId || '',
  }));
  return { items: records, expected: { log_records: expected }, count: records.length, provider };
}

// --- main

async function main() {
  const exporter = loadExporter(signal);
  const build = { traces: buildTraces, metrics: buildMetrics, logs: buildLogs }[signal];
  const { items, expected, count, provider } = await build(exporter);

  const result = await exportOnce(exporter, items);
  const ok = result.code === 0;   // ExportResultCode.SUCCESS

  writeFileSync(expectedPath, `${JSON.stringify({
    run: RUN,
    signal,
    protocol,
    endpoint,
    compression: COMPRESSION,
    export_ok: ok,
    count,
    resource: resourceOf(RESOURCE),
    ...expected,
  }, null, 1)}\n`);

  await exporter.shutdown();
  await provider.shutdown();
  clearTimeout(deadline);
  if (!ok) {
    process.stderr.write(`emit.mjs: ${RUN}: export to ${endpoint} failed: `
      + `${result.error ? (result.error.stack || result.error) : 'no error given'}\n`);
    process.exit(1);
  }
  process.stdout.write(`emit.mjs: ${RUN}: exported ${count} item(s) to ${endpoint}\n`);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`emit.mjs: ${RUN}: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
