package balance

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// hashKeys returns n seeded keys.
func hashKeys(n int, seed uint64) []uint64 {
	rnd := seeded(seed)
	keys := make([]uint64, n)
	for i := range keys {
		keys[i] = rnd()
	}
	return keys
}

// assign maps every key to the address it is picked for.
func assign(p Picker, eps []Endpoint, keys []uint64) []string {
	out := make([]string, len(keys))
	r := &Request{HasKey: true}
	for i, k := range keys {
		r.Key = k
		out[i] = eps[p.Pick(r)].Addr
	}
	return out
}

func without(eps []Endpoint, i int) []Endpoint {
	return slices.Concat(eps[:i:i], eps[i+1:])
}

func TestConsistentHashEmptyAndSingle(t *testing.T) {
	b := NewConsistentHash(0)
	if got := b.Build(nil, nil).Pick(&Request{HasKey: true}); got != -1 {
		t.Fatalf("empty Pick = %d", got)
	}
	p := b.Build(endpoints(3), nil)
	for _, k := range hashKeys(100, 1) {
		if got := p.Pick(&Request{Key: k, HasKey: true}); got != 0 {
			t.Fatalf("single endpoint Pick = %d", got)
		}
	}
}

// TestConsistentHashStable pins the ring to fixed hash functions: the same
// endpoint set, in any order, maps keys to the same addresses in every
// process (the expected addresses are literals).
func TestConsistentHashStable(t *testing.T) {
	eps := []Endpoint{
		{Addr: "10.0.0.1:8080", Weight: 100, Stats: new(Stats)},
		{Addr: "10.0.0.2:8080", Weight: 100, Stats: new(Stats)},
		{Addr: "10.0.0.3:8080", Weight: 50, Stats: new(Stats)},
	}
	reversed := slices.Clone(eps)
	slices.Reverse(reversed)
	keys := []uint64{0, 1, 2, 42, 1 << 40, fnv1a64("user-1"), fnv1a64("user-2"), math.MaxUint64}
	want := []string{"10.0.0.3:8080", "10.0.0.1:8080", "10.0.0.1:8080", "10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.3:8080", "10.0.0.2:8080"}
	b := NewConsistentHash(0)
	got := assign(b.Build(eps, nil), eps, keys)
	if !slices.Equal(got, want) {
		t.Errorf("assignments %q, want %q", got, want)
	}
	if got2 := assign(b.Build(reversed, nil), reversed, keys); !slices.Equal(got2, got) {
		t.Errorf("endpoint order changed assignments: %q vs %q", got2, got)
	}
}

func TestConsistentHashRemove(t *testing.T) {
	keys := hashKeys(100000, 2)
	tests := []struct {
		desc    string
		weights []uint32
		remove  int
	}{
		{desc: "3 equal, remove first", weights: equalWeights(3, 100), remove: 0},
		{desc: "10 equal, remove middle", weights: equalWeights(10, 100), remove: 5},
		{desc: "weighted, remove a light one", weights: []uint32{100, 50, 20, 100}, remove: 2},
		{desc: "weighted, remove one of two heaviest", weights: []uint32{100, 50, 20, 100}, remove: 0},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			b := NewConsistentHash(0)
			eps := endpoints(tc.weights...)
			before := assign(b.Build(eps, nil), eps, keys)
			rest := without(eps, tc.remove)
			after := assign(b.Build(rest, nil), rest, keys)
			gone := eps[tc.remove].Addr
			for i := range keys {
				if before[i] != after[i] && before[i] != gone {
					t.Fatalf("key %d moved from %s to %s, but only %s was removed", i, before[i], after[i], gone)
				}
			}
		})
	}
}

func TestConsistentHashAdd(t *testing.T) {
	keys := hashKeys(100000, 3)
	for _, n := range []int{1, 2, 3, 4, 5, 8, 10, 20, 50, 104, 150} {
		t.Run(fmt.Sprintf("%d+1 equal", n), func(t *testing.T) {
			b := NewConsistentHash(0)
			eps := endpoints(equalWeights(n+1, 100)...)
			before := assign(b.Build(eps[:n], nil), eps, keys)
			after := assign(b.Build(eps, nil), eps, keys)
			moved := 0
			for i := range keys {
				if before[i] != after[i] {
					moved++
					if (n+1)*DefaultSlots <= MaxRingPoints && after[i] != eps[n].Addr {
						t.Fatalf("key %d moved from %s to %s, not to the new endpoint", i, before[i], after[i])
					}
				}
			}
			frac := float64(moved) / float64(len(keys))
			if limit := 1/float64(n+1) + 0.02; frac > limit {
				t.Errorf("%.2f%% of keys moved, limit %.2f%%", 100*frac, 100*limit)
			}
		})
	}
	t.Run("weighted: add a light endpoint", func(t *testing.T) {
		b := NewConsistentHash(0)
		eps := endpoints(100, 60, 30, 10)
		before := assign(b.Build(eps[:3], nil), eps, keys)
		after := assign(b.Build(eps, nil), eps, keys)
		moved := 0
		for i := range keys {
			if before[i] != after[i] {
				moved++
				if after[i] != eps[3].Addr {
					t.Fatalf("key %d moved from %s to %s", i, before[i], after[i])
				}
			}
		}
		if frac := float64(moved) / float64(len(keys)); frac > 0.05+0.02 {
			t.Errorf("%.2f%% of keys moved, want about 5%%", 100*frac)
		}
	})
}

func TestConsistentHashShares(t *testing.T) {
	keys := hashKeys(100000, 4)
	tests := []struct {
		desc    string
		weights []uint32
		slots   int
	}{
		{desc: "2 equal", weights: equalWeights(2, 100)},
		{desc: "5 equal", weights: equalWeights(5, 1)},
		{desc: "10 equal", weights: equalWeights(10, 100)},
		{desc: "1,2,3,4", weights: []uint32{1, 2, 3, 4}},
		{desc: "100,100,50,10", weights: []uint32{100, 100, 50, 10}},
		{desc: "8 mixed", weights: []uint32{10, 20, 30, 40, 50, 60, 70, 80}},
		{desc: "4 equal, maximum slots", weights: equalWeights(4, 7), slots: MaxSlots},
		{desc: "3 equal, 1000 slots", weights: equalWeights(3, 7), slots: 1000},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			eps := endpoints(tc.weights...)
			got := make(map[string]int)
			for _, a := range assign(NewConsistentHash(tc.slots).Build(eps, nil), eps, keys) {
				got[a]++
			}
			var total float64
			for _, w := range tc.weights {
				total += float64(w)
			}
			for i, e := range eps {
				want := float64(tc.weights[i]) / total * float64(len(keys))
				if d := (float64(got[e.Addr]) - want) / want; math.Abs(d) > 0.05 {
					t.Errorf("%s (weight %d): %d keys, want %.0f ± 5%% (off by %+.1f%%)", e.Addr, tc.weights[i], got[e.Addr], want, 100*d)
				}
			}
		})
	}
}

func TestConsistentHashWithoutKey(t *testing.T) {
	eps := endpoints(3, 1)
	p := (&ConsistentHash{Rand: seeded(5)}).Build(eps, nil)
	got := countPicks(p, eps, &Request{}, 40000)
	if d := float64(got[eps[0].Addr])/40000 - 0.75; math.Abs(d) > 0.03 {
		t.Errorf("keyless requests: %v, want about 3:1", got)
	}
}

func TestRingPointCounts(t *testing.T) {
	tests := []struct {
		desc    string
		weights []uint32
		slots   uint64
		want    []uint64
	}{
		{desc: "equal weights get slots each", weights: []uint32{5, 5, 5}, slots: 100, want: []uint64{100, 100, 100}},
		{desc: "proportional to the largest", weights: []uint32{100, 50, 1}, slots: 1000, want: []uint64{1000, 500, 10}},
		{desc: "at least one point", weights: []uint32{65535, 1}, slots: 10, want: []uint64{10, 1}},
		{desc: "capped ring", weights: equalWeights(200, 1), slots: 10000, want: slices.Repeat([]uint64{MaxRingPoints / 200}, 200)},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := ringPointCounts(endpoints(tc.weights...), tc.slots); !slices.Equal(got, tc.want) {
				t.Errorf("counts %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHashKeyStable pins HashKey (FNV-1a 64 then the SplitMix64
// finaliser; the values were cross-checked with an independent
// implementation): it must not change across processes or versions, or a
// fleet's sidecars would disagree on targets after an upgrade.
func TestHashKeyStable(t *testing.T) {
	tests := []struct {
		desc string
		in   string
		want uint64
	}{
		{desc: "empty", in: "", want: 0xf52a15e9a9b5e89b},
		{desc: "user id", in: "user-1", want: 0xc499b5f8a721df58},
		{desc: "ip", in: "192.0.2.7", want: 0x6053c3970e6a076d},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := HashKey(tc.in); got != tc.want {
				t.Errorf("HashKey(%q) = %#x, want %#x", tc.in, got, tc.want)
			}
		})
	}
}
