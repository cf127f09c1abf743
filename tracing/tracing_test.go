package tracing

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// stuckExporter blocks every export until release is closed (or the
// export's context ends).
type stuckExporter struct {
	release  chan struct{}
	exported atomic.Int64
}

func (e *stuckExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
		e.exported.Add(int64(len(spans)))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *stuckExporter) Shutdown(context.Context) error { return nil }

// TestQueueDropsWhenFull: with the exporter stuck, ending spans never
// blocks; what the queue cannot hold is dropped and counted, and once the
// exporter moves again, Shutdown exports what was queued.
func TestQueueDropsWhenFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	exp := &stuckExporter{release: make(chan struct{})}
	tr, err := New(Config{SampleRatio: 1, QueueSize: 4, BatchSize: 2, BatchTimeout: time.Hour}, Options{Registerer: reg, Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for range n {
		_, sp := tr.StartServer(propagation.MapCarrier{}, "GET", time.Now())
		sp.End() // must not block: the exporter holds its first batch
	}
	dropped := counterValue(tr.queue.dropFull)
	// At most a batch in the exporter and a full queue were kept.
	if dropped < n-2-4 || dropped > n {
		t.Errorf("dropped %v of %d spans with a queue of 4", dropped, n)
	}
	close(exp.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := exp.exported.Load(); got+int64(dropped) != n {
		t.Errorf("exported %d + dropped %v != %d", got, dropped, n)
	}
	if got := counterValue(tr.queue.exported); got != float64(exp.exported.Load()) {
		t.Errorf("exported counter %v, exporter got %d", got, exp.exported.Load())
	}
}

// TestQueueExportFailed: spans of a batch the exporter fails are counted
// as export_failed.
func TestQueueExportFailed(t *testing.T) {
	exp := &stuckExporter{release: make(chan struct{})}
	tr, err := New(Config{SampleRatio: 1, QueueSize: 8, BatchSize: 8, BatchTimeout: time.Hour}, Options{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, sp := tr.StartServer(propagation.MapCarrier{}, "GET", time.Now())
		sp.End()
	}
	// The exporter stays stuck: Shutdown's export ends with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = tr.Shutdown(ctx)
	<-tr.queue.done
	if got := counterValue(tr.queue.dropFailed) + counterValue(tr.queue.dropFull); got != 3 {
		t.Errorf("failed+dropped = %v, want 3", got)
	}
}

// TestUnsampledNotQueued: ratio 0 records nothing and queues nothing.
func TestUnsampledNotQueued(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr, err := New(Config{SampleRatio: 0}, Options{Processor: rec})
	if err != nil {
		t.Fatal(err)
	}
	_, sp := tr.StartServer(propagation.MapCarrier{}, "GET", time.Now())
	if sp.IsRecording() || sp.SpanContext().IsSampled() || !sp.SpanContext().IsValid() {
		t.Errorf("ratio 0: recording %v sampled %v valid %v", sp.IsRecording(), sp.SpanContext().IsSampled(), sp.SpanContext().IsValid())
	}
	sp.End()
	if len(rec.Ended()) != 0 {
		t.Errorf("%d spans recorded", len(rec.Ended()))
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Propagators: []string{"jaeger"}}, `unknown propagator "jaeger"`},
		{Config{SampleRatio: 2}, "not between 0 and 1"},
		{Config{Endpoint: "grpc://h:1"}, "is not an http:// or https:// URL"},
		{Config{Endpoint: "http://h:1", Protocol: "zipkin"}, `unknown protocol "zipkin"`},
	} {
		if _, err := New(tc.c, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}

func TestFields(t *testing.T) {
	tr, err := New(Config{Propagators: []string{PropTraceContext, PropB3}}, Options{Processor: tracetest.NewSpanRecorder()})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled"} {
		found := false
		for _, g := range tr.Fields() {
			found = found || g == f
		}
		if !found {
			t.Errorf("Fields() %v lacks %s", tr.Fields(), f)
		}
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
