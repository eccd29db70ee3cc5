// Command checkout is the example service of docs/getting-started-macos.md: an
// HTTP handler instrumented with OpenTelemetry, a Prometheus client counter and
// zerolog, all sent to the lookout agent on the same machine. Traces and metrics
// go over OTLP/gRPC to localhost:4317; log lines go to lookout's Unix socket,
// each one carrying the trace_id and span_id of the request that wrote it.
package main

import (
	"context"
	"errors"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"
	prombridge "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Prometheus client metrics, in a registry of the service's own: the bridge in
// setupOTel sends what it holds over OTLP with the rest, so nothing has to
// scrape this process. Not the default registry: its process_* collector has
// the names of lookout's own metrics, which lookout drops from its /metrics
// (reason="reserved_name") rather than serve one name twice.
var (
	promReg      = prometheus.NewRegistry()
	ordersPlaced = promauto.With(promReg).NewCounter(prometheus.CounterOpts{
		Name: "checkout_orders_total",
		Help: "Orders placed.",
	})
)

// sockWriter gives each zerolog line (one Write per line) to lookout's socket.
// While the socket is missing (lookout stopped) lines go to stderr, and the
// socket is tried again at most once a second. A write error (lookout
// restarted) drops the connection; the next line reconnects.
type sockWriter struct {
	path string
	mu   sync.Mutex
	conn net.Conn
	next time.Time // no dial before this
}

func (w *sockWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil && time.Now().After(w.next) {
		c, err := net.DialTimeout("unix", w.path, 100*time.Millisecond)
		if err != nil {
			w.next = time.Now().Add(time.Second)
		} else {
			w.conn = c
		}
	}
	if w.conn != nil {
		if _, err := w.conn.Write(p); err == nil {
			return len(p), nil
		}
		w.conn.Close()
		w.conn = nil
	}
	return os.Stderr.Write(p)
}

// traceHook adds the ids of the span in the event's context (set with
// .Ctx(ctx)); lookout reads them into the Loki entry's structured metadata.
var traceHook = zerolog.HookFunc(func(e *zerolog.Event, _ zerolog.Level, _ string) {
	if sc := trace.SpanContextFromContext(e.GetCtx()); sc.IsValid() {
		e.Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String())
	}
})

// setupOTel sends traces and metrics to OTEL_EXPORTER_OTLP_ENDPOINT (default
// localhost:4317), in plaintext: lookout listens on loopback without TLS.
func setupOTel(ctx context.Context, service string) (func(context.Context) error, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, err
	}
	texp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, err
	}
	mexp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithInsecure())
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp), sdktrace.WithResource(res))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp,
			sdkmetric.WithInterval(10*time.Second),
			sdkmetric.WithProducer(prombridge.NewMetricProducer(prombridge.WithGatherer(promReg))))))
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return func(ctx context.Context) error {
		return errors.Join(tp.Shutdown(ctx), mp.Shutdown(ctx))
	}, nil
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	service := getenv("OTEL_SERVICE_NAME", "checkout")
	zerolog.TimeFieldFormat = time.RFC3339Nano // keeps lines of one second in order
	logger := zerolog.New(&sockWriter{path: getenv("LOOKOUT_SOCKET", "/tmp/lookout.sock")}).
		With().Timestamp().Str("service", service).Logger().Hook(traceHook)

	shutdown, err := setupOTel(ctx, service)
	if err != nil {
		logger.Fatal().Err(err).Msg("opentelemetry setup")
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/orders", func(w http.ResponseWriter, r *http.Request) {
		_, span := otel.Tracer("checkout").Start(r.Context(), "reserve stock")
		time.Sleep(time.Duration(5+rand.Intn(45)) * time.Millisecond) // the work
		span.End()
		ordersPlaced.Inc()
		logger.Info().Ctx(r.Context()).Str("sku", "A-42").Msg("order placed")
		w.WriteHeader(http.StatusCreated)
	})
	// otelhttp makes the server span of each request and records
	// http.server.request.duration (lookout: http_server_request_duration_seconds).
	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: otelhttp.NewHandler(mux, "checkout")}
	go func() {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			logger.Fatal().Err(err).Msg("listen")
		}
	}()
	logger.Info().Str("addr", srv.Addr).Msg("listening")

	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := shutdown(sctx); err != nil { // sends the last spans and metrics
		logger.Error().Err(err).Msg("opentelemetry shutdown")
	}
}
