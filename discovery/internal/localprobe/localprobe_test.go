package localprobe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func probe(p *Prober) error {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	return p.Probe(ctx)
}

// TestGRPC probes a real gRPC health server as its status flips, stops
// and comes back on the same address.
func TestGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	hs := grpchealth.NewServer()
	serve := func(ln net.Listener) (stop func()) {
		s := grpc.NewServer()
		healthpb.RegisterHealthServer(s, hs)
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Serve(ln) }()
		return func() { s.Stop(); <-done }
	}
	stop := serve(ln)
	defer func() { stop() }()
	hs.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_SERVING)

	whole, err := New(Spec{GRPC: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	named, err := New(Spec{GRPC: addr + "/pkg.Echo"})
	if err != nil {
		t.Fatal(err)
	}
	defer named.Close()
	unknown, _ := New(Spec{GRPC: addr + "/pkg.Other"})
	defer unknown.Close()

	if err := probe(whole); err != nil {
		t.Errorf("whole server: %v", err)
	}
	if err := probe(named); err != nil {
		t.Errorf("pkg.Echo: %v", err)
	}
	if err := probe(unknown); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("unknown service: %v, want NotFound", err)
	}
	hs.SetServingStatus("pkg.Echo", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := probe(named); err == nil || !strings.Contains(err.Error(), "NOT_SERVING") {
		t.Errorf("NOT_SERVING: %v", err)
	}
	stop()
	stop = func() {}
	if err := probe(whole); err == nil {
		t.Error("stopped server passed")
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	stop = serve(ln)
	if err := probe(whole); err != nil {
		t.Errorf("restarted server: %v", err)
	}
}

func TestURL(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) }))
	defer srv.Close()
	p, err := New(Spec{URL: srv.URL + "/health"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := probe(p); err != nil {
		t.Errorf("200: %v", err)
	}
	status.Store(503)
	if err := probe(p); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: %v", err)
	}
	if _, err := New(Spec{}); err == nil {
		t.Error("empty spec accepted")
	}
	if _, err := New(Spec{GRPC: "no-port"}); err == nil {
		t.Error("grpc target without a port accepted")
	}
}
