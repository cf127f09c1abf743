package consul

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/outrigger-gw/outrigger/internal/consultest"
)

// TestRegistrarGRPCCheck registers the local service with a gRPC check in
// a real agent: the agent's check of a real grpc-go health server turns
// passing and critical as the named service's status flips, and critical
// when the server stops.
func TestRegistrarGRPCCheck(t *testing.T) {
	a := consultest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := grpchealth.NewServer()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	stopped := false
	stopServer := func() {
		if !stopped {
			stopped = true
			gs.Stop()
			<-done
		}
	}
	defer stopServer()
	hs.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_SERVING)

	r, err := NewRegistrar(RegistrationConfig{
		Address: a.HTTPAddr,
		Service: ServiceSpec{Name: "grpcsvc", ID: "grpcsvc-1", Address: "127.0.0.1", Port: 7101},
		Check:   CheckSpec{GRPC: ln.Addr().String() + "/pkg.Echo", Interval: time.Second, Timeout: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	runRegistrar(t, r)
	const id = "service:grpcsvc-1"
	poll(t, "gRPC check passing", func() bool { return checkStatus(t, a, id) == api.HealthPassing })
	checks, err := a.Client.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	if c := checks[id]; c == nil || c.Type != "grpc" {
		t.Fatalf("check %+v, want a grpc check", c)
	}

	for i := range 2 {
		hs.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_NOT_SERVING)
		start := time.Now()
		poll(t, "gRPC check critical", func() bool { return checkStatus(t, a, id) == api.HealthCritical })
		t.Logf("round %d: NOT_SERVING -> critical after %s (interval 1s)", i, time.Since(start))
		hs.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_SERVING)
		start = time.Now()
		poll(t, "gRPC check passing again", func() bool { return checkStatus(t, a, id) == api.HealthPassing })
		t.Logf("round %d: SERVING -> passing after %s", i, time.Since(start))
	}

	// Only passing instances are discovered.
	entries, _, err := a.Client.Health().Service("grpcsvc", "", true, nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("passing instances: %d, %v", len(entries), err)
	}
	stopServer()
	poll(t, "gRPC check critical after the server stopped", func() bool { return checkStatus(t, a, id) == api.HealthCritical })
	entries, _, err = a.Client.Health().Service("grpcsvc", "", true, nil)
	if err != nil || len(entries) != 0 {
		t.Fatalf("passing instances with the server stopped: %d, %v", len(entries), err)
	}
}
