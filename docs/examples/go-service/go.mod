// The example of docs/getting-started-macos.md. Run `go mod tidy` once to
// fetch the modules and write go.sum.
module example.com/checkout

go 1.23.0

require (
	github.com/prometheus/client_golang v1.23.2
	github.com/rs/zerolog v1.34.0
	go.opentelemetry.io/contrib/bridges/prometheus v0.63.0
	go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp v0.63.0
	go.opentelemetry.io/otel v1.38.0
	go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc v1.38.0
	go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc v1.38.0
	go.opentelemetry.io/otel/sdk v1.38.0
	go.opentelemetry.io/otel/sdk/metric v1.38.0
	go.opentelemetry.io/otel/trace v1.38.0
)
