package nacos

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestRegistrarGRPCCheck gates the instance's health on a gRPC health
// check of the local service (a real grpc-go health server): it is
// registered healthy while the service is SERVING, turns unhealthy (and
// leaves the watching Source's set) when it reports NOT_SERVING or stops
// answering for the named service, and comes back when it serves again.
func TestRegistrarGRPCCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := grpchealth.NewServer()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	defer func() { gs.Stop(); <-done }()
	hs.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_NOT_SERVING)

	e := server(t)
	pool := newPool(t)
	svc := uniqueService(t, "grpccheck")
	src, err := NewSource(pool, e.sourceConfig(svc))
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, src)
	w.set()

	var ev events
	cfg := e.registration(svc, 9801)
	cfg.Check = CheckSpec{GRPC: ln.Addr().String() + "/pkg.Echo", Interval: 20 * time.Millisecond, Timeout: time.Second}
	r, err := NewRegistrar(pool, cfg, WithOnEvent(ev.record))
	if err != nil {
		t.Fatal(err)
	}
	stop := runRegistrar(t, r)
	// Registered unhealthy: the first probe ran before the registration.
	poll(t, "the registration", func() bool { return ev.has(EventRegister) })
	if r.Healthy() {
		t.Fatal("Healthy with the service NOT_SERVING")
	}
	if e.fake != nil {
		ins := e.fake.Instances("", "", svc)
		if len(ins) != 1 || ins[0].Healthy {
			t.Fatalf("server holds %+v, want one unhealthy instance", ins)
		}
	}
	hs.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_SERVING)
	w.set(addr(9801))
	if !r.Healthy() || !ev.has(EventProbe) {
		t.Errorf("Healthy=%v events %s after SERVING", r.Healthy(), &ev)
	}
	hs.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_NOT_SERVING)
	w.set()
	hs.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_SERVING)
	w.set(addr(9801))
	// A service the server no longer knows fails the check too.
	hs.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_SERVICE_UNKNOWN)
	w.set()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
