package health

import (
	"testing"
	"time"
)

// TestStatusReasonAndSince: the lock-free status says why and since when
// the effective health is what it is, recorded at the change: the add, a
// manual mark, a passive ejection (with its end), and a masked flip that
// changes nothing.
func TestStatusReasonAndSince(t *testing.T) {
	clk := newFakeClock()
	c := New(Config{Passive: passiveConfig()}, Options{Clock: clk})
	const a, b = "10.0.0.1:80", "10.0.0.2:80"
	if _, ok := c.Status(a); ok {
		t.Fatal("status of an unknown address")
	}
	added := clk.Now()
	c.SetTargets([]string{a, b})
	check := func(desc, addr string, healthy bool, cause Cause, since time.Time, ejected bool) {
		t.Helper()
		s, ok := c.Status(addr)
		if !ok || s.Healthy != healthy || s.Cause != cause || !s.Since.Equal(since) || s.Ejected != ejected {
			t.Fatalf("%s: status %+v (known %v), want healthy=%v cause=%v since=%v ejected=%v", desc, s, ok, healthy, cause, since, ejected)
		}
	}
	check("added", a, true, CauseInitial, added, false)

	clk.Advance(time.Second)
	marked := clk.Now()
	c.Mark(a, MarkUnhealthy)
	check("marked unhealthy", a, false, CauseManual, marked, false)
	if s, _ := c.Status(a); s.Mark != MarkUnhealthy || !s.Checks {
		t.Fatalf("marked: mark %v checks %v", s.Mark, s.Checks)
	}

	clk.Advance(time.Second)
	fail(c, a, 3) // masked by the mark: the reason stays
	check("masked ejection", a, false, CauseManual, marked, true)

	clk.Advance(time.Second)
	ejected := clk.Now()
	fail(c, b, 3)
	check("ejected", b, false, CausePassive, ejected, true)
	if s, _ := c.Status(b); s.EjectedUntil.IsZero() || s.Ejections != 1 {
		t.Fatalf("ejected: %+v", s)
	}
	clk.Advance(10 * time.Second)
	check("ejection over", b, true, CauseEjectionExpired, clk.Now(), false)
}
