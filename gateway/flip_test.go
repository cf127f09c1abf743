package gateway

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

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/state"
)

// flip is one side of a blue-green switch made by one admin change that
// touches two upstreams, a canary split and a route at once: an even gen
// gives blue's target weight 1, green's 0, the canary (green) of service s
// 0 % and route rr to service sb (blue); an odd gen the opposite (route rr
// to sg, green). Either sends every request, on / (s) and on /r (rr), to a
// target of weight 1; a request that mixes the split or the route of one
// gen with the snapshot of the other finds its upstream with no eligible
// target.
func flip(blue, green string, gen int) func(*state.Doc) error {
	return func(d *state.Doc) error {
		wb, wg, pct, svc := 1, 0, 0.0, "sb"
		if gen%2 == 1 {
			wb, wg, pct, svc = 0, 1, 100, "sg"
		}
		d.Routes = map[string]*state.Route{"rr": {Name: "rr", Paths: []string{"/r"}, Service: svc}}
		d.Overrides = []state.Override{
			{ID: "blue", Upstream: "blue", Target: blue, Weight: &wb, CreatedAt: 1},
			{ID: "green", Upstream: "green", Target: green, Weight: &wg, CreatedAt: 2},
		}
		d.Canaries = map[string]*state.Canary{"s": {Upstream: "green", Percent: pct}}
		return nil
	}
}

// TestCommitNeverMixesUpstreamsAndCanary: readers send requests through
// the engine and the net/http server, to the canary's service and to the
// flipped route, while 201 admin changes flip traffic between two
// upstreams (their weights, the canary percent and a route's service in
// each change; the router is rebuilt every time). Every commit pauses
// after each upstream's swap and before the table swap until a request of
// each reader has run in that state, so every intermediate state is
// served; no request may fail, which it does when it resolves the percent
// or the route of one generation with an upstream snapshot of another. An upstream keeps one generation back, so the
// guarantee covers a request during whose life the table is replaced
// once: before each table swap the commit also waits until the requests
// that started before the previous one have ended (on two busy cores a
// request can otherwise stall across several commits).
func TestCommitNeverMixesUpstreamsAndCanary(t *testing.T) {
	backend := func(name string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	blue, green := backend("blue"), backend("green")
	g, err := New(parse(t, fmt.Sprintf(`upstreams:
  - {name: blue, targets: [{target: %s}]}
  - {name: green, targets: [{target: %s}]}
services:
  - {name: s, host: blue, routes: [{name: r, paths: [/]}]}
  - {name: sb, host: blue}
  - {name: sg, host: green}
`, blue, green)), Options{Log: zerolog.Nop(), LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	defer g.stopCheckers()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	engine := g.proxy.NewServer(proxy.ServerOptions{})
	go func() { _ = engine.Serve(ln) }()
	t.Cleanup(func() { _ = engine.Close() })
	servers := [2]string{"http://" + ln.Addr().String(), serveHandler(t, g.ProxyHandler())}
	paths := [2]string{"/", "/r"}

	var (
		stage   atomic.Int64    // bumped by every commit step
		reached [4]atomic.Int64 // per reader: the latest stage a request started in and ended
		failed  atomic.Int64
		first   atomic.Pointer[string]
		served  [2]atomic.Int64 // requests blue and green answered
		// inflight: per reader, 1 + the stage its request started in, 0
		// between requests.
		inflight [4]atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 { // one reader per server and path
		srv, path := i%2, paths[i/2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				at := stage.Load()
				inflight[i].Store(at + 1)
				resp, err := client.Get(servers[srv] + path)
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				switch {
				case err != nil || resp.StatusCode != http.StatusOK:
					if failed.Add(1) == 1 {
						end := stage.Load()
						msg := fmt.Sprintf("server %d, %s, stages %d-%d: %v", srv, path, at, end, err)
						if err == nil {
							msg = fmt.Sprintf("server %d, %s, stages %d-%d: %d %s", srv, path, at, end, resp.StatusCode, body)
						}
						first.Store(&msg)
					}
				case string(body) == "blue":
					served[0].Add(1)
				case string(body) == "green":
					served[1].Add(1)
				}
				inflight[i].Store(0)
				reached[i].Store(at)
			}
		}()
	}
	var stalled atomic.Bool
	lastTable := int64(-1) // the stage of the previous table swap
	// wait polls until done holds, for 10 s at most.
	wait := func(done func() bool) {
		for deadline := time.Now().Add(10 * time.Second); !done(); time.Sleep(20 * time.Microsecond) {
			if time.Now().After(deadline) {
				stalled.Store(true)
				return
			}
		}
	}
	g.commitStep = func(table bool) {
		at := stage.Add(1)
		wait(func() bool {
			for i := range reached {
				if reached[i].Load() < at {
					return false
				}
			}
			return true
		})
		if !table {
			return
		}
		wait(func() bool {
			for i := range inflight {
				if n := inflight[i].Load(); n != 0 && n-1 <= lastTable {
					return false
				}
			}
			return true
		})
		lastTable = at
	}
	ctx := context.Background()
	const changes = 201
	for i := range changes {
		if err := g.Mutate(ctx, flip(blue, green, i)); err != nil {
			t.Fatal(err)
		}
	}
	g.commitStep = nil
	close(stop)
	wg.Wait()
	if stalled.Load() {
		t.Error("a commit step waited 10 s for a request")
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d requests failed during the flips (first: %s): they mixed two generations", n, *first.Load())
	}
	if served[0].Load() == 0 || served[1].Load() == 0 {
		t.Errorf("blue answered %d requests and green %d: the flips did not switch traffic", served[0].Load(), served[1].Load())
	}
	if min := int64(3 * changes); stage.Load() < min {
		t.Errorf("%d commit steps in %d changes, want at least %d", stage.Load(), changes, min)
	}
}
