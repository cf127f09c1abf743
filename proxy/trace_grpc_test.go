package proxy

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-gw/outrigger/tracing"
)

// TestTracingGRPCRetry: a gRPC call retried after a trailers-only
// UNAVAILABLE (HTTP/2, the net/http path) gives a server span with the
// call's gRPC status and a client span per attempt: the first an error
// with its target, the second the target that answered.
func TestTracingGRPCRetry(t *testing.T) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	a.unavailable.Store(true)
	ctx := testCtx(t)
	f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr, b.addr}, retries: 2, idem: []string{"/test.Echo/Say"}})
	rec := tracetest.NewSpanRecorder()
	tr, err := tracing.New(tracing.Config{SampleRatio: 1}, tracing.Options{Processor: rec})
	if err != nil {
		t.Fatal(err)
	}
	f.p.opts.Tracer = tr
	for i := range 2 {
		if got, err := f.say(ctx, "x"); err != nil || !strings.HasPrefix(got, "b:") {
			t.Fatalf("call %d: %q %v", i, got, err)
		}
	}
	var retried trace.TraceID
	waitUntil(t, func() bool {
		n := 0
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindServer {
				n++
				if v, _ := spanAttr(s, "outrigger.attempts"); v.AsInt64() == 2 {
					retried = s.SpanContext().TraceID()
				}
			}
		}
		return n == 2
	})
	if !retried.IsValid() {
		t.Fatal("no call was retried")
	}
	srv, clients := spansOf(rec, retried)
	if v, _ := spanAttr(srv, "rpc.grpc.status_code"); v.AsInt64() != 0 || len(clients) != 2 {
		t.Fatalf("server span grpc status %d, %d client spans", v.AsInt64(), len(clients))
	}
	for _, c := range clients {
		n, _ := spanAttr(c, "outrigger.attempt")
		target, _ := spanAttr(c, "outrigger.target")
		switch n.AsInt64() {
		case 1:
			if target.AsString() != a.addr || c.Status().Code.String() != "Error" {
				t.Errorf("attempt 1: target %s status %v", target.AsString(), c.Status())
			}
		case 2:
			if target.AsString() != b.addr || c.Status().Code.String() == "Error" {
				t.Errorf("attempt 2: target %s status %v", target.AsString(), c.Status())
			}
		}
	}
}
