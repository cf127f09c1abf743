package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-gw/outrigger/discovery"
)

func TestNextIndex(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		prev, got uint64
		want      uint64
	}{
		{desc: "first query takes the answer's index", prev: 0, got: 42, want: 42},
		{desc: "progress", prev: 42, got: 50, want: 50},
		{desc: "unchanged (wait timed out)", prev: 42, got: 42, want: 42},
		{desc: "backwards resets to 0", prev: 42, got: 7, want: 0},
		{desc: "backwards to 0 resets to 0", prev: 42, got: 0, want: 0},
		{desc: "0 after a non-blocking query becomes 1, never 0 twice", prev: 0, got: 0, want: 1},
		{desc: "0 answer to index 1 resets, then the 0 rule applies", prev: 1, got: 0, want: 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := NextIndex(tc.prev, tc.got); got != tc.want {
				t.Errorf("NextIndex(%d, %d) = %d, want %d", tc.prev, tc.got, got, tc.want)
			}
		})
	}
}

func identity(d time.Duration) time.Duration { return d }

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		attempt int
		want    time.Duration
	}{
		{desc: "no failure, no wait", attempt: 0, want: 0},
		{desc: "first retry", attempt: 1, want: 100 * time.Millisecond},
		{desc: "doubles", attempt: 2, want: 200 * time.Millisecond},
		{desc: "doubles again", attempt: 4, want: 800 * time.Millisecond},
		{desc: "capped", attempt: 10, want: 30 * time.Second},
		{desc: "no overflow on huge attempts", attempt: 1 << 20, want: 30 * time.Second},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := discovery.Backoff(tc.attempt, 100*time.Millisecond, 30*time.Second, identity); got != tc.want {
				t.Errorf("discovery.Backoff(%d) = %s, want %s", tc.attempt, got, tc.want)
			}
		})
	}
	t.Run("full jitter stays within [0, d]", func(t *testing.T) {
		for range 1000 {
			if d := discovery.FullJitter(time.Second); d < 0 || d > time.Second {
				t.Fatalf("discovery.FullJitter(1s) = %s", d)
			}
		}
	})
}

func TestLimiter(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, tc := range []struct {
		desc  string
		at    []time.Time
		waits []time.Duration
	}{
		{
			desc:  "burst passes, then one per interval",
			at:    []time.Time{ms(0), ms(0), ms(0), ms(0)},
			waits: []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		},
		{
			desc:  "tokens come back with time",
			at:    []time.Time{ms(0), ms(0), ms(100), ms(300)},
			waits: []time.Duration{0, 0, 0, 0},
		},
		{
			desc:  "partial refill shortens the wait",
			at:    []time.Time{ms(0), ms(0), ms(60)},
			waits: []time.Duration{0, 0, 40 * time.Millisecond},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			l := limiter{every: 100 * time.Millisecond, burst: 2}
			var got []time.Duration
			for _, at := range tc.at {
				got = append(got, l.reserve(at).Round(time.Millisecond))
			}
			if !reflect.DeepEqual(got, tc.waits) {
				t.Errorf("waits = %v, want %v", got, tc.waits)
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		l := limiter{}
		for range 100 {
			if d := l.reserve(t0); d != 0 {
				t.Fatalf("disabled limiter waits %s", d)
			}
		}
	})
}

// ---- Run against a scripted fake Consul ----

type step struct {
	entries []*api.ServiceEntry
	index   uint64
	err     error
	took    time.Duration // how long the query blocked
}

type fakeRun struct {
	mu      sync.Mutex
	now     time.Time
	indexes []uint64        // wait index of each query
	sleeps  []time.Duration // each sleep of Run (0: cut short by the probe)
	updates []discovery.Update
	agentUp bool   // the agent's probe succeeds (else it never does)
	awaits  []bool // waits on the agent's probe: whether the agent was down
}

// runScript runs a Source through the steps and returns what it did; the
// agent's reachability probe never succeeds.
func runScript(t *testing.T, cfg SourceConfig, steps []step, opts ...Option) *fakeRun {
	t.Helper()
	return runScriptProbed(t, cfg, steps, false, opts...)
}

// runScriptProbed is runScript with the agent's reachability probe
// succeeding at once (agentUp) or never.
func runScriptProbed(t *testing.T, cfg SourceConfig, steps []step, agentUp bool, opts ...Option) *fakeRun {
	t.Helper()
	cfg.Address = "127.0.0.1:1" // never contacted
	if cfg.Service == "" {
		cfg.Service = "web"
	}
	s, err := NewSource(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRun{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), agentUp: agentUp}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.now = func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.now
	}
	s.sleep = func(_ context.Context, d time.Duration, wake <-chan struct{}) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		select {
		case <-wake:
			// The agent's probe answered: the backoff ends at once.
			f.sleeps = append(f.sleeps, 0)
			return true
		default:
		}
		f.sleeps = append(f.sleeps, d)
		f.now = f.now.Add(d)
		return true
	}
	s.awaitAgent = func(down bool) (<-chan struct{}, func()) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.awaits = append(f.awaits, down)
		if !f.agentUp {
			return nil, func() {}
		}
		up := make(chan struct{})
		close(up)
		return up, func() {}
	}
	s.jitter = identity
	s.query = func(ctx context.Context, waitIndex uint64) ([]*api.ServiceEntry, uint64, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.indexes) == len(steps) {
			cancel()
			return nil, 0, ctx.Err()
		}
		st := steps[len(f.indexes)]
		f.indexes = append(f.indexes, waitIndex)
		f.now = f.now.Add(st.took)
		return st.entries, st.index, st.err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, func(u discovery.Update) { f.updates = append(f.updates, u) })
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end after the script")
	}
	return f
}

type entryOpt func(*api.ServiceEntry)

func entry(id, addr string, port int, opts ...entryOpt) *api.ServiceEntry {
	e := &api.ServiceEntry{
		Node: &api.Node{Node: "node-" + id, Address: "10.0.0.1"},
		Service: &api.AgentService{
			ID: id, Service: "web", Address: addr, Port: port,
			Weights: api.AgentWeights{Passing: 1, Warning: 1},
		},
		Checks: api.HealthChecks{
			{CheckID: "serfHealth", Status: api.HealthPassing},
			{CheckID: "service:" + id, ServiceID: id, Status: api.HealthPassing},
		},
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func status(s string) entryOpt {
	return func(e *api.ServiceEntry) { e.Checks[1].Status = s }
}

func weights(p, w int) entryOpt {
	return func(e *api.ServiceEntry) { e.Service.Weights = api.AgentWeights{Passing: p, Warning: w} }
}

func meta(kv ...string) entryOpt {
	return func(e *api.ServiceEntry) {
		e.Service.Meta = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			e.Service.Meta[kv[i]] = kv[i+1]
		}
	}
}

func maint(checkID string) entryOpt {
	return func(e *api.ServiceEntry) {
		e.Checks = append(e.Checks, &api.HealthCheck{CheckID: checkID, Status: api.HealthCritical})
	}
}

func addrsOf(u discovery.Update) []string {
	out := []string{}
	for _, t := range u.Targets {
		out = append(out, t.Addr)
	}
	return out
}

// summary renders updates as "a,b" sets and "err".
func summary(us []discovery.Update) []string {
	var out []string
	for _, u := range us {
		if u.Err != nil {
			out = append(out, "err")
			continue
		}
		s := ""
		for i, a := range addrsOf(u) {
			if i > 0 {
				s += ","
			}
			s += a
		}
		out = append(out, "["+s+"]")
	}
	return out
}

func TestRunIndexAndBackoff(t *testing.T) {
	a := entry("a", "127.0.0.1", 1001)
	b := entry("b", "127.0.0.1", 1002)
	boom := errors.New("connection refused")
	// What the HTTP client returns when the agent does not answer at all.
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:8500/v1/health/service/web", Err: errors.New("connect: connection refused")}
	// Answers with an error status: the agent is up (4xx), or may be on
	// its way down or back (5xx).
	denied := api.StatusError{Code: http.StatusForbidden, Body: "Permission denied"}
	unavailable := api.StatusError{Code: http.StatusInternalServerError, Body: "No cluster leader"}
	long := 5 * time.Minute // a wait that timed out
	noLimit := WithRateLimit(0, 1)
	for _, tc := range []struct {
		desc    string
		steps   []step
		opts    []Option
		agentUp bool // the agent's reachability probe succeeds
		indexes []uint64
		sleeps  []time.Duration
		awaits  []bool
		updates []string
	}{
		{
			desc: "an agent that does not answer is probed; its answer ends the backoff",
			steps: []step{
				{entries: []*api.ServiceEntry{a}, index: 50},
				{err: refused},
				{err: refused},
				{entries: []*api.ServiceEntry{a, b}, index: 3},
			},
			opts:    []Option{noLimit, WithBackoff(10*time.Second, 30*time.Second)},
			agentUp: true,
			indexes: []uint64{0, 50, 0, 0},
			sleeps:  []time.Duration{0, 0},
			awaits:  []bool{true, true},
			updates: []string{"[127.0.0.1:1001]", "err", "err", "[127.0.0.1:1001,127.0.0.1:1002]"},
		},
		{
			desc: "while the probe fails, the backoff runs its course",
			steps: []step{
				{err: refused},
				{err: refused},
				{entries: []*api.ServiceEntry{a}, index: 3},
			},
			opts:    []Option{noLimit},
			indexes: []uint64{0, 0, 0},
			sleeps:  []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
			awaits:  []bool{true, true},
			updates: []string{"err", "err", "[127.0.0.1:1001]"},
		},
		{
			desc: "a 5xx answer (no leader, shutting down) waits on the probe too",
			steps: []step{
				{err: unavailable},
				{entries: []*api.ServiceEntry{a}, index: 3},
			},
			opts:    []Option{noLimit, WithBackoff(10*time.Second, 30*time.Second)},
			agentUp: true,
			indexes: []uint64{0, 0},
			sleeps:  []time.Duration{0},
			awaits:  []bool{false},
			updates: []string{"err", "[127.0.0.1:1001]"},
		},
		{
			desc: "a 4xx answer comes from a working agent: plain backoff, no probe",
			steps: []step{
				{err: denied},
				{err: fmt.Errorf("wrapped: %w", denied)},
				{entries: []*api.ServiceEntry{a}, index: 3},
			},
			opts:    []Option{noLimit},
			agentUp: true,
			indexes: []uint64{0, 0, 0},
			sleeps:  []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
			updates: []string{"err", "err", "[127.0.0.1:1001]"},
		},
		{
			desc: "first answer emits; unchanged wakeups do not; changes do",
			steps: []step{
				{entries: []*api.ServiceEntry{a, b}, index: 10},
				{entries: []*api.ServiceEntry{a, b}, index: 11, took: time.Second},
				{entries: []*api.ServiceEntry{a, b}, index: 11, took: long},
				{entries: []*api.ServiceEntry{a}, index: 12, took: time.Second},
			},
			opts:    []Option{noLimit},
			indexes: []uint64{0, 10, 11, 11},
			updates: []string{"[127.0.0.1:1001,127.0.0.1:1002]", "[127.0.0.1:1001]"},
		},
		{
			desc: "index going backwards resets to 0, then blocks on the new index",
			steps: []step{
				{entries: []*api.ServiceEntry{a}, index: 100},
				{entries: []*api.ServiceEntry{a}, index: 5, took: time.Second},
				{entries: []*api.ServiceEntry{a}, index: 6},
				{entries: []*api.ServiceEntry{a}, index: 6, took: long},
			},
			opts:    []Option{noLimit},
			indexes: []uint64{0, 100, 0, 6},
			// the early return without progress counts as one spin, which
			// the non-blocking query after it does not clear
			sleeps:  []time.Duration{100 * time.Millisecond, 100 * time.Millisecond},
			updates: []string{"[127.0.0.1:1001]"},
		},
		{
			desc: "index 0 is never used twice in a row",
			steps: []step{
				{entries: []*api.ServiceEntry{a}, index: 0},
				{entries: []*api.ServiceEntry{a}, index: 0},
				{entries: []*api.ServiceEntry{a}, index: 0},
			},
			opts:    []Option{noLimit},
			indexes: []uint64{0, 1, 0},
			// 1 -> 0 is a spin; the 0 query after it keeps the count
			sleeps:  []time.Duration{100 * time.Millisecond, 100 * time.Millisecond},
			updates: []string{"[127.0.0.1:1001]"},
		},
		{
			desc: "errors emit Err each time, back off, reset the index, and the set is re-emitted after",
			steps: []step{
				{entries: []*api.ServiceEntry{a}, index: 50},
				{err: boom},
				{err: boom},
				{err: boom},
				{entries: []*api.ServiceEntry{a}, index: 3},
				{entries: []*api.ServiceEntry{a}, index: 4, took: time.Second},
			},
			opts:    []Option{noLimit},
			indexes: []uint64{0, 50, 0, 0, 0, 3},
			sleeps:  []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond},
			updates: []string{"[127.0.0.1:1001]", "err", "err", "err", "[127.0.0.1:1001]"},
		},
		{
			desc: "error before any set: Err, never an empty set",
			steps: []step{
				{err: boom},
				{entries: nil, index: 9},
			},
			opts:    []Option{noLimit},
			indexes: []uint64{0, 0},
			sleeps:  []time.Duration{100 * time.Millisecond},
			updates: []string{"err", "[]"},
		},
		{
			desc: "spinning index (fast returns without progress) backs off, a real timeout clears it",
			steps: []step{
				{entries: []*api.ServiceEntry{a}, index: 10},
				{entries: []*api.ServiceEntry{a}, index: 10},
				{entries: []*api.ServiceEntry{a}, index: 10},
				{entries: []*api.ServiceEntry{a}, index: 10},
				{entries: []*api.ServiceEntry{a}, index: 10, took: long},
				{entries: []*api.ServiceEntry{a}, index: 11},
			},
			opts:    []Option{noLimit, WithBackoff(time.Second, 4*time.Second)},
			indexes: []uint64{0, 10, 10, 10, 10, 10},
			sleeps:  []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
			updates: []string{"[127.0.0.1:1001]"},
		},
		{
			desc: "a flood of changes is never held back: each answer applies and the next query follows at once",
			steps: []step{
				{entries: []*api.ServiceEntry{a}, index: 1},
				{entries: []*api.ServiceEntry{b}, index: 2},
				{entries: []*api.ServiceEntry{a}, index: 3},
				{entries: []*api.ServiceEntry{b}, index: 4},
				{entries: []*api.ServiceEntry{a}, index: 5},
			},
			opts:    []Option{WithRateLimit(time.Second, 2)},
			indexes: []uint64{0, 1, 2, 3, 4},
			updates: []string{"[127.0.0.1:1001]", "[127.0.0.1:1002]", "[127.0.0.1:1001]", "[127.0.0.1:1002]", "[127.0.0.1:1001]"},
		},
		{
			desc: "rate limit caps answers without effect (index moves, set does not)",
			steps: []step{
				{entries: []*api.ServiceEntry{a}, index: 1},
				{entries: []*api.ServiceEntry{a}, index: 2},
				{entries: []*api.ServiceEntry{a}, index: 3},
				{entries: []*api.ServiceEntry{a}, index: 4},
				{entries: []*api.ServiceEntry{a}, index: 5},
				{entries: []*api.ServiceEntry{b}, index: 6},
				{entries: []*api.ServiceEntry{a}, index: 7},
			},
			opts:    []Option{WithRateLimit(time.Second, 2)},
			indexes: []uint64{0, 1, 2, 3, 4, 5, 6},
			// burst of 2, then one per second after each answer without
			// effect; none after the answer that changed the set
			sleeps:  []time.Duration{time.Second, time.Second},
			updates: []string{"[127.0.0.1:1001]", "[127.0.0.1:1002]", "[127.0.0.1:1001]"},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := runScriptProbed(t, SourceConfig{}, tc.steps, tc.agentUp, tc.opts...)
			if !slices.Equal(f.awaits, tc.awaits) {
				t.Errorf("waits on the agent's probe (down?) = %v, want %v", f.awaits, tc.awaits)
			}
			if !reflect.DeepEqual(f.indexes, tc.indexes) {
				t.Errorf("wait indexes = %v, want %v", f.indexes, tc.indexes)
			}
			if !reflect.DeepEqual(f.sleeps, tc.sleeps) {
				t.Errorf("sleeps = %v, want %v", f.sleeps, tc.sleeps)
			}
			if got := summary(f.updates); !reflect.DeepEqual(got, tc.updates) {
				t.Errorf("updates = %v, want %v", got, tc.updates)
			}
			for _, u := range f.updates {
				if u.At.IsZero() {
					t.Errorf("update without At: %+v", u)
				}
				if u.Observed.IsZero() || u.Observed.After(u.At) {
					t.Errorf("update Observed %s, want set and not after At %s", u.Observed, u.At)
				}
				if u.Err == nil && u.Targets == nil {
					t.Errorf("good update with nil Targets (want an empty, non-nil set)")
				}
			}
		})
	}
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		cfg     SourceConfig
		entries []*api.ServiceEntry
		want    []discovery.Target
	}{
		{
			desc: "passing and warning kept with their weights, critical dropped",
			entries: []*api.ServiceEntry{
				entry("p", "127.0.0.1", 3, weights(10, 2)),
				entry("w", "127.0.0.1", 2, weights(10, 2), status(api.HealthWarning)),
				entry("c", "127.0.0.1", 1, status(api.HealthCritical)),
			},
			want: []discovery.Target{
				{Addr: "127.0.0.1:2", Weight: 2},
				{Addr: "127.0.0.1:3", Weight: 10},
			},
		},
		{
			desc: "PassingOnly drops warning",
			cfg:  SourceConfig{PassingOnly: true},
			entries: []*api.ServiceEntry{
				entry("p", "127.0.0.1", 3),
				entry("w", "127.0.0.1", 2, status(api.HealthWarning)),
			},
			want: []discovery.Target{{Addr: "127.0.0.1:3", Weight: 1}},
		},
		{
			desc: "maintenance excludes, node or service",
			entries: []*api.ServiceEntry{
				entry("n", "127.0.0.1", 1, maint(api.NodeMaint)),
				entry("s", "127.0.0.1", 2, maint(api.ServiceMaintPrefix+"s")),
				entry("ok", "127.0.0.1", 3),
			},
			want: []discovery.Target{{Addr: "127.0.0.1:3", Weight: 1}},
		},
		{
			desc: "unknown check status is not trusted",
			entries: []*api.ServiceEntry{
				entry("u", "127.0.0.1", 1, status("unknown")),
			},
			want: []discovery.Target{},
		},
		{
			desc: "node address when the service has none; IPv6 bracketed",
			entries: []*api.ServiceEntry{
				entry("n", "", 80),
				entry("v6", "::1", 81),
			},
			want: []discovery.Target{
				{Addr: "10.0.0.1:80", Weight: 1},
				{Addr: "[::1]:81", Weight: 1},
			},
		},
		{
			desc: "meta must match every key; tags and meta copied",
			cfg:  SourceConfig{Meta: map[string]string{"zone": "a", "v": "2"}},
			entries: []*api.ServiceEntry{
				entry("m1", "127.0.0.1", 1, meta("zone", "a", "v", "2", "x", "y"), func(e *api.ServiceEntry) { e.Service.Tags = []string{"t1"} }),
				entry("m2", "127.0.0.1", 2, meta("zone", "a")),
				entry("m3", "127.0.0.1", 3, meta("zone", "b", "v", "2")),
			},
			want: []discovery.Target{
				{Addr: "127.0.0.1:1", Weight: 1, Tags: []string{"t1"}, Meta: map[string]string{"zone": "a", "v": "2", "x": "y"}},
			},
		},
		{
			desc: "weight meta key wins, clamped; unparsable falls back to weights",
			cfg:  SourceConfig{WeightMetaKey: "w"},
			entries: []*api.ServiceEntry{
				entry("a", "127.0.0.1", 1, meta("w", "250")),
				entry("b", "127.0.0.1", 2, meta("w", "99999999")),
				entry("c", "127.0.0.1", 3, meta("w", "-4")),
				entry("d", "127.0.0.1", 4, meta("w", "heavy"), weights(7, 1)),
			},
			want: []discovery.Target{
				{Addr: "127.0.0.1:1", Weight: 250, Meta: map[string]string{"w": "250"}},
				{Addr: "127.0.0.1:2", Weight: 65535, Meta: map[string]string{"w": "99999999"}},
				{Addr: "127.0.0.1:3", Weight: 0, Meta: map[string]string{"w": "-4"}},
				{Addr: "127.0.0.1:4", Weight: 7, Meta: map[string]string{"w": "heavy"}},
			},
		},
		{
			desc: "service weights clamped",
			entries: []*api.ServiceEntry{
				entry("a", "127.0.0.1", 1, weights(70000, 1)),
			},
			want: []discovery.Target{{Addr: "127.0.0.1:1", Weight: 65535}},
		},
		{
			desc: "same address twice is kept once (first by node, then ID), sorted by Addr",
			entries: []*api.ServiceEntry{
				entry("z", "127.0.0.2", 1),
				entry("y", "127.0.0.1", 1, weights(5, 5)),
				entry("x", "127.0.0.1", 1, weights(9, 9)),
			},
			want: []discovery.Target{
				{Addr: "127.0.0.1:1", Weight: 9},
				{Addr: "127.0.0.2:1", Weight: 1},
			},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Service, cfg.Address = "web", "127.0.0.1:1"
			s, err := NewSource(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.targets(tc.entries); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("targets =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestNewSourceConfig(t *testing.T) {
	env := func(m map[string]string) Option {
		return WithLookupEnv(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
	}
	for _, tc := range []struct {
		desc     string
		cfg      SourceConfig
		opts     []Option
		wantName string
		wantAddr string
		wantErr  bool
	}{
		{desc: "defaults", cfg: SourceConfig{Service: "web"}, opts: []Option{env(nil)}, wantName: "consul:web", wantAddr: DefaultAddress},
		{desc: "env address", cfg: SourceConfig{Service: "web"}, opts: []Option{env(map[string]string{"CONSUL_HTTP_ADDR": "10.1.1.1:8500"})}, wantName: "consul:web", wantAddr: "10.1.1.1:8500"},
		{desc: "explicit address wins over env", cfg: SourceConfig{Service: "web", Address: "127.0.0.1:9"}, opts: []Option{env(map[string]string{"CONSUL_HTTP_ADDR": "10.1.1.1:8500"})}, wantName: "consul:web", wantAddr: "127.0.0.1:9"},
		{desc: "datacenter in the name", cfg: SourceConfig{Service: "web", Datacenter: "eu1"}, opts: []Option{env(nil)}, wantName: "consul:web@eu1", wantAddr: DefaultAddress},
		{desc: "service required", cfg: SourceConfig{}, wantErr: true},
		{desc: "bad scheme", cfg: SourceConfig{Service: "web", Scheme: "ftp"}, wantErr: true},
		{desc: "wait above Consul's max", cfg: SourceConfig{Service: "web", WaitTime: 11 * time.Minute}, wantErr: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s, err := NewSource(tc.cfg, tc.opts...)
			if tc.wantErr {
				if err == nil {
					t.Fatal("NewSource succeeded, want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Name() != tc.wantName || s.cfg.Address != tc.wantAddr {
				t.Errorf("name, address = %q, %q; want %q, %q", s.Name(), s.cfg.Address, tc.wantName, tc.wantAddr)
			}
		})
	}
}

// TestPinnedToken checks that requests carry exactly the configured token
// (none when empty) whatever the process environment says.
func TestPinnedToken(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "from-env")
	t.Setenv("CONSUL_NAMESPACE", "env-ns")
	type seen struct{ token, ns string }
	got := make(chan seen, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Get("X-Consul-Token"), r.URL.Query().Get("ns")}
		w.Header().Set("X-Consul-Index", "7")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}))
	defer srv.Close()
	for _, token := range []string{"", "configured"} {
		s, err := NewSource(SourceConfig{Service: "web", Address: srv.Listener.Addr().String(), Token: token})
		if err != nil {
			t.Fatal(err)
		}
		if _, idx, err := s.query(context.Background(), 0); err != nil || idx != 7 {
			t.Fatalf("query: index %d, err %v", idx, err)
		}
		if g := <-got; g.token != token || g.ns != "" {
			t.Errorf("configured token %q: request had token %q, ns %q", token, g.token, g.ns)
		}
	}
}
