package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// countingListener counts accepted connections and the ones still open.
type countingListener struct {
	net.Listener
	accepted, open atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	l.open.Add(1)
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// grpcTarget is a real gRPC server with grpc-go's health service on a
// loopback port.
type grpcTarget struct {
	addr   string
	ln     *countingListener
	srv    *grpc.Server
	health *grpchealth.Server
	done   chan struct{}

	mu       sync.Mutex
	md       metadata.MD // of the last health call
	services []string    // asked for, in order
}

// startGRPC serves on addr ("127.0.0.1:0" for a fresh port); creds nil
// means plaintext.
func startGRPC(t *testing.T, addr string, creds credentials.TransportCredentials) *grpcTarget {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := &grpcTarget{addr: ln.Addr().String(), ln: &countingListener{Listener: ln}, health: grpchealth.NewServer(), done: make(chan struct{})}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		g.mu.Lock()
		g.md = md
		if r, ok := req.(*healthpb.HealthCheckRequest); ok {
			g.services = append(g.services, r.GetService())
		}
		g.mu.Unlock()
		return h(ctx, req)
	})}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	g.srv = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(g.srv, g.health)
	go func() {
		defer close(g.done)
		_ = g.srv.Serve(g.ln)
	}()
	t.Cleanup(g.stop)
	return g
}

func (g *grpcTarget) stop() {
	g.srv.Stop()
	<-g.done
}

func (g *grpcTarget) set(service string, s healthpb.HealthCheckResponse_ServingStatus) {
	g.health.SetServingStatus(service, s)
}

func (g *grpcTarget) lastMD() metadata.MD {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.md
}

func grpcConfig(typ string) ActiveConfig {
	return ActiveConfig{
		Enabled: true, Type: typ, Timeout: 10 * time.Second,
		HealthyInterval: 10 * time.Second, Successes: 2,
		UnhealthyInterval: time.Second, HTTPFailures: 3, TCPFailures: 2, Timeouts: 2,
	}
}

// TestGRPCProbe drives a grpc checker against a real gRPC server whose
// health flips: SERVING keeps the target healthy, NOT_SERVING makes it
// unhealthy after HTTPFailures probes, SERVING again brings it back after
// Successes probes; every probe goes over the one connection opened by
// the first, headers arrive as metadata, and removing the target closes
// that connection.
func TestGRPCProbe(t *testing.T) {
	srv := startGRPC(t, "127.0.0.1:0", nil)
	clk := newFakeClock()
	var rec recorder
	cfg := grpcConfig(TypeGRPC)
	cfg.Headers = map[string][]string{"X-Probe": {"yes"}}
	cfg.Host = "svc.internal"
	c := New(Config{Active: cfg}, rec.options(clk))
	c.SetTargets([]string{srv.addr})
	c.Start(context.Background())
	defer c.Stop()

	steps := []struct {
		desc     string
		status   healthpb.HealthCheckResponse_ServingStatus
		healthy  bool
		next     time.Duration
		counters Counters
	}{
		{"SERVING while healthy counts a success", healthpb.HealthCheckResponse_SERVING, true, 10 * time.Second, Counters{Successes: 1}},
		{"NOT_SERVING 1", healthpb.HealthCheckResponse_NOT_SERVING, true, 10 * time.Second, Counters{HTTPFailures: 1}},
		{"NOT_SERVING 2", healthpb.HealthCheckResponse_NOT_SERVING, true, 10 * time.Second, Counters{HTTPFailures: 2}},
		{"NOT_SERVING 3 turns unhealthy, counters reset", healthpb.HealthCheckResponse_NOT_SERVING, false, time.Second, Counters{}},
		{"NOT_SERVING while unhealthy", healthpb.HealthCheckResponse_NOT_SERVING, false, time.Second, Counters{HTTPFailures: 1}},
		{"SERVING 1", healthpb.HealthCheckResponse_SERVING, false, time.Second, Counters{Successes: 1}},
		{"SERVING 2 turns healthy", healthpb.HealthCheckResponse_SERVING, true, 10 * time.Second, Counters{}},
		{"SERVING again", healthpb.HealthCheckResponse_SERVING, true, 10 * time.Second, Counters{Successes: 1}},
	}
	for _, s := range steps {
		srv.set("", s.status)
		next := clk.probeOnce(t)
		st := state(t, c, srv.addr)
		if st.Healthy != s.healthy || st.Active != s.counters || next != s.next {
			t.Fatalf("%s: healthy=%v counters=%+v next=%v, want %v %+v %v", s.desc, st.Healthy, st.Active, next, s.healthy, s.counters, s.next)
		}
	}
	evs := rec.waitEvents(t, 2)
	if evs[0].New || evs[0].Cause != CauseActive || !evs[1].New {
		t.Errorf("events %+v, want one active flip down and one up", evs)
	}
	if n := srv.ln.accepted.Load(); n != 1 {
		t.Errorf("%d connections accepted for %d probes, want 1", n, len(steps))
	}
	md := srv.lastMD()
	if got := md.Get("x-probe"); len(got) != 1 || got[0] != "yes" {
		t.Errorf("metadata x-probe = %v, want [yes]", got)
	}
	if got := md.Get(":authority"); len(got) != 1 || got[0] != "svc.internal" {
		t.Errorf(":authority = %v, want svc.internal", got)
	}
	if got := md.Get("user-agent"); len(got) != 1 || len(got[0]) < len("outrigger-health") || got[0][:len("outrigger-health")] != "outrigger-health" {
		t.Errorf("user-agent = %v, want outrigger-health...", got)
	}

	c.SetTargets(nil)
	waitFor(t, "the removed target's connection to close", func() bool { return srv.ln.open.Load() == 0 })
}

// TestGRPCServiceName checks that the configured service name is the one
// asked about: a serving service passes, a not-serving one and one the
// server does not know fail, and the empty name asks about the server.
func TestGRPCServiceName(t *testing.T) {
	srv := startGRPC(t, "127.0.0.1:0", nil)
	srv.set("pkg.Up", healthpb.HealthCheckResponse_SERVING)
	srv.set("pkg.Down", healthpb.HealthCheckResponse_NOT_SERVING)
	srv.set("", healthpb.HealthCheckResponse_SERVING)
	tests := []struct {
		desc, service string
		want          Counters
	}{
		{"serving service", "pkg.Up", Counters{Successes: 1}},
		{"not serving service", "pkg.Down", Counters{HTTPFailures: 1}},
		{"unknown service (NotFound)", "pkg.Unknown", Counters{HTTPFailures: 1}},
		{"whole server", "", Counters{Successes: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			clk := newFakeClock()
			var rec recorder
			cfg := grpcConfig(TypeGRPC)
			cfg.GRPCService = tc.service
			c := New(Config{Active: cfg}, rec.options(clk))
			c.SetTargets([]string{srv.addr})
			c.Start(context.Background())
			defer c.Stop()
			clk.probeOnce(t)
			if st := state(t, c, srv.addr); st.Active != tc.want {
				t.Errorf("counters %+v, want %+v", st.Active, tc.want)
			}
			srv.mu.Lock()
			last := srv.services[len(srv.services)-1]
			srv.mu.Unlock()
			if last != tc.service {
				t.Errorf("server was asked about %q, want %q", last, tc.service)
			}
		})
	}
}

// TestGRPCServerStops stops a healthy target's server: probes count TCP
// failures (fast, not timeouts) until the target is unhealthy; a server
// started again on the same address brings it back after Successes
// probes, although the channel was in reconnect backoff.
func TestGRPCServerStops(t *testing.T) {
	srv := startGRPC(t, "127.0.0.1:0", nil)
	clk := newFakeClock()
	var rec recorder
	c := New(Config{Active: grpcConfig(TypeGRPC)}, rec.options(clk))
	c.SetTargets([]string{srv.addr})
	c.Start(context.Background())
	defer c.Stop()
	clk.probeOnce(t)
	if st := state(t, c, srv.addr); st.Active != (Counters{Successes: 1}) {
		t.Fatalf("counters %+v, want one success", st.Active)
	}

	srv.stop()
	start := time.Now()
	clk.probeOnce(t)
	if st := state(t, c, srv.addr); st.Active != (Counters{TCPFailures: 1}) || !st.Healthy {
		t.Fatalf("after the server stopped: %+v, want healthy with one tcp failure", st)
	}
	if next := clk.probeOnce(t); next != time.Second {
		t.Fatalf("next probe after %v, want the unhealthy interval", next)
	}
	if st := state(t, c, srv.addr); st.Healthy || st.Cause != CauseActive {
		t.Fatalf("after two tcp failures: %+v, want unhealthy", st)
	}
	if el := time.Since(start); el >= 10*time.Second {
		t.Errorf("two probes of a stopped server took %v: they waited for the timeout", el)
	}

	again := startGRPC(t, srv.addr, nil)
	clk.probeOnce(t)
	clk.probeOnce(t)
	if st := state(t, c, srv.addr); !st.Healthy {
		t.Fatalf("after two probes of the restarted server: %+v, want healthy", st)
	}
	if n := again.ln.accepted.Load(); n != 1 {
		t.Errorf("restarted server accepted %d connections, want 1", n)
	}
}

// TestGRPCProbeFailures covers the ways a probe can fail to get an
// answer.
// TestGRPCProbeFailures checks how failed gRPC probes are counted, over
// real sockets (a peer that never answers: TestGRPCProbeTimeout).
func TestGRPCProbeFailures(t *testing.T) {
	tests := []struct {
		desc string
		addr func(t *testing.T) string
		want Counters
	}{
		{"closed port: tcp failure", closedAddr, Counters{TCPFailures: 1}},
		{"an HTTP/1.1 server: tcp failure", func(t *testing.T) string {
			s := httptest.NewServer(http.NotFoundHandler())
			t.Cleanup(s.Close)
			return s.Listener.Addr().String()
		}, Counters{TCPFailures: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			addr := tc.addr(t)
			clk := newFakeClock()
			var rec recorder
			cfg := grpcConfig(TypeGRPC)
			cfg.Timeout = 300 * time.Millisecond
			c := New(Config{Active: cfg}, rec.options(clk))
			c.SetTargets([]string{addr})
			c.Start(context.Background())
			defer c.Stop()
			clk.probeOnce(t)
			if st := state(t, c, addr); st.Active != tc.want || !st.Healthy {
				t.Errorf("state %+v, want healthy with counters %+v", st, tc.want)
			}
		})
	}
}

// TestGRPCProbeTimeout runs in a bubble over an in-memory network: a peer
// that reads the client's preface and never speaks HTTP/2 makes the probe a
// timeout exactly Timeout after it began; Stop closes the channel (the
// bubble would not end with its goroutines left).
func TestGRPCProbeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr, timeout = "backend.test:50051", 300 * time.Millisecond
		pn := &pipeNet{serve: silentPeer}
		var rec recorder
		opts := rec.options(nil)
		opts.DialContext = pn.dial
		cfg := grpcConfig(TypeGRPC)
		cfg.Timeout = timeout
		c := New(Config{Active: cfg}, opts)
		c.SetTargets([]string{addr})
		c.Start(context.Background())
		defer c.Stop()
		time.Sleep(timeout - time.Nanosecond)
		synctest.Wait()
		if st := state(t, c, addr); st.Active != (Counters{}) || len(pn.dialTimes()) == 0 {
			t.Fatalf("before the timeout: %+v after %d dials, want no count after a dial", st, len(pn.dialTimes()))
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if st := state(t, c, addr); st.Active != (Counters{Timeouts: 1}) || !st.Healthy {
			t.Fatalf("state %+v, want healthy with one timeout", st)
		}
	})
}

// TestGRPCSProbe checks grpcs probes: certificate verification, SNI and
// the base TLS configuration, as for https.
func TestGRPCSProbe(t *testing.T) {
	hs := httptest.NewUnstartedServer(http.NotFoundHandler())
	hs.StartTLS()
	cert := hs.TLS.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(hs.Certificate())
	hs.Close()
	var sni atomic.Value
	sni.Store("")
	srv := startGRPC(t, "127.0.0.1:0", credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni.Store(h.ServerName)
			return nil, nil
		},
	}))

	tests := []struct {
		desc    string
		typ     string
		verify  bool
		sni     string
		tls     *tls.Config
		want    Counters
		wantSNI string
	}{
		{desc: "verify on against a self-signed certificate fails",
			typ: TypeGRPCS, verify: true, want: Counters{TCPFailures: 1}},
		{desc: "verify off passes and sends the configured SNI",
			typ: TypeGRPCS, sni: "probe.example", want: Counters{Successes: 1}, wantSNI: "probe.example"},
		{desc: "verify on with the right root and SNI passes",
			typ: TypeGRPCS, verify: true, sni: "example.com", tls: &tls.Config{RootCAs: roots}, want: Counters{Successes: 1}, wantSNI: "example.com"},
		{desc: "verify on with the right root but a wrong SNI fails",
			typ: TypeGRPCS, verify: true, sni: "wrong.example", tls: &tls.Config{RootCAs: roots}, want: Counters{TCPFailures: 1}},
		{desc: "plaintext grpc against a TLS server fails",
			typ: TypeGRPC, want: Counters{TCPFailures: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			sni.Store("")
			clk := newFakeClock()
			var rec recorder
			opts := rec.options(clk)
			opts.TLSConfig = tc.tls
			cfg := grpcConfig(tc.typ)
			cfg.HTTPSVerifyCertificate, cfg.HTTPSSNI = tc.verify, tc.sni
			c := New(Config{Active: cfg}, opts)
			c.SetTargets([]string{srv.addr})
			c.Start(context.Background())
			defer c.Stop()
			clk.probeOnce(t)
			if st := state(t, c, srv.addr); st.Active != tc.want {
				t.Errorf("counters %+v, want %+v", st.Active, tc.want)
			}
			if tc.wantSNI != "" {
				if got := sni.Load().(string); got != tc.wantSNI {
					t.Errorf("server saw SNI %q, want %q", got, tc.wantSNI)
				}
			}
		})
	}
}

// TestGRPCStopClosesChannels checks that Stop closes the channels, and a
// new Start opens them again.
func TestGRPCStopClosesChannels(t *testing.T) {
	srv := startGRPC(t, "127.0.0.1:0", nil)
	clk := newFakeClock()
	var rec recorder
	c := New(Config{Active: grpcConfig(TypeGRPC)}, rec.options(clk))
	c.SetTargets([]string{srv.addr})
	c.Start(context.Background())
	clk.probeOnce(t)
	clk.probeOnce(t)
	if n := srv.ln.accepted.Load(); n != 1 {
		t.Fatalf("%d connections for two probes, want 1", n)
	}
	c.Stop()
	waitFor(t, "the connection to close after Stop", func() bool { return srv.ln.open.Load() == 0 })
	c.Start(context.Background())
	defer c.Stop()
	clk.probeOnce(t)
	if n := srv.ln.accepted.Load(); n != 2 {
		t.Errorf("%d connections after a restart, want 2", n)
	}
	if st := state(t, c, srv.addr); st.Active != (Counters{Successes: 3}) {
		t.Errorf("counters %+v, want three successes", st.Active)
	}
}
