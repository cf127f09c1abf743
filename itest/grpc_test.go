package itest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/outrigger-gw/outrigger/internal/grpctest"
)

// grpcOrigin is a grpc-go server of test.Echo: Say (unary, answers
// "<name>:<msg>" with a trailer) and Chat (bidi, answers every message at
// once). With unavailable set every call is answered UNAVAILABLE.
type grpcOrigin struct {
	name        string
	addr        string
	srv         *grpc.Server
	unavailable atomic.Bool
	calls       atomic.Int64
}

func startGRPCOrigin(t *testing.T, name string) *grpcOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &grpcOrigin{name: name, addr: ln.Addr().String(), srv: grpc.NewServer(grpc.ForceServerCodec(grpctest.RawCodec{}))}
	registerEcho(o)
	go func() { _ = o.srv.Serve(ln) }()
	t.Cleanup(o.srv.Stop)
	return o
}

// registerEcho registers test.Echo on o.srv.
func registerEcho(o *grpcOrigin) {
	name := o.name
	o.srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Say", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			o.calls.Add(1)
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			if o.unavailable.Load() {
				return nil, status.Error(codes.Unavailable, name+" is unavailable")
			}
			_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+name))
			out := []byte(name + ":" + string(in))
			return &out, nil
		}}},
		Streams: []grpc.StreamDesc{{StreamName: "Chat", ServerStreams: true, ClientStreams: true, Handler: func(_ any, st grpc.ServerStream) error {
			for {
				var in []byte
				if err := st.RecvMsg(&in); err == io.EOF {
					return nil
				} else if err != nil {
					return err
				}
				out := []byte(name + ":" + string(in))
				if err := st.SendMsg(&out); err != nil {
					return err
				}
			}
		}}},
	}, o)
}

func grpcClient(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(grpctest.RawCodec{})))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func grpcSay(ctx context.Context, cc *grpc.ClientConn, msg string, opts ...grpc.CallOption) (string, error) {
	in, out := []byte(msg), []byte(nil)
	err := cc.Invoke(ctx, "/test.Echo/Say", &in, &out, opts...)
	return string(out), err
}

// gRPC through the real binary over h2c: unary calls with trailers, a
// bidi stream answered message by message, gRPC errors of the proxy,
// Kong's 426 for gRPC over HTTP/1.1, the grpc_status metric, passive
// ejection of a target answering UNAVAILABLE, and a target killed under
// load with no unary call failing.
func TestGRPCProxying(t *testing.T) {
	a, b, c := startGRPCOrigin(t, "a"), startGRPCOrigin(t, "b"), startGRPCOrigin(t, "c")
	c.unavailable.Store(true)
	cfg := fmt.Sprintf(`upstreams:
  - name: echo
    targets: [{target: %s}, {target: %s}]
    healthchecks:
      passive:
        unhealthy: {http_failures: 3, tcp_failures: 1}
  - name: flaky
    targets: [{target: %s}, {target: %s}]
    healthchecks:
      passive:
        unhealthy: {http_failures: 2}
services:
  - name: echo
    protocol: grpc
    host: echo
    retries: 2
    grpc_idempotent_methods: [/test.Echo/Say]
    routes:
      - name: rpc
        paths: [/test.Echo/]
        strip_path: false
        protocols: [grpc]
  - name: flaky
    protocol: grpc
    host: flaky
    retries: 0
    routes:
      - name: flaky
        paths: [/test.Echo/]
        hosts: [flaky.test]
        strip_path: false
        protocols: [grpc]
`, a.addr, b.addr, c.addr, b.addr)
	g := startGatewayOpts(t, gatewayOpts{Proxy: "  h2c: true\n"}, cfg)
	cc := grpcClient(t, g.ProxyAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Unary, trailers end to end, alternating targets.
	seen := map[string]int{}
	for i := range 4 {
		var trl metadata.MD
		got, err := grpcSay(ctx, cc, fmt.Sprint("hi", i), grpc.Trailer(&trl))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		who, _, _ := strings.Cut(got, ":")
		if got != who+":hi"+fmt.Sprint(i) || len(trl.Get("x-trailer")) != 1 || trl.Get("x-trailer")[0] != "t-"+who {
			t.Fatalf("call %d: %q trailer %v", i, got, trl)
		}
		seen[who]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Errorf("targets %v", seen)
	}

	// Bidi, message by message.
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/test.Echo/Chat")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		msg, out := []byte(fmt.Sprint("m", i)), []byte(nil)
		if err := st.SendMsg(&msg); err != nil {
			t.Fatal(err)
		}
		if err := st.RecvMsg(&out); err != nil || !strings.HasSuffix(string(out), ":m"+fmt.Sprint(i)) {
			t.Fatalf("message %d: %q %v", i, out, err)
		}
	}
	_ = st.CloseSend()
	if err := st.RecvMsg(new([]byte)); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}

	// Errors of the proxy are gRPC's.
	in, out := []byte("x"), []byte(nil)
	err = cc.Invoke(ctx, "/other.Service/M", &in, &out)
	if s := status.Convert(err); s.Code() != codes.Unimplemented {
		t.Errorf("no route: %v", err)
	}

	// gRPC over HTTP/1.1 is refused as Kong does.
	req, _ := http.NewRequest(http.MethodPost, g.url("/test.Echo/Say"), strings.NewReader("\x00\x00\x00\x00\x01x"))
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(string(body), "Please use HTTP2 protocol") {
		t.Errorf("gRPC over HTTP/1.1: %d %q", resp.StatusCode, body)
	}

	// A target answering UNAVAILABLE is ejected after 2 failures.
	fcc := grpcClient(t, g.ProxyAddr, grpc.WithAuthority("flaky.test"))
	failed := 0
	for range 12 {
		_, err := grpcSay(ctx, fcc, "x")
		if status.Code(err) == codes.Unavailable {
			failed++
		} else if err != nil {
			t.Fatalf("flaky: %v", err)
		}
	}
	if failed != 2 {
		t.Errorf("%d calls failed on flaky, want 2 (then c is ejected)", failed)
	}

	// Kill a under unary load: no call fails (retried elsewhere).
	var failures, calls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := grpcSay(ctx, cc, "load"); err != nil {
					failures.Add(1)
					t.Logf("call failed: %v", err)
				}
				calls.Add(1)
			}
		}()
	}
	waitFor(t, 20*time.Second, "load before the kill", func() bool { return calls.Load() >= 50 })
	a.srv.Stop()
	n := calls.Load()
	waitFor(t, 20*time.Second, "load after the kill", func() bool { return calls.Load() >= n+300 })
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Errorf("%d of %d unary calls failed after the kill, want 0", f, calls.Load())
	}

	m := hcMetrics(t, g)
	if v := m[`outrigger_grpc_responses_total{grpc_status="0",route="rpc",service="echo",upstream="echo"}`]; v < 300 {
		t.Errorf("grpc OK count %v", v)
	}
	if v := m[`outrigger_grpc_responses_total{grpc_status="14",route="flaky",service="flaky",upstream="flaky"}`]; v != 2 {
		t.Errorf("grpc UNAVAILABLE count %v, want 2", v)
	}
}
