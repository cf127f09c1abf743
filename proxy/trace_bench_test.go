package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/outrigger-gw/outrigger/tracing"
)

// The cost of tracing on, against BenchmarkEngineGET and
// BenchmarkNetHTTPGET (tracing off): every request gets its server and
// client span, through the export queue to an exporter that discards.

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

func benchTraced(b *testing.B, netHTTP bool, ratio float64, reqs string) {
	tr, err := tracing.New(tracing.Config{SampleRatio: ratio, QueueSize: 1 << 16, BatchTimeout: 10 * time.Millisecond},
		tracing.Options{Exporter: discardExporter{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	p := benchProxy(b, startBenchOrigin(b))
	p.opts.Tracer = tr
	var url string
	if netHTTP {
		url = serveNetHTTP(b, p)
	} else {
		url = serveEngine(b, p, ServerOptions{IdleTimeout: time.Minute, HeaderTimeout: 10 * time.Second})
	}
	bc := dialBench(b, strings.TrimPrefix(url, "http://"))
	req := []byte(reqs)
	bc.do(b, req)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bc.do(b, req)
	}
}

const benchTracedGET = "GET /x HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench\r\nAccept: */*\r\n" +
	"Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"

func BenchmarkEngineGETTraced(b *testing.B)          { benchTraced(b, false, 1, benchGET) }
func BenchmarkEngineGETTracedParent(b *testing.B)    { benchTraced(b, false, 1, benchTracedGET) }
func BenchmarkEngineGETTracedUnsampled(b *testing.B) { benchTraced(b, false, 0, benchGET) }
func BenchmarkNetHTTPGETTraced(b *testing.B)         { benchTraced(b, true, 1, benchGET) }
