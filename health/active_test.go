package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestHTTPProbe drives an http checker against a real server whose /health
// switches between 200 and 500: the target goes unhealthy after
// HTTPFailures probes and back after Successes probes, probe intervals
// follow the state, and callbacks fire once per change, not per probe.
func TestHTTPProbe(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	var hits atomic.Int32
	var mu sync.Mutex
	var gotHost, gotHeader, gotPath, gotUA string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mu.Lock()
		gotHost, gotHeader, gotPath, gotUA = r.Host, r.Header.Get("X-Probe"), r.URL.RequestURI(), r.UserAgent()
		mu.Unlock()
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	clk := newFakeClock()
	var rec recorder
	c := New(Config{Active: ActiveConfig{
		Enabled: true, Type: TypeHTTP, HTTPPath: "/health?deep=1", Timeout: 10 * time.Second,
		Headers: map[string][]string{"X-Probe": {"yes"}}, Host: "svc.internal",
		HealthyInterval: 10 * time.Second, Successes: 2, HealthyStatuses: []int{200},
		UnhealthyInterval: time.Second, HTTPFailures: 3, UnhealthyStatuses: []int{500},
	}}, rec.options(clk))
	c.SetTargets([]string{addr})
	c.Start(context.Background())
	defer c.Stop()

	if ds := clk.waitPending(t, 1); ds[0] != 0 {
		t.Fatalf("first probe delay = %v, want the jitter (0)", ds[0])
	}
	steps := []struct {
		desc     string
		status   int32
		healthy  bool
		next     time.Duration
		counters Counters
	}{
		{"200 while healthy counts a success", 200, true, 10 * time.Second, Counters{Successes: 1}},
		{"first 500 clears successes", 500, true, 10 * time.Second, Counters{HTTPFailures: 1}},
		{"second 500", 500, true, 10 * time.Second, Counters{HTTPFailures: 2}},
		{"third 500 flips to unhealthy, probed every unhealthy interval", 500, false, time.Second, Counters{}},
		{"404 is in neither list: ignored", 404, false, time.Second, Counters{}},
		{"one 200 is not enough", 200, false, time.Second, Counters{Successes: 1}},
		{"second 200 heals, back to the healthy interval", 200, true, 10 * time.Second, Counters{}},
		{"200 while healthy again", 200, true, 10 * time.Second, Counters{Successes: 1}},
	}
	for _, s := range steps {
		status.Store(s.status)
		next := clk.probeOnce(t)
		st := state(t, c, addr)
		if st.Healthy != s.healthy || c.Healthy(addr) != s.healthy {
			t.Fatalf("%s: healthy = %v, want %v", s.desc, st.Healthy, s.healthy)
		}
		if next != s.next {
			t.Errorf("%s: next probe in %v, want %v", s.desc, next, s.next)
		}
		if st.Active != s.counters {
			t.Errorf("%s: counters %+v, want %+v", s.desc, st.Active, s.counters)
		}
	}
	if n := hits.Load(); n != int32(len(steps)) {
		t.Errorf("server saw %d probes, want %d", n, len(steps))
	}
	mu.Lock()
	if gotHost != "svc.internal" || gotHeader != "yes" || gotPath != "/health?deep=1" || gotUA != "outrigger-health" {
		t.Errorf("probe request: host %q header %q path %q ua %q", gotHost, gotHeader, gotPath, gotUA)
	}
	mu.Unlock()

	evs := rec.waitEvents(t, 2)
	if e := evs[0]; e.Addr != addr || e.Cause != CauseActive || !e.Old || e.New || e.Checks {
		t.Errorf("first event %+v, want active healthy→unhealthy", e)
	}
	if e := evs[1]; e.Cause != CauseActive || e.Old || !e.New || !e.Checks {
		t.Errorf("second event %+v, want active unhealthy→healthy", e)
	}
	waitFor(t, "two OnChange calls", func() bool { _, n := rec.snapshot(); return n == 2 })
	if st := state(t, c, addr); st.Cause != CauseActive {
		t.Errorf("cause = %v, want active", st.Cause)
	}
}

func TestHTTPProbeDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		followed.Store(true)
		w.WriteHeader(500)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	clk := newFakeClock()
	var rec recorder
	c := New(Config{Active: ActiveConfig{
		Enabled: true, HTTPPath: "/health", Timeout: 10 * time.Second,
		HealthyInterval: time.Second, HealthyStatuses: []int{302}, Successes: 1,
		UnhealthyInterval: time.Second, UnhealthyStatuses: []int{500}, HTTPFailures: 1,
	}}, rec.options(clk))
	c.SetTargets([]string{addr})
	c.Start(context.Background())
	defer c.Stop()
	clk.probeOnce(t)
	if st := state(t, c, addr); !st.Healthy || st.Active.Successes != 1 {
		t.Errorf("state %+v, want healthy with one success (302)", st)
	}
	if followed.Load() {
		t.Error("probe followed the redirect")
	}
}

// TestProbeFailures checks how probe errors are counted, one probe each,
// over real sockets (timeouts: TestProbeTimeouts).
func TestProbeFailures(t *testing.T) {
	tests := []struct {
		desc string
		typ  string
		addr func(t *testing.T) string
		dial func(ctx context.Context, network, addr string) (net.Conn, error)
		want Counters
	}{
		{desc: "http: closed port: tcp failure",
			typ: TypeHTTP, addr: closedAddr, want: Counters{TCPFailures: 1}},
		{desc: "tcp: listening port: success",
			typ: TypeTCP, addr: silentListener, want: Counters{Successes: 1}},
		{desc: "tcp: closed port: tcp failure",
			typ: TypeTCP, addr: closedAddr, want: Counters{TCPFailures: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			addr := tc.addr(t)
			clk := newFakeClock()
			var rec recorder
			opts := rec.options(clk)
			opts.DialContext = tc.dial
			c := New(Config{Active: ActiveConfig{
				Enabled: true, Type: tc.typ, Timeout: 200 * time.Millisecond,
				HealthyInterval: time.Second, UnhealthyInterval: time.Second,
				Successes: 5, HTTPFailures: 5, TCPFailures: 5, Timeouts: 5,
				HealthyStatuses: []int{200},
			}}, opts)
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

// TestFailureThresholds runs probes until the target flips on TCP failures
// (timeouts: TestTimeoutThreshold).
func TestFailureThresholds(t *testing.T) {
	tests := []struct {
		desc string
		addr func(t *testing.T) string
		cfg  func(*ActiveConfig)
	}{
		{desc: "tcp failures", addr: closedAddr, cfg: func(a *ActiveConfig) { a.TCPFailures = 2 }},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			addr := tc.addr(t)
			clk := newFakeClock()
			var rec recorder
			a := ActiveConfig{
				Enabled: true, Type: TypeHTTP, Timeout: 200 * time.Millisecond,
				HealthyInterval: 5 * time.Second, UnhealthyInterval: time.Second,
			}
			tc.cfg(&a)
			c := New(Config{Active: a}, rec.options(clk))
			c.SetTargets([]string{addr})
			c.Start(context.Background())
			defer c.Stop()
			if next := clk.probeOnce(t); next != 5*time.Second || !c.Healthy(addr) {
				t.Fatalf("after one probe: healthy %v, next %v", c.Healthy(addr), next)
			}
			if next := clk.probeOnce(t); next != time.Second || c.Healthy(addr) {
				t.Fatalf("after two probes: healthy %v, next %v", c.Healthy(addr), next)
			}
			rec.waitEvents(t, 1)
		})
	}
}

// TestProbeTimeouts runs in a bubble over an in-memory network: a probe
// whose peer reads the request and never answers (http), or whose connect
// never completes (tcp), counts as one timeout exactly Timeout after it
// began, and not a nanosecond earlier.
func TestProbeTimeouts(t *testing.T) {
	tests := []struct {
		desc string
		typ  string
		dial func(*pipeNet) func(ctx context.Context, network, addr string) (net.Conn, error)
	}{
		{desc: "http: the peer never answers", typ: TypeHTTP,
			dial: func(p *pipeNet) func(context.Context, string, string) (net.Conn, error) { return p.dial }},
		{desc: "tcp: connect hangs", typ: TypeTCP,
			dial: func(*pipeNet) func(context.Context, string, string) (net.Conn, error) { return hangingDial }},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const addr, timeout = "backend.test:80", 200 * time.Millisecond
				var rec recorder
				opts := rec.options(nil) // the bubble's clock
				opts.DialContext = tc.dial(&pipeNet{serve: silentPeer})
				c := New(Config{Active: ActiveConfig{
					Enabled: true, Type: tc.typ, Timeout: timeout,
					HealthyInterval: time.Second, UnhealthyInterval: time.Second,
					Successes: 5, HTTPFailures: 5, TCPFailures: 5, Timeouts: 5,
					HealthyStatuses: []int{200},
				}}, opts)
				c.SetTargets([]string{addr})
				c.Start(context.Background())
				defer c.Stop()
				time.Sleep(timeout - time.Nanosecond) // the first probe began at once (jitter 0)
				synctest.Wait()
				if st := state(t, c, addr); st.Active != (Counters{}) {
					t.Fatalf("counted before the timeout: %+v", st)
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				if st := state(t, c, addr); st.Active != (Counters{Timeouts: 1}) || !st.Healthy {
					t.Fatalf("state %+v, want healthy with one timeout", st)
				}
			})
		})
	}
}

// TestTimeoutThreshold runs in a bubble over an in-memory network whose
// peer never answers: the probes go out at the intervals of the verdict
// (the next planned when the previous one timed out), and the second
// timeout turns the target unhealthy at that instant, with one event.
func TestTimeoutThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const addr, timeout = "backend.test:80", 200 * time.Millisecond
		pn := &pipeNet{serve: silentPeer}
		var rec recorder
		opts := rec.options(nil)
		opts.DialContext = pn.dial
		c := New(Config{Active: ActiveConfig{
			Enabled: true, Type: TypeHTTP, Timeout: timeout, Timeouts: 2,
			HealthyInterval: 5 * time.Second, UnhealthyInterval: time.Second,
		}}, opts)
		t0 := time.Now()
		c.SetTargets([]string{addr})
		c.Start(context.Background())
		defer c.Stop()

		flip := t0.Add(timeout + 5*time.Second + timeout) // second timeout
		time.Sleep(time.Until(flip) - time.Nanosecond)
		synctest.Wait()
		if st := state(t, c, addr); !st.Healthy || st.Active != (Counters{Timeouts: 1}) {
			t.Fatalf("just before the second timeout: %+v, want healthy with one timeout", st)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if c.Healthy(addr) {
			t.Fatal("healthy after the second timeout")
		}
		if st := state(t, c, addr); !st.Since.Equal(flip) {
			t.Errorf("unhealthy since %v, want %v", st.Since, flip)
		}
		evs, changes := rec.snapshot()
		if len(evs) != 1 || changes != 1 || evs[0].Cause != CauseActive || evs[0].New {
			t.Fatalf("events %+v, %d changes; want one active healthy→unhealthy", evs, changes)
		}
		// The next probe goes out one unhealthy interval after the flip.
		time.Sleep(time.Second)
		synctest.Wait()
		want := []time.Duration{0, timeout + 5*time.Second, flip.Sub(t0) + time.Second}
		var got []time.Duration
		for _, d := range pn.dialTimes() {
			got = append(got, d.Sub(t0))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("probes at %v, want %v", got, want)
		}
	})
}

func TestHTTPSProbe(t *testing.T) {
	var sni atomic.Value
	sni.Store("")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(h.ServerName)
		return nil, nil
	}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	tests := []struct {
		desc    string
		verify  bool
		sni     string
		host    string
		tls     *tls.Config
		want    Counters
		wantSNI string
	}{
		{desc: "verify on against a self-signed certificate fails",
			verify: true, want: Counters{TCPFailures: 1}},
		{desc: "verify off passes and sends the configured SNI",
			verify: false, sni: "probe.example", want: Counters{Successes: 1}, wantSNI: "probe.example"},
		{desc: "verify off without SNI uses the Host header's name",
			verify: false, host: "api.example:8443", want: Counters{Successes: 1}, wantSNI: "api.example"},
		{desc: "verify on with the right root and SNI passes",
			verify: true, sni: "example.com", tls: &tls.Config{RootCAs: roots}, want: Counters{Successes: 1}, wantSNI: "example.com"},
		{desc: "verify on with the right root but a wrong SNI fails",
			verify: true, sni: "wrong.example", tls: &tls.Config{RootCAs: roots}, want: Counters{TCPFailures: 1}, wantSNI: "wrong.example"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			sni.Store("")
			clk := newFakeClock()
			var rec recorder
			opts := rec.options(clk)
			opts.TLSConfig = tc.tls
			c := New(Config{Active: ActiveConfig{
				Enabled: true, Type: TypeHTTPS, Timeout: 10 * time.Second,
				HTTPSVerifyCertificate: tc.verify, HTTPSSNI: tc.sni, Host: tc.host,
				HealthyInterval: time.Second, UnhealthyInterval: time.Second,
				HealthyStatuses: []int{200}, Successes: 3, TCPFailures: 3,
			}}, opts)
			c.SetTargets([]string{addr})
			c.Start(context.Background())
			defer c.Stop()
			clk.probeOnce(t)
			if st := state(t, c, addr); st.Active != tc.want {
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

func TestFirstProbeJitter(t *testing.T) {
	clk := newFakeClock()
	c := New(Config{Active: ActiveConfig{
		Enabled: true, Type: TypeTCP, HealthyInterval: 10 * time.Second, UnhealthyInterval: time.Second,
	}}, Options{Clock: clk, Rand: func() uint64 { return uint64(27 * time.Second) }})
	c.SetTargets([]string{closedAddr(t)})
	c.Start(context.Background())
	defer c.Stop()
	if ds := clk.waitPending(t, 1); ds[0] != 7*time.Second {
		t.Errorf("first probe after %v, want 7s (27s mod 10s)", ds[0])
	}
}

// TestProbeConcurrency blocks every probe in the server and checks that
// the checker never has more than Concurrency probes in flight, nor more
// than one per target, and plans no probe for a target while its probe is
// in flight.
func TestProbeConcurrency(t *testing.T) {
	const targets, limit = 5, 2
	release := make(chan struct{})
	var inFlight, maxInFlight, total atomic.Int32
	var perMax [targets]atomic.Int32
	var per [targets]atomic.Int32
	var addrs []string
	for i := range targets {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			total.Add(1)
			n := inFlight.Add(1)
			for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
			}
			p := per[i].Add(1)
			for m := perMax[i].Load(); p > m && !perMax[i].CompareAndSwap(m, p); m = perMax[i].Load() {
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			per[i].Add(-1)
			inFlight.Add(-1)
		}))
		defer srv.Close()
		addrs = append(addrs, srv.Listener.Addr().String())
	}
	clk := newFakeClock()
	var rec recorder
	c := New(Config{Active: ActiveConfig{
		Enabled: true, Type: TypeHTTP, Timeout: time.Minute, Concurrency: limit,
		HealthyInterval: time.Second, UnhealthyInterval: time.Second,
		HealthyStatuses: []int{200}, Successes: 1, Timeouts: 1,
	}}, rec.options(clk))
	c.SetTargets(addrs)
	c.Start(context.Background())
	defer c.Stop() // before the servers close: cancels blocked probes

	clk.waitPending(t, targets)
	clk.Advance(0) // every first probe is due (jitter 0)
	waitFor(t, "probes to reach the limit", func() bool { return inFlight.Load() == limit })
	// Probes in flight or queued have no timer: time passing plans nothing.
	for range 5 {
		clk.Advance(time.Second)
	}
	if p := clk.pending(); len(p) != 0 {
		t.Fatalf("timers armed while probes are in flight: %v", p)
	}
	// Let every first probe finish, one at a time.
	for i := range targets {
		select {
		case release <- struct{}{}:
		case <-time.After(deadline):
			t.Fatalf("probe %d never arrived", i)
		}
	}
	clk.waitPending(t, targets) // every target planned its next probe
	if got := total.Load(); got != targets {
		t.Errorf("server saw %d probes, want %d", got, targets)
	}
	if got := maxInFlight.Load(); got != limit {
		t.Errorf("max probes in flight = %d, want %d", got, limit)
	}
	for i := range targets {
		if got := perMax[i].Load(); got != 1 {
			t.Errorf("target %d: max probes in flight = %d, want 1", i, got)
		}
	}
	if evs, _ := rec.snapshot(); len(evs) != 0 {
		t.Errorf("events without state change: %+v", evs)
	}
}

// TestStopCancelsProbes checks that Stop returns while a probe is blocked
// in the server and that a cancelled probe is not counted.
func TestStopCancelsProbes(t *testing.T) {
	addr := silentListener(t)
	clk := newFakeClock()
	c := New(Config{Active: ActiveConfig{
		Enabled: true, Type: TypeHTTP, Timeout: time.Hour,
		HealthyInterval: time.Second, UnhealthyInterval: time.Second, Timeouts: 1,
	}}, Options{Clock: clk, Rand: func() uint64 { return 0 }})
	c.SetTargets([]string{addr})
	ctx, cancel := context.WithCancel(context.Background())
	c.Start(ctx)
	clk.waitPending(t, 1)
	clk.Advance(0)
	waitFor(t, "probe in flight", func() bool {
		tg := c.lookup(addr)
		tg.mu.Lock()
		defer tg.mu.Unlock()
		return tg.probing
	})
	cancel()
	c.Stop()
	if st := state(t, c, addr); st.Active != (Counters{}) || !st.Healthy {
		t.Errorf("cancelled probe was counted: %+v", st)
	}
	if p := clk.pending(); len(p) != 0 {
		t.Errorf("timers left after Stop: %v", p)
	}
	// Restart: probing resumes.
	c.Start(context.Background())
	defer c.Stop()
	clk.waitPending(t, 1)
}
