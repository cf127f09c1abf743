package health

import (
	"encoding/json"
	"testing"
	"time"
)

// TestManualMarks: marks override the checks, which keep counting
// underneath; clearing the mark returns to the checks' verdict. Events
// fire once per change (including masked ones), OnChange only when the
// effective health changes.
func TestManualMarks(t *testing.T) {
	clk := newFakeClock()
	var rec recorder
	c := New(Config{Passive: passiveConfig()}, rec.options(clk))
	const a = "10.0.0.1:80"
	c.SetTargets([]string{a, "10.0.0.2:80"})

	steps := []struct {
		desc      string
		do        func()
		healthy   bool
		checks    bool
		event     *Event // nil: no event expected
		onChanges int
	}{
		{desc: "mark unhealthy overrides healthy checks",
			do:      func() { c.Mark(a, MarkUnhealthy) },
			healthy: false, checks: true,
			event:     &Event{Cause: CauseManual, Old: true, New: false, Checks: true, Mark: MarkUnhealthy},
			onChanges: 1},
		{desc: "checks keep counting under the mark: masked ejection",
			do:      func() { fail(c, a, 3) },
			healthy: false, checks: false,
			event:     &Event{Cause: CausePassive, Old: false, New: false, Checks: false, Mark: MarkUnhealthy},
			onChanges: 1},
		{desc: "mark healthy overrides unhealthy checks",
			do:      func() { c.Mark(a, MarkHealthy) },
			healthy: true, checks: false,
			event:     &Event{Cause: CauseManual, Old: false, New: true, Checks: false, Mark: MarkHealthy},
			onChanges: 2},
		{desc: "same mark again is not a change",
			do:      func() { c.Mark(a, MarkHealthy) },
			healthy: true, checks: false, onChanges: 2},
		{desc: "ejection ends under the mark",
			do:      func() { clk.Advance(10 * time.Second) },
			healthy: true, checks: true,
			event:     &Event{Cause: CauseEjectionExpired, Old: true, New: true, Checks: true, Mark: MarkHealthy},
			onChanges: 2},
		{desc: "ejected again under the healthy mark",
			do:      func() { fail(c, a, 3) },
			healthy: true, checks: false,
			event:     &Event{Cause: CausePassive, Old: true, New: true, Checks: false, Mark: MarkHealthy},
			onChanges: 2},
		{desc: "clearing the mark returns to the checks' verdict",
			do:      func() { c.Mark(a, MarkNone) },
			healthy: false, checks: false,
			event:     &Event{Cause: CauseManual, Old: true, New: false, Checks: false, Mark: MarkNone},
			onChanges: 3},
		{desc: "second ejection lasts twice the base",
			do:      func() { clk.Advance(20 * time.Second) },
			healthy: true, checks: true,
			event:     &Event{Cause: CauseEjectionExpired, Old: false, New: true, Checks: true, Mark: MarkNone},
			onChanges: 4},
	}
	nEvents := 0
	for _, s := range steps {
		s.do()
		st := state(t, c, a)
		if st.Healthy != s.healthy || c.Healthy(a) != s.healthy || st.Checks != s.checks {
			t.Fatalf("%s: healthy %v checks %v, want %v %v", s.desc, st.Healthy, st.Checks, s.healthy, s.checks)
		}
		if s.event != nil {
			nEvents++
		}
		evs := rec.waitEvents(t, nEvents)
		if s.event != nil {
			got, want := evs[nEvents-1], *s.event
			if got.Addr != a || got.Cause != want.Cause || got.Old != want.Old || got.New != want.New ||
				got.Checks != want.Checks || got.Mark != want.Mark {
				t.Errorf("%s: event %+v, want %+v", s.desc, got, want)
			}
		}
		waitFor(t, "OnChange count", func() bool { _, n := rec.snapshot(); return n >= s.onChanges })
		if _, n := rec.snapshot(); n != s.onChanges {
			t.Errorf("%s: %d OnChange calls, want %d", s.desc, n, s.onChanges)
		}
	}
	if c.Mark(a, Mark(7)) {
		t.Error("invalid mark accepted")
	}
}

func TestMarkTextAndJSON(t *testing.T) {
	for _, m := range []Mark{MarkNone, MarkHealthy, MarkUnhealthy} {
		b, _ := m.MarshalText()
		var back Mark
		if err := back.UnmarshalText(b); err != nil || back != m {
			t.Errorf("%v round trip: %v %v", m, back, err)
		}
	}
	if _, err := ParseMark("maybe"); err == nil {
		t.Error("ParseMark accepted garbage")
	}
	b, err := json.Marshal(TargetState{Addr: "a:1", Cause: CauseEjectionRefused, Mark: MarkHealthy})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["cause"] != "ejection-refused" || m["mark"] != "healthy" {
		t.Errorf("json %s", b)
	}
}
