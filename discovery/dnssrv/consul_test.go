package dnssrv

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/internal/consultest"
)

// TestConsulDNS resolves _web._tcp.service.consul from a real agent's DNS
// interface, with the real clock.
func TestConsulDNS(t *testing.T) {
	a := consultest.Start(t)
	for _, r := range []struct {
		id   string
		port int
	}{{"web-1", 9001}, {"web-2", 9002}} {
		if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: r.id, Name: "web", Address: "127.0.0.1", Port: r.port,
			Weights: &api.AgentWeights{Passing: 3, Warning: 1},
		}); err != nil {
			t.Fatal(err)
		}
	}
	src, err := NewSource(Config{Name: "_web._tcp.service.consul", Resolver: a.DNSAddr, MinTTL: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan discovery.Update, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Run(ctx, func(u discovery.Update) { updates <- u })
	}()
	defer func() {
		cancel()
		<-done
	}()

	want := []discovery.Target{
		{Addr: "127.0.0.1:9001", Weight: 3, Priority: 1},
		{Addr: "127.0.0.1:9002", Weight: 3, Priority: 1},
	}
	deadline := time.After(15 * time.Second)
	var last discovery.Update
	for {
		select {
		case u := <-updates:
			last = u
			// Registration reaches the catalog asynchronously: wait for
			// the full set.
			if u.Err == nil && reflect.DeepEqual(u.Targets, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no update with %+v; last %+v", want, last)
		}
	}
}
