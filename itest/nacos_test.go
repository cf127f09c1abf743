package itest

import (
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/internal/nacostest"
)

// TestNacosRegisterAndDiscover runs the sidecar pattern against the
// wire-level Nacos server: two sidecars register their local backends as
// ephemeral instances, a third discovers them by subscription and balances
// over both; when one registering sidecar stops (SIGTERM), its instance is
// deregistered and its traffic stops; a weight set in Nacos steers the
// split.
func TestNacosRegisterAndDiscover(t *testing.T) {
	srv := nacostest.Start(t)
	servers := fmt.Sprintf("servers: [%s], grpc_port: %d", srv.HTTPAddr(), srv.GRPCPort())
	register := func(b *backend, weight string) *gateway {
		return startGateway(t, fmt.Sprintf(`
register:
  nacos: {%s, service: web, ip: 127.0.0.1, port: %d, weight: %s, metadata: {version: v1}}
`, servers, portOf(t, b.Addr), weight))
	}
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	ga := register(a, "1")
	register(b, "1")
	client := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: web
    discovery:
      nacos: {%s, service: web, metadata: {version: v1}}
      empty_grace: 2s
services:
  - {name: s, host: web, retries: 2, connect_timeout: 1000, routes: [{name: r, paths: [/]}]}
`, servers))
	c := newClient()
	waitFor(t, 15*time.Second, "both registered instances to get traffic", func() bool {
		seen := map[string]bool{}
		for i := 0; i < 4; i++ {
			if s, who, _ := get(t, c, client.url("/x")); s == 200 {
				seen[who] = true
			}
		}
		return seen["a"] && seen["b"]
	})
	counts := map[string]int{}
	for i := 0; i < 100; i++ {
		_, who, _ := get(t, c, client.url("/x"))
		counts[who]++
	}
	if counts["a"] != 50 || counts["b"] != 50 {
		t.Fatalf("equal Nacos weights split %v, want exactly 50/50", counts)
	}

	// A weight changed in Nacos (float, scaled ×100) steers the split.
	key := nacostest.ServiceKey{Group: "DEFAULT_GROUP", Service: "web"}
	if err := srv.SetWeight(key, b.Addr, 3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the new weight", func() bool {
		n := map[string]int{}
		for i := 0; i < 40; i++ {
			_, who, _ := get(t, c, client.url("/x"))
			n[who]++
		}
		return n["b"] == 30 && n["a"] == 10
	})

	// The registering sidecar of a stops: its instance leaves Nacos and
	// its traffic stops, with no failed request on the way.
	ga.signal(syscall.SIGTERM)
	if code := ga.wait(15 * time.Second); code != 0 {
		t.Fatalf("registering sidecar exit code %d", code)
	}
	waitFor(t, 10*time.Second, "a's deregistration", func() bool {
		for _, in := range srv.Instances("", "DEFAULT_GROUP", "web") {
			if in.Port == portOf(t, a.Addr) {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "a's traffic to stop", func() bool {
		for i := 0; i < 10; i++ {
			if s, who, _ := get(t, c, client.url("/x")); s != 200 || who != "b" {
				return false
			}
		}
		return true
	})
}

func portOf(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
