package balance

import (
	"testing"
	"time"
)

func TestForName(t *testing.T) {
	tests := []struct {
		desc    string
		name    string
		opts    Options
		check   func(Builder) bool
		wantErr bool
	}{
		{desc: "default is round-robin", name: "", check: func(b Builder) bool { _, ok := b.(*RoundRobin); return ok }},
		{desc: "round-robin", name: "round-robin", opts: Options{MaxCycle: 100}, check: func(b Builder) bool { return b.(*RoundRobin).MaxCycle == 100 }},
		{desc: "consistent-hashing", name: "consistent-hashing", opts: Options{Slots: 500}, check: func(b Builder) bool { return b.(*ConsistentHash).Slots == 500 }},
		{desc: "consistent-hashing default slots", name: "consistent-hashing", check: func(b Builder) bool { return b.(*ConsistentHash).Slots == 0 }},
		{desc: "slots too small", name: "consistent-hashing", opts: Options{Slots: 9}, wantErr: true},
		{desc: "slots too large", name: "consistent-hashing", opts: Options{Slots: 65537}, wantErr: true},
		{desc: "least-connections", name: "least-connections", opts: Options{ScanLimit: 4}, check: func(b Builder) bool { return b.(*LeastConnections).ScanLimit == 4 }},
		{desc: "latency", name: "latency", check: func(b Builder) bool { _, ok := b.(*Latency); return ok }},
		{desc: "random", name: "random", check: func(b Builder) bool { _, ok := b.(*Random); return ok }},
		{desc: "sticky-sessions over round-robin", name: "sticky-sessions", opts: Options{StickySize: 10, StickyTTL: time.Minute},
			check: func(b Builder) bool {
				s := b.(*Sticky)
				_, ok := s.Inner.(*RoundRobin)
				return ok && s.ttl == int64(time.Minute)
			}},
		{desc: "sticky-sessions over least-connections", name: "sticky-sessions", opts: Options{StickyInner: "least-connections"},
			check: func(b Builder) bool { _, ok := b.(*Sticky).Inner.(*LeastConnections); return ok }},
		{desc: "sticky inside sticky", name: "sticky-sessions", opts: Options{StickyInner: "sticky-sessions"}, wantErr: true},
		{desc: "sticky unknown inner", name: "sticky-sessions", opts: Options{StickyInner: "nope"}, wantErr: true},
		{desc: "negative TTL", name: "sticky-sessions", opts: Options{StickyTTL: -1}, wantErr: true},
		{desc: "unknown", name: "weighted-magic", wantErr: true},
		{desc: "names are exact", name: "Round-Robin", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			b, err := ForName(tc.name, tc.opts)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ForName(%q) = %T, want an error", tc.name, b)
				}
				return
			}
			if err != nil {
				t.Fatalf("ForName(%q): %v", tc.name, err)
			}
			if !tc.check(b) {
				t.Errorf("ForName(%q) = %#v", tc.name, b)
			}
			// Every builder works on empty and non-empty sets.
			if got := b.Build(nil, nil).Pick(&Request{}); got != -1 {
				t.Errorf("empty Pick = %d", got)
			}
			e := endpoints(1, 2, 3)
			if got := b.Build(e, nil).Pick(&Request{Key: 1, HasKey: true}); got < 0 || got >= len(e) {
				t.Errorf("Pick = %d", got)
			}
		})
	}
}

func TestForNameInjection(t *testing.T) {
	calls := 0
	opts := Options{Rand: func() uint64 { calls++; return 0 }, Now: func() int64 { return 1 }}
	for _, name := range []string{"round-robin", "consistent-hashing", "least-connections", "latency", "random", "sticky-sessions"} {
		b, err := ForName(name, opts)
		if err != nil {
			t.Fatal(err)
		}
		before := calls
		p := b.Build(endpoints(1, 1, 1), nil)
		p.Pick(&Request{})
		if calls == before {
			t.Errorf("%s did not use the injected random source", name)
		}
	}
}
