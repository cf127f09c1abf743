package itest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/outrigger-gw/outrigger/internal/consultest"
)

// ghBackend serves plain HTTP/1.1 (the proxied traffic) and, on the same
// port, gRPC over HTTP/2 with prior knowledge: grpc-go's health service.
type ghBackend struct {
	Name, Addr string
	health     *grpchealth.Server
	served     atomic.Int64 // HTTP requests
	checks     atomic.Int64 // gRPC health calls
}

func startGRPCHealthBackend(t testing.TB, name string) *ghBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &ghBackend{Name: name, Addr: ln.Addr().String(), health: grpchealth.NewServer()}
	gs := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		b.checks.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(gs, b.health)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		b.served.Add(1)
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.RequestURI())
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); gs.Stop() })
	return b
}

// TestHealthGRPCActiveChecks: an upstream whose active checks call
// grpc.health.v1.Health/Check for a named service ejects a target whose
// service reports NOT_SERVING after http_failures probes (logged, shown
// unhealthy by the admin API, no proxied traffic), and takes it back once
// it reports SERVING again.
func TestHealthGRPCActiveChecks(t *testing.T) {
	a := startGRPCHealthBackend(t, "a")
	b := startGRPCHealthBackend(t, "b")
	for _, x := range []*ghBackend{a, b} {
		x.health.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_SERVING)
	}
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    targets: [{target: %s}, {target: %s}]
    healthchecks:
      active:
        type: grpc
        grpc_service: pkg.Echo
        timeout: 1
        healthy: {interval: 0.1, successes: 2}
        unhealthy: {interval: 0.1, http_failures: 3, tcp_failures: 3, timeouts: 3}
services:
  - {name: s, host: u, retries: 2, connect_timeout: 1000, routes: [{name: r, paths: [/]}]}
`, a.Addr, b.Addr))
	c := newClient()
	api := adAdmin(g)
	health := func() map[string]string {
		out := map[string]string{}
		for _, h := range api.all(t, "/upstreams/u/health") {
			out[h["target"].(string)] = fmt.Sprint(h["health"])
		}
		return out
	}

	waitFor(t, 10*time.Second, "probes of both targets", func() bool { return a.checks.Load() >= 3 && b.checks.Load() >= 3 })
	if got := hcSend(t, c, g, 20); got["a"] == 0 || got["b"] == 0 {
		t.Fatalf("20 requests went %v, want both targets", got)
	}
	if evs := hcEvents(g, a.Addr); len(evs) != 0 {
		t.Fatalf("health changed while SERVING: %v", evs)
	}

	a.health.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_NOT_SERVING)
	evs := hcWaitEvents(t, g, a.Addr, 1)
	hcCheckEvent(t, evs[0], "active", false)
	hcWaitMetric(t, g, hcTargetHealthy(a.Addr), 0)
	if h := health(); h[a.Addr] != "UNHEALTHY" || h[b.Addr] != "HEALTHY" {
		t.Fatalf("admin health %v, want a UNHEALTHY and b HEALTHY", h)
	}
	served := a.served.Load()
	if got := hcSend(t, c, g, 40); got["b"] != 40 {
		t.Fatalf("40 requests after the ejection went %v, want all to b", got)
	}
	if n := a.served.Load() - served; n != 0 {
		t.Fatalf("the ejected target received %d proxied requests", n)
	}

	a.health.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_SERVING)
	evs = hcWaitEvents(t, g, a.Addr, 2)
	hcCheckEvent(t, evs[1], "active", true)
	hcWaitMetric(t, g, hcTargetHealthy(a.Addr), 1)
	if h := health(); h[a.Addr] != "HEALTHY" {
		t.Fatalf("admin health %v after SERVING again, want a HEALTHY", h)
	}
	if got := hcSend(t, c, g, 20); got["a"] == 0 {
		t.Fatalf("20 requests after the recovery went %v, want some to a", got)
	}
}

// TestConsulRegistrationGRPCCheck: gateway A registers its local service
// in a real Consul agent with a gRPC check of the service's health
// (register.consul.check.grpc); gateway B discovers the service and
// proxies to it while the agent's check passes, and drops it when the
// local service reports NOT_SERVING, until it serves again.
func TestConsulRegistrationGRPCCheck(t *testing.T) {
	ag := consultest.Start(t)
	local := startGRPCHealthBackend(t, "checkout")
	local.health.SetServingStatus("pkg.Checkout", healthpb.HealthCheckResponse_SERVING)
	port := csPort(t, local.Addr)
	startGateway(t, fmt.Sprintf(`
register:
  consul:
    address: %s
    service: {name: checkout, id: checkout-1, address: 127.0.0.1, port: %d}
    check: {grpc: "%s/pkg.Checkout", interval: 1s, timeout: 1s}
`, ag.HTTPAddr, port, local.Addr))
	gb := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    discovery:
      consul: {address: %s, service: checkout}
      empty_grace: 1s
services:
  - {name: s, host: u, retries: 2, connect_timeout: 1000, routes: [{name: r, paths: [/]}]}
`, ag.HTTPAddr))
	c := newClient()
	checkStatus := func() string {
		ch := csCheck(t, ag, "checkout", "service:checkout-1")
		if ch == nil {
			return "absent"
		}
		return ch.Type + "/" + ch.Status
	}
	waitCheck := func(want string) {
		t.Helper()
		waitFor(t, 15*time.Second, "consul check service:checkout-1 "+want, func() bool { return checkStatus() == want })
	}

	waitCheck("grpc/" + api.HealthPassing)
	csWaitBackends(t, c, gb, 15*time.Second, "checkout")
	local.health.SetServingStatus("pkg.Checkout", healthpb.HealthCheckResponse_NOT_SERVING)
	waitCheck("grpc/" + api.HealthCritical)
	waitFor(t, 15*time.Second, "B to answer without the critical instance", func() bool {
		who, _, err := csTry(c, gb.url("/x"))
		return err == nil && strings.HasPrefix(who, "status 5")
	})
	local.health.SetServingStatus("pkg.Checkout", healthpb.HealthCheckResponse_SERVING)
	waitCheck("grpc/" + api.HealthPassing)
	csWaitBackends(t, c, gb, 15*time.Second, "checkout")
}
