package proxy

import (
	"testing"
	"time"
)

// A rolling deadline is never earlier than the timeout after the last
// operation, at most the slack later, and set again only when it would
// otherwise fall outside that window.
func TestDeadlineRollWindow(t *testing.T) {
	clk := newMonoClock()
	var sets []time.Time
	set := func(tm time.Time) error { sets = append(sets, tm); return nil }
	const d = 64 * time.Second // slack: 1 s
	var dl deadline
	for i, step := range []struct {
		now     time.Duration // on clk's scale
		wantSet bool
	}{
		{0, true},                             // nothing set yet
		{500 * time.Millisecond, false},       // still within [now+d, now+d+1s]
		{time.Second, false},                  // exactly at the edge
		{time.Second + time.Nanosecond, true}, // would fire early: moved
		{1500 * time.Millisecond, false},
	} {
		n := len(sets)
		dl.roll(set, clk, int64(step.now), d)
		if got := len(sets) > n; got != step.wantSet {
			t.Fatalf("step %d (now %v): set = %v, want %v", i, step.now, got, step.wantSet)
		}
		due := clk.time(int64(step.now + d))
		last := sets[len(sets)-1]
		if last.Before(due) || last.Sub(due) > time.Second {
			t.Fatalf("step %d: deadline %v after base, want within [%v, %v]", i, last.Sub(clk.base), step.now+d, step.now+d+time.Second)
		}
	}
	// A deadline far later than due (a longer timeout set before) is
	// brought back.
	dl.exact(set, clk, int64(10*time.Minute))
	dl.roll(set, clk, int64(2*time.Second), d)
	if got := sets[len(sets)-1].Sub(clk.base); got != 2*time.Second+d+time.Second {
		t.Fatalf("after a later exact deadline: %v, want %v", got, 2*time.Second+d+time.Second)
	}
	n := len(sets)
	dl.clear(set)
	dl.clear(set)
	if len(sets) != n+1 || !sets[n].IsZero() {
		t.Fatalf("clear: %d sets %v, want one zero deadline", len(sets)-n, sets[n:])
	}
}
