// Package tracing is Outrigger's OpenTelemetry tracing: the tracer the
// proxy starts its spans with, the propagators that read a request's trace
// context and write it upstream, the sampler and the export of finished
// spans over OTLP.
//
// Contract:
//   - A nil *Tracer is tracing off: the proxy checks for nil once per
//     request and does nothing else (no allocation, no header lookup).
//   - Sampling is parent-based: a request that carries a sampled parent is
//     recorded, one with an unsampled parent is not, and a request without
//     a parent is recorded with probability SampleRatio (decided on the
//     trace id, so every hop that uses the same ratio agrees).
//   - Propagators are OTEL_PROPAGATORS' names: tracecontext (W3C
//     traceparent and tracestate), baggage (W3C baggage), b3 (B3 single
//     header) and b3multi (B3 multiple headers). Extraction tries them in
//     order; B3 extraction reads both encodings. Injection writes every
//     configured one; the fields they own (Fields) are replaced on the way
//     upstream, never forwarded as the client sent them.
//   - Export never blocks a request: finished sampled spans go into a
//     bounded queue; when it is full the span is dropped and counted
//     (outrigger_tracing_spans_dropped_total{reason="queue_full"}), as is
//     a batch the exporter failed to deliver (reason="export_failed").
//     One goroutine sends batches of BatchSize spans, or what the queue
//     holds every BatchTimeout, over OTLP/HTTP (protobuf) or OTLP/gRPC.
//   - Shutdown exports what the queue holds (bounded by its context) and
//     closes the exporter.
package tracing

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Export protocols, as OTEL_EXPORTER_OTLP_PROTOCOL names them.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Propagator names, as OTEL_PROPAGATORS names them.
const (
	PropTraceContext = "tracecontext"
	PropBaggage      = "baggage"
	PropB3           = "b3"
	PropB3Multi      = "b3multi"
)

// Propagators are the propagator names Config accepts.
func Propagators() []string {
	return []string{PropTraceContext, PropBaggage, PropB3, PropB3Multi}
}

// Config configures a Tracer.
type Config struct {
	// Protocol is ProtocolHTTP or ProtocolGRPC.
	Protocol string
	// Endpoint is the collector's URL: http(s)://host:port, with a path
	// for OTLP/HTTP (default /v1/traces). http:// sends in plain text.
	Endpoint string
	// Headers are sent with every export (an API key, say).
	Headers map[string]string
	// SampleRatio is the share of root traces recorded, 0..1.
	SampleRatio float64
	// Propagators lists the propagators in extraction order (default
	// tracecontext).
	Propagators []string
	// ServiceName and ServiceVersion are the resource's service.name and
	// service.version.
	ServiceName, ServiceVersion string
	// QueueSize bounds the spans waiting for export; BatchSize is the
	// most spans per export; BatchTimeout is the longest a span waits for
	// a batch to fill; ExportTimeout bounds one export.
	QueueSize, BatchSize        int
	BatchTimeout, ExportTimeout time.Duration
}

// Defaults of Config's zero fields.
const (
	DefaultQueueSize     = 2048
	DefaultBatchSize     = 512
	DefaultBatchTimeout  = 5 * time.Second
	DefaultExportTimeout = 10 * time.Second
	DefaultServiceName   = "outrigger"
)

// Tracer starts the proxy's spans. Immutable after New; safe for
// concurrent use.
type Tracer struct {
	tr       trace.Tracer
	prop     propagation.TextMapPropagator
	fields   []string // the propagators' fields, lower case
	provider *sdktrace.TracerProvider
	queue    *queue // nil with Options.Processor
}

// Options are what New needs besides the Config.
type Options struct {
	// Registerer receives the export counters; nil registers nothing.
	Registerer prometheus.Registerer
	// Processor, when set, receives the spans instead of the queue and
	// the OTLP export (tests: tracetest.SpanRecorder); Exporter, when
	// set, replaces the OTLP exporter behind the queue. Protocol and
	// Endpoint are then ignored.
	Processor sdktrace.SpanProcessor
	Exporter  sdktrace.SpanExporter
}

// New returns a Tracer for c. It does not connect to the collector: the
// first export does (and counts its failure).
func New(c Config, o Options) (*Tracer, error) {
	prop, fields, err := propagator(c.Propagators)
	if err != nil {
		return nil, err
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return nil, fmt.Errorf("sample ratio %v is not between 0 and 1", c.SampleRatio)
	}
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	t := &Tracer{prop: prop, fields: fields}
	sp := o.Processor
	if sp == nil {
		exp := o.Exporter
		if exp == nil {
			var err error
			if exp, err = exporter(c); err != nil {
				return nil, err
			}
		}
		t.queue = newQueue(exp, c, o.Registerer)
		sp = t.queue
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", c.ServiceName)}
	if c.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", c.ServiceVersion))
	}
	t.provider = sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
		sdktrace.WithSpanProcessor(sp),
		sdktrace.WithResource(resource.NewWithAttributes("", attrs...)),
	)
	t.tr = t.provider.Tracer("github.com/outrigger-gw/outrigger/proxy")
	return t, nil
}

// propagator builds the composite propagator of names and the fields it
// owns.
func propagator(names []string) (propagation.TextMapPropagator, []string, error) {
	if len(names) == 0 {
		names = []string{PropTraceContext}
	}
	var ps []propagation.TextMapPropagator
	for _, n := range names {
		switch n {
		case PropTraceContext:
			ps = append(ps, propagation.TraceContext{})
		case PropBaggage:
			ps = append(ps, propagation.Baggage{})
		case PropB3:
			ps = append(ps, b3.New(b3.WithInjectEncoding(b3.B3SingleHeader)))
		case PropB3Multi:
			ps = append(ps, b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader)))
		default:
			return nil, nil, fmt.Errorf("unknown propagator %q (one of %s)", n, strings.Join(Propagators(), ", "))
		}
	}
	prop := propagation.NewCompositeTextMapPropagator(ps...)
	var fields []string
	for _, f := range prop.Fields() {
		f = strings.ToLower(f)
		if !containsString(fields, f) {
			fields = append(fields, f)
		}
	}
	if containsString(names, PropB3) || containsString(names, PropB3Multi) {
		// B3 extraction reads both encodings: both are the proxy's to set.
		for _, f := range []string{"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"} {
			if !containsString(fields, f) {
				fields = append(fields, f)
			}
		}
	}
	return prop, fields, nil
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// exporter returns the OTLP exporter of c (not connected yet). Retries of
// a failed export are bounded by ExportTimeout.
func exporter(c Config) (sdktrace.SpanExporter, error) {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q is not an http:// or https:// URL", c.Endpoint)
	}
	timeout := c.ExportTimeout
	if timeout <= 0 {
		timeout = DefaultExportTimeout
	}
	switch c.Protocol {
	case ProtocolHTTP, "":
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(c.Endpoint), otlptracehttp.WithTimeout(timeout),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: 500 * time.Millisecond, MaxInterval: 2 * time.Second, MaxElapsedTime: timeout})}
		if u.Path == "" || u.Path == "/" {
			opts = append(opts, otlptracehttp.WithURLPath("/v1/traces"))
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(c.Headers))
		}
		return otlptracehttp.NewUnstarted(opts...), nil
	case ProtocolGRPC:
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(c.Endpoint), otlptracegrpc.WithTimeout(timeout),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 500 * time.Millisecond, MaxInterval: 2 * time.Second, MaxElapsedTime: timeout})}
		if len(c.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(c.Headers))
		}
		exp := otlptracegrpc.NewUnstarted(opts...)
		// Starting the gRPC exporter only builds its client connection
		// (grpc.NewClient connects lazily).
		if err := exp.Start(context.Background()); err != nil {
			return nil, err
		}
		return exp, nil
	}
	return nil, fmt.Errorf("unknown protocol %q (%s or %s)", c.Protocol, ProtocolHTTP, ProtocolGRPC)
}

// Shutdown exports the spans still queued (until ctx ends) and stops the
// exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	return t.provider.Shutdown(ctx)
}

// Fields are the request fields the propagators own, lower case: the
// proxy drops them from what it forwards and writes its own.
func (t *Tracer) Fields() []string { return t.fields }

// Extract returns ctx with the remote span context carrier holds (if any).
func (t *Tracer) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return t.prop.Extract(ctx, carrier)
}

// Inject writes the span context of ctx into carrier with every
// configured propagator.
func (t *Tracer) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	t.prop.Inject(ctx, carrier)
}

// StartServer starts the server span of a request whose trace context is
// in carrier; the span started at start. ctx holds the span.
func (t *Tracer) StartServer(carrier propagation.TextMapCarrier, method string, start time.Time, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	ctx := t.prop.Extract(context.Background(), carrier)
	return t.tr.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start), trace.WithAttributes(attrs...))
}

// StartClient starts the client span of one upstream attempt, a child of
// the server span in ctx. ctx holds the new span.
func (t *Tracer) StartClient(ctx context.Context, method string, start time.Time, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return t.tr.Start(ctx, method, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start), trace.WithAttributes(attrs...))
}
