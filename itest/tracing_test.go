package itest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The tracing tests run the binary against OTLP receivers in the test: an
// OTLP/HTTP endpoint that decodes the protobuf export requests and an
// OTLP/gRPC collector (the collector's TraceService), both keeping every
// span they got. Both refuse an export without the trKey header (the
// configured tracing.headers).

// trKey is the header every export must carry.
const trKey, trKeyValue = "X-Otlp-Key", "k1"

// trReceiver keeps the spans an OTLP receiver got.
type trReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *trReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
}

// trace returns the spans of trace id tid.
func (r *trReceiver) trace(tid []byte) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if bytes.Equal(s.TraceId, tid) {
			out = append(out, s)
		}
	}
	return out
}

// startOTLPHTTP serves OTLP/HTTP (protobuf) on /v1/traces; it returns
// the endpoint URL.
func startOTLPHTTP(t *testing.T, r *trReceiver) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want POST /v1/traces application/x-protobuf", http.StatusBadRequest)
			return
		}
		if req.Header.Get(trKey) != trKeyValue {
			http.Error(w, "no key", http.StatusUnauthorized)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var er coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(data, &er); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.add(&er)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// trCollector is the OTLP/gRPC TraceService.
type trCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	r *trReceiver
}

func (c *trCollector) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get(trKey)) != 1 || md.Get(trKey)[0] != trKeyValue {
		return nil, status.Error(codes.Unauthenticated, "no key")
	}
	c.r.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// startOTLPGRPC serves the OTLP/gRPC collector; it returns the endpoint
// URL.
func startOTLPGRPC(t *testing.T, r *trReceiver) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, &trCollector{r: r})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return "http://" + ln.Addr().String()
}

func trAttr(s *tracepb.Span, key string) *commonpb.AnyValue {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value
		}
	}
	return nil
}

// trDeadAddr is a loopback address nothing listens on.
func trDeadAddr(t *testing.T) string {
	a := freeAddr(t) // the listener is closed on return
	return a
}

const trConfig = `tracing:
  endpoint: %s
  protocol: %s
  headers: {X-Otlp-Key: k1}
  batch_timeout: 50ms
upstreams:
  - name: u
    targets:
      - target: %s
      - target: %s
services:
  - name: s
    host: u
    port: 80
    protocol: http
    retries: 1
    connect_timeout: 2000
    routes:
      - name: r
        paths: [/]
`

// TestTracingOTLP: through the real binary, a request carrying a W3C
// traceparent that is retried once (its first target refuses the
// connection) reaches the collector as a server span whose parent is the
// caller's span and two client spans under it, one per attempt with its
// target; the origin got a traceparent of the caller's trace whose parent
// is the second attempt's span, and the access line names the trace.
// OTLP/HTTP and OTLP/gRPC, both engines.
func TestTracingOTLP(t *testing.T) {
	for _, tc := range []struct{ protocol, engine string }{
		{"http/protobuf", "h1"}, {"grpc", "h1"}, {"http/protobuf", "net/http"},
	} {
		t.Run(tc.protocol+"/"+tc.engine, func(t *testing.T) {
			rec := &trReceiver{}
			endpoint := startOTLPHTTP(t, rec)
			if tc.protocol == "grpc" {
				endpoint = startOTLPGRPC(t, rec)
			}
			got := make(chan string, 8)
			origin := startBackend(t, "o", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- r.Header.Get("Traceparent")
				io.WriteString(w, "ok")
			}))
			dead := trDeadAddr(t)
			g := startGatewayOpts(t, gatewayOpts{Proxy: "  engine: " + tc.engine + "\n"}, fmt.Sprintf(trConfig, endpoint, tc.protocol, dead, origin.Addr))
			c := newClient()
			// Round robin: within two requests one goes to the dead target first.
			for i := range 2 {
				tid := []byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, byte(i)}
				parent := []byte{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
				status, _, body := get(t, c, g.url("/x"), "Traceparent", "00-"+hex.EncodeToString(tid)+"-"+hex.EncodeToString(parent)+"-01")
				if status != 200 {
					t.Fatalf("status %d: %s", status, body)
				}
				tp := <-got
				var spans []*tracepb.Span
				var server *tracepb.Span
				var clients []*tracepb.Span
				waitFor(t, 10*time.Second, "the request's spans at the collector", func() bool {
					spans = rec.trace(tid)
					server, clients = nil, nil
					for _, s := range spans {
						switch s.Kind {
						case tracepb.Span_SPAN_KIND_SERVER:
							server = s
						case tracepb.Span_SPAN_KIND_CLIENT:
							clients = append(clients, s)
						}
					}
					return server != nil && len(clients) > 0 && int64(len(clients)) == trAttr(server, "outrigger.attempts").GetIntValue()
				})
				if !bytes.Equal(server.ParentSpanId, parent) {
					t.Fatalf("server span parent %x, want %x", server.ParentSpanId, parent)
				}
				if m := trAttr(server, "http.request.method").GetStringValue(); m != "GET" {
					t.Errorf("server span http.request.method %q", m)
				}
				if st := trAttr(server, "http.response.status_code").GetIntValue(); st != 200 {
					t.Errorf("server span status %d", st)
				}
				var last *tracepb.Span
				for _, cs := range clients {
					if !bytes.Equal(cs.ParentSpanId, server.SpanId) {
						t.Errorf("client span parent %x, want the server span %x", cs.ParentSpanId, server.SpanId)
					}
					if trAttr(cs, "outrigger.attempt").GetIntValue() == int64(len(clients)) {
						last = cs
					}
				}
				if want := "00-" + hex.EncodeToString(tid) + "-" + hex.EncodeToString(last.SpanId) + "-01"; tp != want {
					t.Errorf("origin got traceparent %q, want %q", tp, want)
				}
				var line map[string]any
				waitFor(t, 5*time.Second, "the access line", func() bool {
					for _, l := range g.logsWhere("access") {
						if l["trace_id"] == hex.EncodeToString(tid) {
							line = l
						}
					}
					return line != nil
				})
				if line["span_id"] != hex.EncodeToString(server.SpanId) {
					t.Errorf("access line span_id %v, want %x", line["span_id"], server.SpanId)
				}
				if len(clients) == 1 {
					continue
				}
				if len(clients) != 2 {
					t.Fatalf("%d client spans", len(clients))
				}
				for _, cs := range clients {
					target := trAttr(cs, "outrigger.target").GetStringValue()
					switch n := trAttr(cs, "outrigger.attempt").GetIntValue(); n {
					case 1:
						if target != dead || cs.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
							t.Errorf("attempt 1: target %s status %v, want %s and an error", target, cs.Status, dead)
						}
					case 2:
						if target != origin.Addr || trAttr(cs, "http.response.status_code").GetIntValue() != 200 {
							t.Errorf("attempt 2: target %s status %d", target, trAttr(cs, "http.response.status_code").GetIntValue())
						}
					default:
						t.Errorf("attempt %d", n)
					}
				}
				return
			}
			t.Fatal("no request was retried")
		})
	}
}

// TestTracingCollectorDown: a collector that accepts connections and never
// answers, or one that is not there, never holds a request back: every
// request is answered while the export is stuck, the spans beyond the
// queue are dropped and counted (queue_full), and a failed export counts
// its spans (export_failed).
func TestTracingCollectorDown(t *testing.T) {
	// A black hole: accepts and reads nothing.
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hole.Close() })
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	for _, tc := range []struct{ name, protocol, endpoint, reason string }{
		{"blocked/http", "http/protobuf", "http://" + hole.Addr().String(), "queue_full"},
		{"blocked/grpc", "grpc", "http://" + hole.Addr().String(), "queue_full"},
		{"unreachable/grpc", "grpc", "http://" + trDeadAddr(t), "export_failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := startBackend(t, "o", nil)
			cfg := fmt.Sprintf(`tracing:
  endpoint: %s
  protocol: %s
  queue_size: 4
  batch_size: 2
  batch_timeout: 10ms
  export_timeout: 1s
upstreams:
  - name: u
    targets:
      - target: %s
services:
  - name: s
    host: u
    port: 80
    protocol: http
    routes:
      - name: r
        paths: [/]
`, tc.endpoint, tc.protocol, origin.Addr)
			g := startGateway(t, cfg)
			c := &http.Client{Timeout: 5 * time.Second}
			series := `outrigger_tracing_spans_dropped_total{reason="` + tc.reason + `"}`
			sent := 0
			for sent < 200 && (sent < 20 || csMetric(t, g, series) == 0) {
				status, _, body := get(t, c, g.url("/x"))
				if status != 200 {
					t.Fatalf("request %d: status %d: %s", sent, status, body)
				}
				sent++
			}
			waitFor(t, 15*time.Second, series, func() bool { return csMetric(t, g, series) > 0 })
			t.Logf("%d requests answered; %s = %v", sent, series, csMetric(t, g, series))
		})
	}
}

// TestAccessLogSuccessSampling: with log.access_log_success_sample_ratio
// 0 no success gets an access line and a failure (502) always does, with
// its trace and span ids when tracing is on.
func TestAccessLogSuccessSampling(t *testing.T) {
	rec := &trReceiver{}
	endpoint := startOTLPHTTP(t, rec)
	origin := startBackend(t, "o", nil)
	dead := trDeadAddr(t)
	// The harness's log section ends the lines before the body: the first
	// line of the body is one more key of it.
	g := startGateway(t, fmt.Sprintf(`  access_log_success_sample_ratio: 0
tracing:
  endpoint: %s
upstreams:
  - name: u
    targets:
      - target: %s
  - name: gone
    targets:
      - target: %s
services:
  - name: s
    host: u
    port: 80
    protocol: http
    routes:
      - name: ok
        paths: [/ok]
  - name: bad
    host: gone
    port: 80
    protocol: http
    retries: 0
    routes:
      - name: bad
        paths: [/bad]
`, endpoint, origin.Addr, dead))
	c := newClient()
	for i := range 5 {
		if status, _, body := get(t, c, g.url("/ok")); status != 200 {
			t.Fatalf("request %d: status %d: %s", i, status, body)
		}
	}
	if status, _, _ := get(t, c, g.url("/bad")); status != 502 {
		t.Fatalf("status %d, want 502", status)
	}
	var bad map[string]any
	waitFor(t, 5*time.Second, "the 502's access line", func() bool {
		for _, l := range g.logsWhere("access") {
			if l["path"] == "/bad" {
				bad = l
			}
		}
		return bad != nil
	})
	if bad["status"] != float64(502) || len(fmt.Sprint(bad["trace_id"])) != 32 || len(fmt.Sprint(bad["span_id"])) != 16 {
		t.Errorf("502 access line %v", bad)
	}
	for _, l := range g.logsWhere("access") {
		if l["path"] == "/ok" {
			t.Errorf("a success was logged at ratio 0: %v", l)
		}
	}
}
