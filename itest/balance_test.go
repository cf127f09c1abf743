package itest

// Balancing algorithms end to end: request hashing (header, cookie),
// sticky sessions across reloads, least-connections under a blocked
// target, and exact round-robin ratios across weight reloads.
//
// Helpers here are prefixed lb so they cannot collide with other files of
// the package.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// lbConfig is one upstream u with the given settings (YAML lines at the
// upstream's indentation, may be empty) and targets ("addr" or
// "addr weight"), and a catch-all route to it.
func lbConfig(settings string, targets ...string) string {
	var ts []string
	for _, t := range targets {
		addr, weight, ok := strings.Cut(t, " ")
		if ok {
			ts = append(ts, fmt.Sprintf("{target: %s, weight: %s}", addr, weight))
		} else {
			ts = append(ts, fmt.Sprintf("{target: %s}", addr))
		}
	}
	return fmt.Sprintf(`
upstreams:
  - name: u
%s    targets: [%s]
services:
  - {name: s, host: u, routes: [{name: r, paths: [/]}]}
`, settings, strings.Join(ts, ", "))
}

// lbResult is one proxied answer.
type lbResult struct {
	status  int
	backend string
	cookies []*http.Cookie // from Set-Cookie
}

// lbGet sends a GET with optional header name/value pairs (no cookie jar:
// the test decides which cookies go out).
func lbGet(t testing.TB, c *http.Client, url string, hdr ...string) lbResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	return lbResult{status: resp.StatusCode, backend: resp.Header.Get("X-Backend"), cookies: resp.Cookies()}
}

// lbCookie returns the cookie named name among cs, or nil.
func lbCookie(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// lbReload writes cfg and waits for the gateway to apply it.
func lbReload(t testing.TB, g *gateway, cfg string) {
	t.Helper()
	gen := g.generation()
	g.writeConfig(cfg)
	g.signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "reload", func() bool { return g.generation() > gen })
}

// TestBalanceConsistentHashHeader: with hash_on: header every request of a
// user (X-User) goes to one backend, and the users spread over all three.
func TestBalanceConsistentHashHeader(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	c := startBackend(t, "c", nil)
	g := startGateway(t, lbConfig("    algorithm: consistent-hashing\n    hash_on: header\n    hash_on_header: X-User\n",
		a.Addr, b.Addr, c.Addr))
	cl := newClient()
	const users, rounds = 50, 10
	owner := map[string]string{}
	// Rounds over all users, so one user's requests are interleaved with
	// everybody else's.
	for r := 0; r < rounds; r++ {
		for u := 0; u < users; u++ {
			user := fmt.Sprintf("user-%d", u)
			who := lbGet(t, cl, g.url("/x"), "X-User", user).backend
			if prev, ok := owner[user]; ok && prev != who {
				t.Fatalf("round %d: %s went to %s, earlier to %s", r, user, who, prev)
			}
			owner[user] = who
		}
	}
	spread := map[string]int{}
	for _, who := range owner {
		spread[who]++
	}
	// The ring is a fixed function of the addresses; with 50 users the
	// chance that one of three equal targets owns none of them is ~1e-8.
	if len(spread) != 3 {
		t.Fatalf("50 users spread over %v, want all three backends", spread)
	}
	t.Logf("users per backend: %v", spread)
}

// TestBalanceConsistentHashCookie: with hash_on: cookie the first answer
// sets the cookie (a session cookie, as Kong), and requests carrying it
// stay on the backend that answered the first one.
func TestBalanceConsistentHashCookie(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	c := startBackend(t, "c", nil)
	g := startGateway(t, lbConfig("    algorithm: consistent-hashing\n    hash_on: cookie\n    hash_on_cookie: lb-session\n",
		a.Addr, b.Addr, c.Addr))
	cl := newClient()
	spread := map[string]int{}
	for s := 0; s < 8; s++ {
		first := lbGet(t, cl, g.url("/x"))
		ck := lbCookie(first.cookies, "lb-session")
		if ck == nil || ck.Value == "" {
			t.Fatalf("session %d: the first answer sets no lb-session cookie: %v", s, first.cookies)
		}
		if ck.Path != "/" || ck.MaxAge != 0 || !ck.Expires.IsZero() {
			t.Fatalf("session %d: cookie %v, want Path=/ and no expiry (a session cookie)", s, ck)
		}
		for i := 0; i < 20; i++ {
			r := lbGet(t, cl, g.url(fmt.Sprintf("/x/%d", i)), "Cookie", "lb-session="+ck.Value)
			if r.backend != first.backend {
				t.Fatalf("session %d request %d went to %s, the first to %s", s, i, r.backend, first.backend)
			}
			if len(r.cookies) != 0 {
				t.Fatalf("session %d request %d carried the cookie but got Set-Cookie %v", s, i, r.cookies)
			}
		}
		spread[first.backend]++
	}
	t.Logf("sessions per backend: %v", spread)
}

// TestBalanceStickySessions: sticky-sessions sets its cookie on the first
// answer; with it a client stays on one backend, also after a reload that
// adds a target. When a reload removes that backend, its clients move and
// stay on their new backend, while the other clients do not move.
func TestBalanceStickySessions(t *testing.T) {
	bs := map[string]*backend{}
	for _, n := range []string{"a", "b", "c", "d"} {
		bs[n] = startBackend(t, n, nil)
	}
	const settings = "    algorithm: sticky-sessions\n    sticky_sessions_cookie: lb-sticky\n"
	cfg := func(names ...string) string {
		var addrs []string
		for _, n := range names {
			addrs = append(addrs, bs[n].Addr)
		}
		return lbConfig(settings, addrs...)
	}
	g := startGateway(t, cfg("a", "b", "c"))
	cl := newClient()

	// Six sessions; new sessions are placed round-robin.
	type session struct{ cookie, on string }
	var sessions []*session
	for s := 0; s < 6; s++ {
		first := lbGet(t, cl, g.url("/x"))
		ck := lbCookie(first.cookies, "lb-sticky")
		if ck == nil || ck.Value == "" {
			t.Fatalf("session %d: the first answer sets no lb-sticky cookie: %v", s, first.cookies)
		}
		if ck.MaxAge != 3600 {
			t.Fatalf("session %d: cookie %v, want Max-Age=3600 (the default sticky_sessions_cookie_ttl)", s, ck)
		}
		sessions = append(sessions, &session{cookie: ck.Value, on: first.backend})
	}
	// stay checks that every session stays where it is for 20 requests.
	stay := func(when string) {
		t.Helper()
		for i := 0; i < 20; i++ {
			for s, ss := range sessions {
				if who := lbGet(t, cl, g.url("/x"), "Cookie", "lb-sticky="+ss.cookie).backend; who != ss.on {
					t.Fatalf("%s: session %d went to %s, want %s", when, s, who, ss.on)
				}
			}
		}
	}
	stay("before any reload")

	lbReload(t, g, cfg("a", "b", "c", "d"))
	stay("after a reload that added d")

	gone := sessions[0].on
	var keep []string
	for _, n := range []string{"a", "b", "c", "d"} {
		if n != gone {
			keep = append(keep, n)
		}
	}
	lbReload(t, g, cfg(keep...))
	moved := 0
	for s, ss := range sessions {
		who := lbGet(t, cl, g.url("/x"), "Cookie", "lb-sticky="+ss.cookie).backend
		switch {
		case ss.on == gone && who == gone:
			t.Fatalf("session %d still goes to %s, which left the configuration", s, gone)
		case ss.on == gone:
			ss.on = who
			moved++
		case who != ss.on:
			t.Fatalf("session %d moved from %s to %s although only %s left", s, ss.on, who, gone)
		}
	}
	if moved == 0 {
		t.Fatal("no session moved")
	}
	stay(fmt.Sprintf("after %s was removed", gone))
}

// TestBalanceLeastConnections: one backend blocks every request until
// released, the other answers at once. Concurrent requests pile on the
// fast one.
//
// The bound: least-connections sends a request to the target with the
// fewest requests in flight (ties at random). The fast target's in-flight
// count drops before its answer reaches the client (the proxy closes the
// upstream body before it finishes the response), so when a worker picks,
// the fast target holds at most the requests of the other workers that are
// not stuck on the slow one: with s stuck there, at most C-1-s. The slow
// target can only win when s <= C-1-s, so it never holds more than
// floor((C-1)/2)+1 requests: 2 for C = 4 workers. Workers are started one
// after another so that no two first picks coincide (a pick and the
// in-flight increment that follows it are not one atomic step).
func TestBalanceLeastConnections(t *testing.T) {
	release := make(chan struct{})
	var released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	var slowIn atomic.Int64
	slow := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowIn.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Header().Set("X-Backend", "slow")
	}))
	var fastDone atomic.Int64
	fast := startBackend(t, "fast", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "fast")
		fmt.Fprint(w, "fast")
		fastDone.Add(1)
	}))
	g := startGateway(t, lbConfig("    algorithm: least-connections\n", slow.Addr, fast.Addr))

	const workers, total = 4, 200
	const bound = (workers-1)/2 + 1
	var tickets, failed atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(15 * time.Second)
	for w := 0; w < workers; w++ {
		// Start worker w once w requests have been picked.
		waitFor(t, 10*time.Second, "the previous worker's first pick", func() bool {
			return slowIn.Load()+fastDone.Load() >= int64(w)
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient()
			for tickets.Add(1) <= total && time.Now().Before(deadline) {
				select {
				case <-release:
					return // the blocked phase is over
				default:
				}
				resp, err := c.Get(g.url("/x"))
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	// Every request is either answered by fast or stuck on slow; stop
	// early once the bound is broken (the workers would all be stuck).
	waitFor(t, 15*time.Second, "all requests picked", func() bool {
		return slowIn.Load()+fastDone.Load()+failed.Load() >= total || slowIn.Load() > bound
	})
	stuck, done := slowIn.Load(), fastDone.Load()
	unblock()
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	if stuck > bound {
		t.Fatalf("the blocked target got %d of %d requests, want at most %d with %d workers", stuck, total, bound, workers)
	}
	if stuck == 0 {
		t.Fatal("the blocked target got no request: the test proved nothing")
	}
	t.Logf("blocked target: %d, fast target: %d", stuck, done)
}

// TestBalanceWeightReloadExactRatios: round robin keeps exact ratios when a
// reload changes the weights: any 400 sequential requests split exactly by
// the weights in force, interleaved.
func TestBalanceWeightReloadExactRatios(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	cfg := func(wa, wb int) string {
		return lbConfig("", fmt.Sprintf("%s %d", a.Addr, wa), fmt.Sprintf("%s %d", b.Addr, wb))
	}
	g := startGateway(t, cfg(100, 100))
	cl := newClient()
	for i, tc := range []struct {
		desc         string
		wa, wb       int
		wantA, wantB int
		maxRun       int // longest run on one target
	}{
		{desc: "1:1 at start", wa: 100, wb: 100, wantA: 200, wantB: 200, maxRun: 1},
		{desc: "3:1 after reload", wa: 300, wb: 100, wantA: 300, wantB: 100, maxRun: 3},
		{desc: "1:4 after reload", wa: 25, wb: 100, wantA: 80, wantB: 320, maxRun: 4},
		{desc: "1:1 again", wa: 7, wb: 7, wantA: 200, wantB: 200, maxRun: 1},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if i > 0 {
				lbReload(t, g, cfg(tc.wa, tc.wb))
			}
			counts := map[string]int{}
			run, longest, prev := 0, 0, ""
			for j := 0; j < 400; j++ {
				who := lbGet(t, cl, g.url("/x")).backend
				counts[who]++
				if who == prev {
					run++
				} else {
					run, prev = 1, who
				}
				longest = max(longest, run)
			}
			if counts["a"] != tc.wantA || counts["b"] != tc.wantB {
				t.Fatalf("400 sequential requests split %v, want exactly a=%d b=%d", counts, tc.wantA, tc.wantB)
			}
			if longest > tc.maxRun {
				t.Fatalf("longest run on one target %d, want <= %d", longest, tc.maxRun)
			}
		})
	}
}
