package balance

import (
	"slices"
	"testing"
)

func TestPriorityLoads(t *testing.T) {
	for _, c := range []struct {
		name           string
		healthy, total []int
		want           []uint32
	}{
		{"level 0 all healthy", []int{4, 2}, []int{4, 2}, []uint32{100, 0}},
		{"level 0 at 75 %, capped", []int{3, 2}, []int{4, 2}, []uint32{100, 0}},
		{"level 0 at 50 %", []int{2, 2}, []int{4, 2}, []uint32{70, 30}},
		{"level 0 at 0 %", []int{0, 2}, []int{4, 2}, []uint32{0, 100}},
		{"three levels at 20 %", []int{1, 1, 5}, []int{5, 5, 5}, []uint32{28, 28, 44}},
		// Total health 28 % is scaled up to 100 %.
		{"all low, normalised", []int{1, 1}, []int{10, 10}, []uint32{50, 50}},
		{"rounding residue to the first level", []int{1, 1, 1}, []int{10, 10, 10}, []uint32{34, 33, 33}},
		{"nothing healthy", []int{0, 0}, []int{3, 3}, []uint32{0, 0}},
		{"empty level skipped", []int{0, 1}, []int{0, 1}, []uint32{0, 100}},
	} {
		if got := PriorityLoads(c.healthy, c.total, 0); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestLevelsExactSplit(t *testing.T) {
	eps := endpoints(1, 1, 1, 1, 1, 1)
	rr := NewRoundRobin()
	subs := []Picker{rr.Build(eps[:4], nil), rr.Build(eps[4:], nil)}
	p := NewLevels(subs, []int{4, 2}, []uint32{70, 30}, nil)
	got := countPicks(p, eps, &Request{}, 1000)
	for i, want := range []int{175, 175, 175, 175, 150, 150} {
		if got[eps[i].Addr] != want {
			t.Fatalf("%v", got)
		}
	}
	// The order is smooth: no more than 3 level-0 picks in a row for
	// 70/30, and every window of 10 holds the exact split.
	p = NewLevels(subs, []int{4, 2}, []uint32{70, 30}, nil)
	var seq []int
	for range 100 {
		seq = append(seq, p.Pick(&Request{}))
	}
	for s := 0; s+10 <= len(seq); s += 10 {
		n := 0
		for _, i := range seq[s : s+10] {
			if i >= 4 {
				n++
			}
		}
		if n != 3 {
			t.Fatalf("window %d: %d level-1 picks, want 3: %v", s, n, seq)
		}
	}
	// A rebuild keeps the position: the split holds across it.
	p1 := NewLevels(subs, []int{4, 2}, []uint32{70, 30}, nil)
	lvl1 := 0
	for range 5 {
		if p1.Pick(&Request{}) >= 4 {
			lvl1++
		}
	}
	p2 := NewLevels(subs, []int{4, 2}, []uint32{70, 30}, p1)
	for range 95 {
		if p2.Pick(&Request{}) >= 4 {
			lvl1++
		}
	}
	if lvl1 != 30 {
		t.Fatalf("across a rebuild: %d level-1 picks of 100, want 30", lvl1)
	}
	if LevelPicker(p2, 1) != subs[1] || LevelPicker(p2, 2) != nil || LevelPicker(subs[0], 0) != nil {
		t.Fatal("LevelPicker")
	}
}

func TestLevelsKeyed(t *testing.T) {
	eps := endpoints(1, 1, 1, 1)
	ch := NewConsistentHash(0)
	subs := []Picker{ch.Build(eps[:2], nil), ch.Build(eps[2:], nil)}
	p := NewLevels(subs, []int{2, 2}, []uint32{50, 50}, nil)
	lvl1 := 0
	for k := range uint64(2000) {
		r := &Request{Key: k * golden, HasKey: true}
		a := p.Pick(r)
		if b := p.Pick(r); a != b {
			t.Fatalf("key %d: %d then %d", k, a, b)
		}
		if a >= 2 {
			lvl1++
		}
	}
	if lvl1 < 800 || lvl1 > 1200 {
		t.Fatalf("keyed split: %d of 2000 in level 1", lvl1)
	}
	if NewLevels(subs, []int{2, 2}, []uint32{0, 0}, nil).Pick(&Request{}) != -1 {
		t.Fatal("no load: want no endpoint")
	}
}

func BenchmarkLevels10k(b *testing.B) {
	ws := equalWeights(10000, 1)
	eps := endpoints(ws...)
	rr := NewRoundRobin()
	subs := []Picker{rr.Build(eps[:5000], nil), rr.Build(eps[5000:], nil)}
	p := NewLevels(subs, []int{5000, 5000}, []uint32{70, 30}, nil)
	r := &Request{}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p.Pick(r)
	}
}
