package gateway

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/internal/consultest"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 15 * time.Second

// serving builds a gateway from the YAML body and starts its watchers and
// checkers as Serve does (no listeners: Ready is what is tested).
func serving(t *testing.T, body string) *Gateway {
	t.Helper()
	cfg := parse(t, body)
	g, err := New(cfg, Options{Log: zerolog.Nop(), LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	g.startCheckers(context.Background())
	t.Cleanup(g.stopCheckers)
	return g
}

func parse(t *testing.T, body string) *config.File {
	t.Helper()
	cfg, err := config.Parse("ready.yaml", []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// closedAddr is a loopback address nothing listens on (an agent that is not
// running).
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// pollReady polls g.Ready every 20ms until ok(ready, message) holds, and
// returns the last answer; it fails the test at the deadline.
func pollReady(t *testing.T, g *Gateway, what string, ok func(bool, string) bool) (bool, string) {
	t.Helper()
	end := time.Now().Add(waitTimeout)
	for {
		ready, msg := g.Ready()
		if ok(ready, msg) {
			return ready, msg
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s; last: ready=%v %q", what, waitTimeout, ready, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func consulUpstream(name, addr, service, timeout string) string {
	return fmt.Sprintf(`
  - name: %s
    discovery:
      consul: {address: %s, service: %s}
      initial_fetch_timeout: %s
`, name, addr, service, timeout)
}

// TestReadyWaitsForFirstDiscoveryAnswer: started while its Consul agent is
// down, the gateway is not ready and says which upstream waits and why;
// once the agent answers it is; a later outage does not flip it back.
func TestReadyWaitsForFirstDiscoveryAnswer(t *testing.T) {
	a := consultest.Start(t)
	a.Stop()
	g := serving(t, "upstreams:"+consulUpstream("web", a.HTTPAddr, "web", "0s")+`
  - name: static
    targets: [{target: "127.0.0.1:9"}]
`)
	_, msg := pollReady(t, g, "not ready naming the refused connection", func(ready bool, msg string) bool {
		return !ready && strings.Contains(msg, "connection refused")
	})
	if want := "upstream web: no answer from consul yet: consul:web: "; !strings.Contains(msg, want) {
		t.Errorf("message %q does not contain %q", msg, want)
	}
	if strings.Contains(msg, "static") {
		t.Errorf("message %q names an upstream without discovery", msg)
	}

	a.Restart()
	if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 9}); err != nil {
		t.Fatal(err)
	}
	// The watcher may read the restarted agent before the registration
	// (an empty answer, which makes the gateway ready too): wait for the
	// registered instance as well.
	pollReady(t, g, "ready with the registered instance once the agent answered", func(ready bool, _ string) bool {
		return ready && len(g.Upstream("web").Snapshot().Targets) == 1
	})

	// The agent goes away again: the watcher reports the failure, readiness
	// stays (the last good targets still serve).
	a.Stop()
	g.mu.Lock()
	w := g.watchers[0]
	g.mu.Unlock()
	pollReady(t, g, "the watcher saw the new outage", func(bool, string) bool {
		_, _, err := w.first.state()
		return err != nil
	})
	if ready, msg := g.Ready(); !ready {
		t.Errorf("a registry outage after the first answer made the gateway unready: %q", msg)
	}
	if n := len(g.Upstream("web").Snapshot().Targets); n != 1 {
		t.Errorf("upstream web has %d targets during the outage, want the last good 1", n)
	}
}

// TestReadyInitialFetchTimeout: without any answer, readiness comes once
// initial_fetch_timeout has passed, not a nanosecond earlier; then a reload
// adding an upstream whose registry is down does not take it away. It runs
// in a bubble: the timeout is the bubble's clock, and the watchers' queries
// and probes of the closed port are refused at once.
func TestReadyInitialFetchTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 2 * time.Second
		dead := closedAddr(t)
		start := time.Now()
		g := serving(t, "upstreams:"+consulUpstream("web", dead, "web", timeout.String()))
		if ready, msg := g.Ready(); ready || !strings.Contains(msg, "upstream web: no answer from consul yet (waited 0s of initial_fetch_timeout 2s)") {
			t.Fatalf("right after the start: ready=%v %q, want not ready naming upstream web and the timeout", ready, msg)
		}
		time.Sleep(time.Until(start.Add(timeout)) - time.Nanosecond)
		synctest.Wait()
		if ready, msg := g.Ready(); ready || !strings.Contains(msg, "upstream web: no answer from consul yet (waited 2s of initial_fetch_timeout 2s)") {
			t.Fatalf("just before initial_fetch_timeout: ready=%v %q, want not ready", ready, msg)
		}
		time.Sleep(time.Nanosecond)
		if ready, msg := g.Ready(); !ready || msg != "ready" {
			t.Fatalf("at initial_fetch_timeout: ready=%v %q, want ready", ready, msg)
		}

		if err := g.Apply(parse(t, "upstreams:"+consulUpstream("web", dead, "web", timeout.String())+
			consulUpstream("more", dead, "more", "0s"))); err != nil {
			t.Fatal(err)
		}
		if ready, msg := g.Ready(); !ready {
			t.Errorf("an upstream added by a reload made the ready gateway unready: %q", msg)
		}
	})
}
