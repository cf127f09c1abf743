package balance

import (
	"slices"
	"testing"
	"time"
)

// scripted is an inner builder whose pickers return the index of the
// address in *next (or -1), so tests control first choices.
type scripted struct{ next *string }

func (s scripted) Build(eps []Endpoint, _ Picker) Picker {
	return scriptedPicker{eps: slices.Clone(eps), next: s.next}
}

type scriptedPicker struct {
	eps  []Endpoint
	next *string
}

func (p scriptedPicker) Pick(*Request) int {
	return slices.IndexFunc(p.eps, func(e Endpoint) bool { return e.Addr == *p.next })
}

func namedEndpoints(addrs ...string) []Endpoint {
	out := make([]Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = Endpoint{Addr: a, Weight: 1, Stats: new(Stats)}
	}
	return out
}

func TestStickyAcrossTargetChanges(t *testing.T) {
	type step struct {
		set  []string // endpoint set to rebuild with (nil: keep)
		next string   // inner picker's choice for new keys
		key  uint64
		want string
	}
	tests := []struct {
		desc  string
		steps []step
	}{
		{desc: "remembered", steps: []step{
			{set: []string{"a", "b", "c"}, next: "b", key: 1, want: "b"},
			{next: "c", key: 1, want: "b"},
			{next: "c", key: 2, want: "c"},
			{next: "a", key: 1, want: "b"},
		}},
		{desc: "stays when targets are added", steps: []step{
			{set: []string{"a", "b"}, next: "b", key: 1, want: "b"},
			{set: []string{"x", "y", "a", "b", "z"}, next: "x", key: 1, want: "b"},
			{set: []string{"b", "q"}, next: "q", key: 1, want: "b"},
		}},
		{desc: "stays when another target leaves", steps: []step{
			{set: []string{"a", "b", "c"}, next: "c", key: 7, want: "c"},
			{set: []string{"b", "c"}, next: "b", key: 7, want: "c"},
		}},
		{desc: "moves when its target leaves, and stays moved", steps: []step{
			{set: []string{"a", "b", "c"}, next: "a", key: 9, want: "a"},
			{set: []string{"b", "c"}, next: "c", key: 9, want: "c"},
			{next: "b", key: 9, want: "c"},
			{set: []string{"a", "b", "c"}, next: "a", key: 9, want: "c"},
		}},
		{desc: "all targets gone", steps: []step{
			{set: []string{"a"}, next: "a", key: 3, want: "a"},
			{set: []string{}, next: "a", key: 3, want: ""},
			{set: []string{"a", "b"}, next: "b", key: 3, want: "a"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var next string
			b := NewSticky(100, 0, scripted{&next})
			var p Picker
			var cur []Endpoint
			for n, s := range tc.steps {
				if s.set != nil {
					cur = namedEndpoints(s.set...)
					p = b.Build(cur, p)
				}
				next = s.next
				got := ""
				if i := p.Pick(&Request{Key: s.key, HasKey: true}); i >= 0 {
					got = cur[i].Addr
				}
				if got != s.want {
					t.Fatalf("step %d: key %d went to %q, want %q", n, s.key, got, s.want)
				}
			}
		})
	}
}

func TestStickyWithoutKeyUsesInner(t *testing.T) {
	b := NewSticky(100, 0, &RoundRobin{Rand: zeroRand})
	e := endpoints(1, 1, 1)
	p := b.Build(e, nil)
	var got []int
	for range 6 {
		got = append(got, p.Pick(&Request{}))
	}
	if want := []int{0, 1, 2, 0, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("keyless picks %v, want %v", got, want)
	}
	if b.Len() != 0 {
		t.Fatalf("keyless requests were remembered: %d entries", b.Len())
	}
}

func TestStickySpreadsNewKeys(t *testing.T) {
	b := NewSticky(1000, 0, nil) // default inner: round-robin
	e := endpoints(1, 1, 1, 1)
	p := b.Build(e, nil)
	got := make([]int, 4)
	for k := range uint64(400) {
		got[p.Pick(&Request{Key: k, HasKey: true})]++
	}
	if !slices.Equal(got, []int{100, 100, 100, 100}) {
		t.Fatalf("new keys spread %v, want 100 each", got)
	}
}

// TestStickyInnerCarryOver checks that the inner round-robin keeps its
// phase across sticky rebuilds.
func TestStickyInnerCarryOver(t *testing.T) {
	b := NewSticky(100, 0, &RoundRobin{Rand: zeroRand})
	e := endpoints(1, 1, 1)
	p := b.Build(e, nil)
	p.Pick(&Request{})
	p = b.Build(e, p)
	if got := p.Pick(&Request{}); got != 1 {
		t.Fatalf("after rebuild Pick = %d, want 1", got)
	}
}

func TestStickyTTL(t *testing.T) {
	const ttl = time.Minute
	tests := []struct {
		desc    string
		visits  []time.Duration // times of requests with the key after the first
		wantNew bool            // whether the last one was re-picked
	}{
		{desc: "within TTL", visits: []time.Duration{59 * time.Second}},
		{desc: "expired after TTL", visits: []time.Duration{61 * time.Second}, wantNew: true},
		{desc: "activity slides the expiry", visits: []time.Duration{40 * time.Second, 80 * time.Second, 120 * time.Second, 170 * time.Second}},
		{desc: "idle after activity expires", visits: []time.Duration{40 * time.Second, 101 * time.Second}, wantNew: true},
		{desc: "hits younger than TTL/8 do not refresh", visits: []time.Duration{5 * time.Second, 61 * time.Second}, wantNew: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			clock := newFakeClock()
			start := clock.Now()
			next := "a"
			b := NewSticky(100, ttl, scripted{&next})
			b.Now = clock.Now
			e := namedEndpoints("a", "b")
			p := b.Build(e, nil)
			if got := p.Pick(&Request{Key: 5, HasKey: true}); got != 0 {
				t.Fatalf("first pick %d", got)
			}
			next = "b"
			var got int
			for _, at := range tc.visits {
				clock.ns.Store(start + int64(at))
				got = p.Pick(&Request{Key: 5, HasKey: true})
			}
			if (got == 1) != tc.wantNew {
				t.Fatalf("last visit went to %s; re-picked = %v, want %v", e[got].Addr, got == 1, tc.wantNew)
			}
		})
	}
}

func TestStickyRequestTime(t *testing.T) {
	next := "a"
	b := NewSticky(100, time.Minute, scripted{&next})
	b.Now = func() int64 { panic("clock read although Request.Now was set") }
	e := namedEndpoints("a", "b")
	p := b.Build(e, nil)
	r := &Request{Key: 1, HasKey: true, Now: 1_000_000_000_000}
	p.Pick(r)
	next = "b"
	r.Now += int64(2 * time.Minute)
	if got := p.Pick(r); got != 1 {
		t.Fatalf("expired entry kept: Pick = %d", got)
	}
}

func TestStickyLRUBound(t *testing.T) {
	next := "a"
	b := NewSticky(2, 0, scripted{&next})
	e := namedEndpoints("a", "b")
	p := b.Build(e, nil)
	p.Pick(&Request{Key: 1, HasKey: true}) // 1 → a
	p.Pick(&Request{Key: 2, HasKey: true}) // 2 → a
	p.Pick(&Request{Key: 1, HasKey: true}) // 1 most recent
	p.Pick(&Request{Key: 3, HasKey: true}) // 3 → a, evicts 2
	next = "b"
	if got := p.Pick(&Request{Key: 1, HasKey: true}); got != 0 {
		t.Errorf("recently used key 1 forgotten: %d", got)
	}
	if got := p.Pick(&Request{Key: 2, HasKey: true}); got != 1 {
		t.Errorf("least recently used key 2 kept: %d", got)
	}
	if b.Len() != 2 {
		t.Errorf("Len = %d, want 2", b.Len())
	}
}

func TestStickyZeroValuePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Build on a zero Sticky did not panic")
		}
	}()
	(&Sticky{Inner: NewRoundRobin()}).Build(nil, nil)
}
