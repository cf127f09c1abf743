package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/health"
	"github.com/outrigger-gw/outrigger/internal/grpctest"
	"github.com/outrigger-gw/outrigger/proxy/plugins"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/upstream"
)

// echoServer is a real grpc-go server of the test service test.Echo:
//   - Say (unary) answers "<name>:<request>", with header and trailer
//     metadata;
//   - Chat (bidi) answers every message with "<name>:<message>" at once;
//   - Fail answers a trailers-only NOT_FOUND;
//   - Slow blocks until the call's context ends and reports the deadline
//     it saw on deadlines.
//
// With unavailable set every call is answered UNAVAILABLE (trailers-only).
type echoServer struct {
	name        string
	addr        string
	srv         *grpc.Server
	unavailable atomic.Bool
	calls       atomic.Int64
	deadlines   chan time.Duration // -1: none
	peerCN      atomic.Value       // string: the client certificate's CN
}

func startEcho(t *testing.T, name string, opts ...grpc.ServerOption) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startEchoOn(t, name, ln, opts...)
}

func startEchoOn(t *testing.T, name string, ln net.Listener, opts ...grpc.ServerOption) *echoServer {
	t.Helper()
	es := &echoServer{name: name, addr: ln.Addr().String(), deadlines: make(chan time.Duration, 16)}
	es.srv = grpc.NewServer(append(opts, grpc.ForceServerCodec(grpctest.RawCodec{}))...)
	es.srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Say", Handler: es.say},
			{MethodName: "Fail", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var in []byte
				if err := dec(&in); err != nil {
					return nil, err
				}
				_ = grpc.SetTrailer(ctx, metadata.Pairs("x-why", "because"))
				return nil, status.Error(codes.NotFound, "nothing here: "+string(in))
			}},
			{MethodName: "Slow", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var in []byte
				if err := dec(&in); err != nil {
					return nil, err
				}
				d := time.Duration(-1)
				if dl, ok := ctx.Deadline(); ok {
					d = time.Until(dl)
				}
				es.deadlines <- d
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Second):
				}
				return nil, status.FromContextError(ctx.Err()).Err()
			}},
		},
		Streams: []grpc.StreamDesc{{StreamName: "Chat", Handler: es.chat, ServerStreams: true, ClientStreams: true}},
	}, es)
	go func() { _ = es.srv.Serve(ln) }()
	t.Cleanup(es.srv.Stop)
	return es
}

func (es *echoServer) say(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	es.calls.Add(1)
	var in []byte
	if err := dec(&in); err != nil {
		return nil, err
	}
	if es.unavailable.Load() {
		return nil, status.Error(codes.Unavailable, es.name+" is unavailable")
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			es.peerCN.Store(ti.State.PeerCertificates[0].Subject.CommonName)
		}
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-served-by", es.name))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+es.name))
	out := []byte(es.name + ":" + string(in))
	return &out, nil
}

func (es *echoServer) chat(_ any, stream grpc.ServerStream) error {
	es.calls.Add(1)
	if es.unavailable.Load() {
		return status.Error(codes.Unavailable, es.name+" is unavailable")
	}
	_ = stream.SetHeader(metadata.Pairs("x-served-by", es.name))
	for {
		var in []byte
		if err := stream.RecvMsg(&in); err == io.EOF {
			stream.SetTrailer(metadata.Pairs("x-trailer", "chat-"+es.name))
			return nil
		} else if err != nil {
			return err
		}
		out := []byte(es.name + ":" + string(in))
		if err := stream.SendMsg(&out); err != nil {
			return err
		}
	}
}

// grpcFixture is a proxy with one gRPC service over targets, served by
// the engine with h2c, and a grpc-go client connection to it.
type grpcFixture struct {
	p       *Proxy
	reg     *prometheus.Registry
	svc     *Service
	up      *upstream.Upstream
	checker *health.Checker
	conn    *grpc.ClientConn
	base    string
}

type grpcSetup struct {
	targets  []string
	protocol string // default ProtoGRPC
	tls      TLSOptions
	retries  int
	idem     []string
	passive  *health.PassiveConfig
	readTO   time.Duration
	routeRPC bool // the route's protocols are grpc
	plugins  *plugins.Chain
}

func newGRPCFixture(t *testing.T, s grpcSetup) *grpcFixture {
	t.Helper()
	if s.protocol == "" {
		s.protocol = ProtoGRPC
	}
	f := &grpcFixture{reg: prometheus.NewRegistry()}
	f.p = New(Options{Log: zerolog.Nop(), Metrics: NewMetrics(f.reg)})
	cfg := health.Config{}
	if s.passive != nil {
		cfg.Passive = *s.passive
	}
	var u *upstream.Upstream
	f.checker = health.New(cfg, health.Options{OnChange: func() { u.Rebuild() }})
	u = upstream.New(upstream.Options{Name: "echo", Balancer: balance.NewRoundRobin(), Health: f.checker})
	ts := make([]upstream.Target, len(s.targets))
	for i, a := range s.targets {
		ts[i] = upstream.Target{Addr: a, Weight: 1}
	}
	u.SetTargets(upstream.StaticSource, ts)
	f.up = u
	scheme := "http"
	if s.protocol == ProtoGRPCS || s.protocol == ProtoHTTPS {
		scheme = "https"
	}
	f.svc = &Service{Name: "echo", Scheme: scheme, Protocol: s.protocol, Upstream: u, Retries: s.retries, GRPCIdempotent: s.idem,
		Stats: &RoleStats{},
		Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, IdleConnTimeout: time.Minute,
			MaxIdleConnsPerHost: 4, ReadTimeout: s.readTO, WriteTimeout: s.readTO, Protocol: s.protocol, TLS: s.tls})}
	rtr, err := router.New([]router.Route{
		{Name: "echo", Paths: []string{"/test.Echo/"}, Value: &Route{Name: "echo", Service: f.svc, GRPC: s.routeRPC, Plugins: s.plugins}},
		{Name: "plain", Paths: []string{"/plain/"}, Value: &Route{Name: "plain", Service: f.svc}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.p.SetTable(&Table{Router: rtr})
	f.base = serveEngine(t, f.p, ServerOptions{H2C: true})
	f.conn, err = grpc.NewClient("passthrough:///"+strings.TrimPrefix(f.base, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(grpctest.RawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.conn.Close() })
	return f
}

func (f *grpcFixture) say(ctx context.Context, msg string, opts ...grpc.CallOption) (string, error) {
	in, out := []byte(msg), []byte(nil)
	err := f.conn.Invoke(ctx, "/test.Echo/Say", &in, &out, opts...)
	return string(out), err
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Unary calls and a bidi stream go through, with header and trailer
// metadata end to end; every stream message is answered before the next
// one is sent (nothing is held back by the proxy); grpc-status feeds the
// grpc metric.
func TestGRPCUnaryAndBidi(t *testing.T) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr, b.addr}})
	ctx := testCtx(t)
	seen := map[string]int{}
	for i := range 6 {
		var hdr, trl metadata.MD
		got, err := f.say(ctx, fmt.Sprint("hi", i), grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		who, rest, _ := strings.Cut(got, ":")
		if rest != fmt.Sprint("hi", i) || hdr.Get("x-served-by")[0] != who || trl.Get("x-trailer")[0] != "t-"+who {
			t.Fatalf("call %d: %q header %v trailer %v", i, got, hdr, trl)
		}
		seen[who]++
	}
	if seen["a"] != 3 || seen["b"] != 3 {
		t.Errorf("calls per target %v, want 3 and 3", seen)
	}

	st, err := f.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/test.Echo/Chat")
	if err != nil {
		t.Fatal(err)
	}
	var who string
	for i := range 5 {
		msg := []byte(fmt.Sprint("m", i))
		if err := st.SendMsg(&msg); err != nil {
			t.Fatal(err)
		}
		var out []byte
		if err := st.RecvMsg(&out); err != nil { // before the next send: flushed at once
			t.Fatalf("message %d: %v", i, err)
		}
		w, rest, _ := strings.Cut(string(out), ":")
		if rest != string(msg) || (who != "" && w != who) {
			t.Fatalf("message %d: got %q", i, out)
		}
		who = w
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var out []byte
	if err := st.RecvMsg(&out); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
	if tr := st.Trailer(); len(tr.Get("x-trailer")) != 1 || tr.Get("x-trailer")[0] != "chat-"+who {
		t.Errorf("stream trailer %v", tr)
	}
	waitGathered(t, f.reg, "outrigger_grpc_responses_total", map[string]string{"service": "echo", "grpc_status": "0"}, 7)
}

// waitGathered polls a series until it reaches want (the count happens
// after the client has its answer).
func waitGathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for gathered(t, reg, name, labels) != want && time.Now().Before(end) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := gathered(t, reg, name, labels); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// A trailers-only error of the target reaches the client as it was sent
// (status, message, trailer metadata) and is counted by its grpc-status;
// it is not held against the target.
func TestGRPCTrailersOnlyError(t *testing.T) {
	a := startEcho(t, "a")
	f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr}})
	ctx := testCtx(t)
	in, out := []byte("x"), []byte(nil)
	var trl metadata.MD
	err := f.conn.Invoke(ctx, "/test.Echo/Fail", &in, &out, grpc.Trailer(&trl))
	if s := status.Convert(err); s.Code() != codes.NotFound || s.Message() != "nothing here: x" {
		t.Fatalf("got %v, want NOT_FOUND from the target", err)
	}
	if v := trl.Get("x-why"); len(v) != 1 || v[0] != "because" {
		t.Errorf("trailer metadata %v", trl)
	}
	waitGathered(t, f.reg, "outrigger_grpc_responses_total", map[string]string{"grpc_status": "5"}, 1)
	if s := f.svc.Stats.Snapshot(); s.Requests != 1 || s.Errors != 0 {
		t.Errorf("rollout stats %+v: NOT_FOUND is not a failure of the target", s)
	}
}

// Errors the proxy produces for a gRPC request are gRPC errors:
// UNIMPLEMENTED without a route, UNAVAILABLE without a healthy target or
// when the target cannot be reached, DEADLINE_EXCEEDED on a timeout.
func TestGRPCErrorsFromProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close() // nothing listens there any more
	slow := startEcho(t, "slow")
	ctx := testCtx(t)

	f := newGRPCFixture(t, grpcSetup{targets: []string{dead}})
	in, out := []byte("x"), []byte(nil)
	err = f.conn.Invoke(ctx, "/other.Service/M", &in, &out)
	if s := status.Convert(err); s.Code() != codes.Unimplemented || s.Message() != "no Route matched with those values" {
		t.Errorf("no route: %v", err)
	}
	_, err = f.say(ctx, "x")
	if s := status.Convert(err); s.Code() != codes.Unavailable || !strings.Contains(s.Message(), "invalid response was received from the upstream") {
		t.Errorf("target down: %v", err)
	}
	waitGathered(t, f.reg, "outrigger_grpc_responses_total", map[string]string{"grpc_status": "14"}, 1)

	f.up.SetTargets(upstream.StaticSource, nil)
	_, err = f.say(ctx, "x")
	if s := status.Convert(err); s.Code() != codes.Unavailable || s.Message() != "failure to get a peer from the ring-balancer" {
		t.Errorf("no target: %v", err)
	}

	// The service's read timeout bounds the wait for the answer (a call
	// without a deadline of its own).
	g := newGRPCFixture(t, grpcSetup{targets: []string{slow.addr}, readTO: 300 * time.Millisecond})
	err = g.conn.Invoke(context.Background(), "/test.Echo/Slow", &in, &out)
	if s := status.Convert(err); s.Code() != codes.DeadlineExceeded || s.Message() != "The upstream server is timing out" {
		t.Errorf("read timeout: %v", err)
	}
	if d := <-slow.deadlines; d != -1 {
		t.Errorf("the target saw a deadline %v without grpc-timeout", d)
	}
	waitGathered(t, g.reg, "outrigger_grpc_responses_total", map[string]string{"grpc_status": "4"}, 1)
}

// The client's grpc-timeout reaches the target (as the time left) and
// ends the call.
func TestGRPCTimeoutHonoured(t *testing.T) {
	slow := startEcho(t, "slow")
	f := newGRPCFixture(t, grpcSetup{targets: []string{slow.addr}})
	ctx, cancel := context.WithTimeout(testCtx(t), 700*time.Millisecond)
	defer cancel()
	in, out := []byte("x"), []byte(nil)
	start := time.Now()
	err := f.conn.Invoke(ctx, "/test.Echo/Slow", &in, &out)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DEADLINE_EXCEEDED", err)
	}
	d := <-slow.deadlines
	if d <= 0 || d > 700*time.Millisecond {
		t.Errorf("the target saw deadline %v, want the time left of 700ms", d)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("the call took %v", el)
	}
}

// A target answering UNAVAILABLE is ejected by the passive checks; the
// rollout stats count the failures.
func TestGRPCUnavailableEjects(t *testing.T) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	a.unavailable.Store(true)
	f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr, b.addr}, passive: &health.PassiveConfig{
		Enabled: true, HTTPFailures: 2, HealthyStatuses: []int{200}, UnhealthyStatuses: []int{500},
		BaseEjectionTime: time.Minute, MaxEjectionTime: time.Minute,
	}})
	ctx := testCtx(t)
	failed := 0
	for range 20 {
		if _, err := f.say(ctx, "x"); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("unexpected %v", err)
			}
			failed++
		}
	}
	if failed != 2 {
		t.Errorf("%d calls failed, want 2 (then the target is ejected)", failed)
	}
	if f.checker.Healthy(a.addr) || !f.checker.Healthy(b.addr) {
		t.Errorf("health a=%v b=%v, want a ejected", f.checker.Healthy(a.addr), f.checker.Healthy(b.addr))
	}
	end := time.Now().Add(5 * time.Second)
	for f.svc.Stats.Snapshot().Requests < 20 && time.Now().Before(end) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := f.svc.Stats.Snapshot(); s.Requests != 20 || s.Errors != 2 {
		t.Errorf("rollout stats %+v, want 20 requests and 2 errors", s)
	}
}

// UNAVAILABLE is retried on another target for a method listed as
// idempotent, and passed to the client for another.
func TestGRPCRetryIdempotent(t *testing.T) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	a.unavailable.Store(true)
	ctx := testCtx(t)
	f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr, b.addr}, retries: 2, idem: []string{"/test.Echo/Say"}})
	for i := range 10 {
		got, err := f.say(ctx, strings.Repeat("y", 1000*i))
		if err != nil || !strings.HasPrefix(got, "b:") || len(got) != 2+1000*i {
			t.Fatalf("call %d: %d bytes, %v", i, len(got), err)
		}
	}
	waitGathered(t, f.reg, "outrigger_retries_total", map[string]string{"service": "echo"}, 5)

	g := newGRPCFixture(t, grpcSetup{targets: []string{a.addr, b.addr}, retries: 2})
	failed := 0
	for range 10 {
		if _, err := g.say(ctx, "x"); status.Code(err) == codes.Unavailable {
			failed++
		}
	}
	if failed != 5 {
		t.Errorf("%d calls failed, want 5: a method not listed is never resent", failed)
	}
}

// Killing a target under streaming load: the streams on it end, new
// streams go to the other target, and no unary call fails (the calls
// that find it gone are retried).
func TestGRPCKilledTargetUnderLoad(t *testing.T) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr, b.addr}, retries: 2, idem: []string{"/test.Echo/Say"},
		passive: &health.PassiveConfig{Enabled: true, TCPFailures: 1, HTTPFailures: 3, HealthyStatuses: []int{200},
			BaseEjectionTime: time.Minute, MaxEjectionTime: time.Minute}})
	ctx := testCtx(t)
	// Streams on both targets.
	type chat struct {
		st  grpc.ClientStream
		who string
	}
	var chats []chat
	for range 4 {
		st, err := f.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/test.Echo/Chat")
		if err != nil {
			t.Fatal(err)
		}
		msg, out := []byte("hello"), []byte(nil)
		if err := st.SendMsg(&msg); err != nil {
			t.Fatal(err)
		}
		if err := st.RecvMsg(&out); err != nil {
			t.Fatal(err)
		}
		who, _, _ := strings.Cut(string(out), ":")
		chats = append(chats, chat{st, who})
	}
	// Unary load, bounded in count and time.
	// A call in flight on a when it dies may fail once its response has
	// begun (a message relayed without its trailers cannot be taken
	// back); every call that began after the kill must succeed.
	var failures, lateFailures atomic.Int64
	var calls atomic.Int64
	var killed atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				late := killed.Load()
				if _, err := f.say(ctx, "load"); err != nil {
					failures.Add(1)
					if late {
						lateFailures.Add(1)
					}
					t.Logf("unary call failed (began after the kill: %v): %v", late, err)
				}
				calls.Add(1)
			}
		}()
	}
	waitUntil(t, func() bool { return calls.Load() >= 50 })
	a.srv.Stop() // killed: connections closed at once
	killed.Store(true)
	before := calls.Load()
	waitUntil(t, func() bool { return calls.Load() >= before+200 })
	close(stop)
	wg.Wait()
	if n := lateFailures.Load(); n != 0 {
		t.Errorf("%d of %d unary calls that began after the kill failed, want 0", n, calls.Load())
	}
	if n := failures.Load(); n > 4 {
		t.Errorf("%d unary calls failed, want at most the 4 in flight at the kill", n)
	}
	// The streams on a ended; those on b go on.
	for i, c := range chats {
		msg, out := []byte("again"), []byte(nil)
		err := c.st.SendMsg(&msg)
		if err == nil {
			err = c.st.RecvMsg(&out)
		}
		if c.who == "a" && err == nil {
			t.Errorf("stream %d on the killed target still answers", i)
		}
		if c.who == "b" && (err != nil || string(out) != "b:again") {
			t.Errorf("stream %d on b: %q %v", i, out, err)
		}
	}
	// New streams go to b.
	for range 3 {
		st, err := f.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/test.Echo/Chat")
		if err != nil {
			t.Fatal(err)
		}
		msg, out := []byte("new"), []byte(nil)
		if err := st.SendMsg(&msg); err != nil {
			t.Fatal(err)
		}
		if err := st.RecvMsg(&out); err != nil || string(out) != "b:new" {
			t.Errorf("new stream: %q %v", out, err)
		}
		_ = st.CloseSend()
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Over HTTP/1.1 the engine refuses gRPC as Kong does: 426 (gRPC needs
// HTTP/2 end to end); a grpc route answers a non-gRPC request 415. An
// h2c service is reached from HTTP/1.1 clients through the net/http path.
func TestGRPCOverHTTP1(t *testing.T) {
	a := startEcho(t, "a")
	f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr}, routeRPC: true})
	c := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodPost, f.base+"/test.Echo/Say", strings.NewReader("\x00\x00\x00\x00\x01x"))
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") != "HTTP/2" ||
		strings.TrimSpace(string(body)) != `{"message":"Please use HTTP2 protocol"}` {
		t.Errorf("gRPC over HTTP/1.1: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, err = c.Get(f.base + "/test.Echo/Say")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType || strings.TrimSpace(string(body)) != `{"message":"Non-gRPC request matched gRPC route"}` {
		t.Errorf("plain request on a grpc route: %d %q", resp.StatusCode, body)
	}
}

// An h2c service: HTTP/1.1 clients are bridged to the net/http path and
// reach the target over HTTP/2 with prior knowledge, trailers included.
func TestH2CServiceFromHTTP1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos sync.Map
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		if r.URL.Path == "/plain/slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Got", r.Method+" "+r.URL.Path)
		_, _ = io.WriteString(w, "echo:"+string(b))
		w.Header().Set("X-Sum", fmt.Sprint(len(b)))
	})
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	f := newGRPCFixture(t, grpcSetup{targets: []string{ln.Addr().String()}, protocol: ProtoH2C, readTO: 300 * time.Millisecond})
	prot := new(http.Protocols)
	prot.SetUnencryptedHTTP2(true)
	for _, c := range []*http.Client{
		{Timeout: 10 * time.Second}, // HTTP/1.1: bridged
		{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: prot}}, // HTTP/2
	} {
		resp, err := c.Post(f.base+"/plain/x", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "echo:hello" || resp.Header.Get("X-Got") != "POST /plain/x" || resp.Trailer.Get("X-Sum") != "5" {
			t.Errorf("%s: %d %q header %v trailer %v", resp.Proto, resp.StatusCode, body, resp.Header, resp.Trailer)
		}
		// read_timeout bounds the wait, per stream.
		resp, err = c.Get(f.base + "/plain/slow")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("%s slow: %d %q, want 504", resp.Proto, resp.StatusCode, body)
		}
	}
	if _, ok := protos.Load("HTTP/2.0"); !ok {
		t.Errorf("the target saw %v, want HTTP/2.0", keys(&protos))
	}
	waitGathered(t, f.reg, "outrigger_requests_total", map[string]string{"route": "plain", "code": "2xx"}, 2)
}

func keys(m *sync.Map) []any {
	var out []any
	m.Range(func(k, _ any) bool { out = append(out, k); return true })
	return out
}

// A gRPC call over max_requests is answered at once with grpc-status 14
// (UNAVAILABLE) and the overloaded header; with the slot free it passes.
func TestGRPCOverloaded(t *testing.T) {
	echo := startEcho(t, "a")
	ctx := testCtx(t)
	f := newGRPCFixture(t, grpcSetup{targets: []string{echo.addr}})
	brk := f.up.Breakers()
	brk.SetLimits(upstream.Limits{MaxRequests: 1})
	if !brk.AcquireRequest() { // a call in progress
		t.Fatal("the slot was refused")
	}
	// A trailers-only answer: grpc-go hands its fields over as trailers.
	var md metadata.MD
	_, err := f.say(ctx, "x", grpc.Trailer(&md))
	if s := status.Convert(err); s.Code() != codes.Unavailable || s.Message() != overloadedMessage {
		t.Fatalf("over max_requests: %v", err)
	}
	if v := md.Get(OverloadedHeader); len(v) != 1 || v[0] != "true" {
		t.Fatalf("header metadata %v, want %s: true", md, OverloadedHeader)
	}
	brk.ReleaseRequest()
	if _, err := f.say(ctx, "x"); err != nil {
		t.Fatalf("with the slot free: %v", err)
	}
}

// startHeadersThenReset serves h2c whose every stream answers gRPC
// response headers, flushes them, and then resets the stream: a target
// that dies between its headers and its first message.
func startHeadersThenReset(t *testing.T) (addr string, calls *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	calls = new(atomic.Int64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // RST_STREAM after the headers went out
	})}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), calls
}

// A target that sends an idempotent call's response headers and then
// resets the stream is retried on another target: the call succeeds
// (it used to reach the client as RST_STREAM INTERNAL_ERROR). A method
// not listed idempotent is not retried once headers came.
func TestGRPCRetryAfterHeadersThenReset(t *testing.T) {
	bad, calls := startHeadersThenReset(t)
	b := startEcho(t, "b")
	f := newGRPCFixture(t, grpcSetup{targets: []string{bad, b.addr}, retries: 2, idem: []string{"/test.Echo/Say"}})
	ctx := testCtx(t)
	for i := range 6 {
		out, err := f.say(ctx, fmt.Sprint("m", i))
		if err != nil || out != fmt.Sprint("b:m", i) {
			t.Fatalf("call %d: %q %v", i, out, err)
		}
	}
	if calls.Load() == 0 {
		t.Fatal("the resetting target got no call; the test proves nothing")
	}
	g := newGRPCFixture(t, grpcSetup{targets: []string{bad}, retries: 2})
	if _, err := g.say(ctx, "x"); status.Code(err) == codes.OK {
		t.Fatal("a non-idempotent call on a resetting target succeeded")
	}
}

// retry_on decides which grpc-status a call is retried on: a policy
// without unavailable relays the target's UNAVAILABLE; one naming it (and
// only resource-exhausted otherwise) retries it.
func TestGRPCRetryOnStatuses(t *testing.T) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	a.unavailable.Store(true)
	ctx := testCtx(t)
	f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr, b.addr}, retries: 2, idem: []string{"/test.Echo/Say"}})
	failures := func() (n int) {
		for range 10 {
			if _, err := f.say(ctx, "x"); status.Code(err) == codes.Unavailable {
				n++
			}
		}
		return n
	}
	on, err := upstream.ParseRetryOn([]string{"reset", "resource-exhausted"})
	if err != nil {
		t.Fatal(err)
	}
	f.up.SetRetryPolicy(&upstream.RetryPolicy{On: on})
	if n := failures(); n != 5 {
		t.Fatalf("retry_on without unavailable: %d of 10 failed, want 5", n)
	}
	on, _ = upstream.ParseRetryOn([]string{"unavailable"})
	f.up.SetRetryPolicy(&upstream.RetryPolicy{On: on, BackoffBase: time.Millisecond})
	if n := failures(); n != 0 {
		t.Fatalf("retry_on unavailable: %d of 10 failed, want 0", n)
	}
}

// TestH2StreamIdleTimer: with an HTTP/2 upstream, read_timeout bounds the
// gap between two operations of a stream, not the stream: a bidi stream
// whose messages come more often than that lives on well past it, and a
// stream with nothing moving is cut.
func TestH2StreamIdleTimer(t *testing.T) {
	const timeout = time.Second
	a := startEcho(t, "a")
	f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr}, readTO: timeout})
	ctx := testCtx(t)
	chat := func() grpc.ClientStream {
		st, err := f.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/test.Echo/Chat")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	busy := chat()
	end := time.Now().Add(4 * timeout)
	for i := 0; time.Now().Before(end); i++ {
		msg := []byte(fmt.Sprint("m", i))
		if err := busy.SendMsg(&msg); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var out []byte
		if err := busy.RecvMsg(&out); err != nil {
			t.Fatalf("message %d, a gap shorter than read_timeout: %v", i, err)
		}
		time.Sleep(timeout / 10)
	}
	_ = busy.CloseSend()

	idle := chat()
	var out []byte
	if err := idle.RecvMsg(&out); err == nil {
		t.Fatal("a stream with nothing moving was not cut")
	}
}

// A gRPC call whose attempt ends past the call's deadline by anything but
// our own timer (the target resetting the stream on its copy of the
// deadline came first) is DEADLINE_EXCEEDED, not UNAVAILABLE (seen in CI
// under load as "An invalid response was received from the upstream
// server").
func TestGRPCPastDeadlineIsDeadlineExceeded(t *testing.T) {
	p := New(Options{Log: zerolog.Nop()})
	for _, tc := range []struct {
		deadline time.Time
		want     string
	}{
		{time.Now().Add(-time.Millisecond), "4"},
		{time.Now().Add(time.Hour), "14"},
		{time.Time{}, "14"},
	} {
		rs := &reqState{}
		rs.grpc.on, rs.grpc.deadline = true, tc.deadline
		r := httptest.NewRequest(http.MethodPost, "/test.Echo/Slow", nil)
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, rs))
		w := httptest.NewRecorder()
		p.errorHandler(w, r, http2StreamReset{})
		if got := w.Header().Get("Grpc-Status"); got != tc.want {
			t.Errorf("deadline %v: grpc-status %q, want %s", tc.deadline, got, tc.want)
		}
	}
}

// http2StreamReset stands for the error a reset stream gives.
type http2StreamReset struct{}

func (http2StreamReset) Error() string {
	return "stream error: stream ID 1; CANCEL; received from peer"
}
