package upstream

import (
	"sync"
	"testing"

	"github.com/outrigger-gw/outrigger/balance"
)

type healthMap map[string]bool

func (h healthMap) Healthy(a string) bool { v, ok := h[a]; return !ok || v }

func pickN(t *testing.T, u *Upstream, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	var r balance.Request
	for i := 0; i < n; i++ {
		ep, err := u.Pick(&r)
		if err != nil {
			t.Fatal(err)
		}
		got[ep.Addr]++
	}
	return got
}

func TestExactRatiosAndDrain(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		targets []Target
		n       int
		want    map[string]int
	}{
		{desc: "300:100", targets: []Target{{Addr: "a:1", Weight: 300}, {Addr: "b:1", Weight: 100}}, n: 400,
			want: map[string]int{"a:1": 300, "b:1": 100}},
		{desc: "weight 0 drains", targets: []Target{{Addr: "a:1", Weight: 5}, {Addr: "b:1", Weight: 0}, {Addr: "c:1", Weight: 5}}, n: 100,
			want: map[string]int{"a:1": 50, "c:1": 50}},
		{desc: "three-way", targets: []Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 2}, {Addr: "c:1", Weight: 3}}, n: 600,
			want: map[string]int{"a:1": 100, "b:1": 200, "c:1": 300}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
			u.SetTargets("static", tc.targets)
			got := pickN(t, u, tc.n)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestNoTargets(t *testing.T) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	if _, err := u.Pick(&balance.Request{}); err != ErrNoTargets {
		t.Fatalf("empty upstream: %v", err)
	}
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 0}})
	if _, err := u.Pick(&balance.Request{}); err != ErrNoTargets {
		t.Fatalf("only draining targets: %v", err)
	}
}

// Stats of an address survive target-set updates; removed addresses lose
// theirs.
func TestStatsSurviveUpdates(t *testing.T) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}})
	ep, _ := u.Pick(&balance.Request{})
	ep.Stats.InFlight.Add(1)
	addr, st := ep.Addr, ep.Stats
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 2}, {Addr: "b:1", Weight: 1}, {Addr: "c:1", Weight: 1}})
	for _, e := range u.Snapshot().Endpoints {
		if e.Addr == addr && (e.Stats != st || e.Stats.InFlight.Load() != 1) {
			t.Fatal("stats of an unchanged address were reset by an update")
		}
	}
	u.SetTargets("static", []Target{{Addr: "c:1", Weight: 1}})
	u.SetTargets("static", []Target{{Addr: addr, Weight: 1}})
	if u.Snapshot().Endpoints[0].Stats == st {
		t.Fatal("a removed address kept its stats")
	}
}

func TestHealthFilterAndSources(t *testing.T) {
	h := healthMap{"b:1": false}
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin(), Health: h})
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}})
	u.SetTargets("consul:web", []Target{{Addr: "c:1", Weight: 1}, {Addr: "a:1", Weight: 9}})
	got := pickN(t, u, 20)
	if got["b:1"] != 0 || got["a:1"] != 10 || got["c:1"] != 10 {
		t.Fatalf("got %v: want the unhealthy target skipped and the duplicate address counted once", got)
	}
	var states = map[string]TargetState{}
	for _, ts := range u.Snapshot().Targets {
		states[ts.Addr] = ts
	}
	if states["b:1"].Healthy || states["b:1"].EffectiveWeight != 0 || states["a:1"].Source != StaticSource || states["a:1"].Weight != 1 {
		t.Fatalf("target states: %+v", states)
	}
	u.SetTargets("consul:web", nil)
	got = pickN(t, u, 10)
	if got["a:1"] != 10 {
		t.Fatalf("after the source emptied: %v", got)
	}
}

func TestConcurrentPickAndUpdate(t *testing.T) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 1}})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r balance.Request
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := u.Pick(&r); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 500; i++ {
		u.SetTargets("static", []Target{{Addr: "a:1", Weight: 1 + i%5}, {Addr: "b:1", Weight: i % 3}})
	}
	close(stop)
	wg.Wait()
}

func TestPickAllocs(t *testing.T) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 3}, {Addr: "b:1", Weight: 1}})
	var r balance.Request
	if n := testing.AllocsPerRun(1000, func() { _, _ = u.Pick(&r) }); n != 0 {
		t.Fatalf("Pick allocates %v times", n)
	}
}

func BenchmarkUpstreamPick(b *testing.B) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets("static", []Target{{Addr: "a:1", Weight: 3}, {Addr: "b:1", Weight: 1}, {Addr: "c:1", Weight: 2}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var r balance.Request
		for pb.Next() {
			_, _ = u.Pick(&r)
		}
	})
}
