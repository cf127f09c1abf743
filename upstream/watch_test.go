package upstream

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/health"
)

// chanSource emits whatever the test sends.
type chanSource struct{ ch chan discovery.Update }

func (c chanSource) Name() string { return "fake:web" }
func (c chanSource) Run(ctx context.Context, fn func(discovery.Update)) {
	for {
		select {
		case <-ctx.Done():
			return
		case up := <-c.ch:
			fn(up)
		}
	}
}

func addrs(u *Upstream) map[string]bool {
	out := map[string]bool{}
	for _, ep := range u.Snapshot().Endpoints {
		out[ep.Addr] = true
	}
	return out
}

// TestWatchKeepsLastGoodSetAndGracesEmpty runs in a bubble: the grace is
// virtual time, so the test checks to the nanosecond that an empty answer
// drops the targets exactly when the grace has passed, not before, and that
// a full answer within the grace cancels the drop for good.
func TestWatchKeepsLastGoodSetAndGracesEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace = 200 * time.Millisecond
		u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
		src := chanSource{ch: make(chan discovery.Update)}
		events := make(chan WatchEvent, 16)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			u.Watch(ctx, src, WatchOptions{EmptyGrace: grace, OnEvent: func(e WatchEvent) { events <- e }})
			close(done)
		}()
		defer func() { cancel(); <-done }()
		// next returns the one event the last step caused.
		next := func(want string) WatchEvent {
			t.Helper()
			synctest.Wait()
			select {
			case e := <-events:
				if e.Kind != want {
					t.Fatalf("event %q, want %q", e.Kind, want)
				}
				if !e.At.Equal(time.Now()) {
					t.Fatalf("%q event at %v, want now (%v)", want, e.At, time.Now())
				}
				return e
			default:
				t.Fatalf("no %q event", want)
			}
			return WatchEvent{}
		}
		none := func(when string) {
			t.Helper()
			synctest.Wait()
			select {
			case e := <-events:
				t.Fatalf("%s: unexpected %q event", when, e.Kind)
			default:
			}
		}
		two := []discovery.Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}}
		observed := time.Now().Add(-time.Second)
		src.ch <- discovery.Update{Targets: two, Observed: observed}
		if e := next("update"); !e.Observed.Equal(observed) || !e.Live.Equal(time.Now()) {
			t.Fatalf("update event Observed %v Live %v, want the update's %v and now %v", e.Observed, e.Live, observed, time.Now())
		}
		if got := addrs(u); !got["a:1"] || !got["b:1"] {
			t.Fatalf("after update: %v", got)
		}
		src.ch <- discovery.Update{Err: errors.New("consul down")}
		next("error")
		if got := addrs(u); len(got) != 2 {
			t.Fatalf("an error emptied the set: %v", got)
		}
		// An empty answer followed within the grace by a full one changes
		// nothing, then or after the grace would have ended.
		src.ch <- discovery.Update{}
		next("empty-pending")
		time.Sleep(grace / 2)
		none("half the grace after the empty answer")
		src.ch <- discovery.Update{Targets: two[:1]}
		next("update")
		time.Sleep(grace)
		none("after the cancelled grace")
		if got := addrs(u); len(got) != 1 {
			t.Fatalf("after shrink: %v", got)
		}
		// An empty answer that stands for the grace drops the targets at
		// its end, not a nanosecond earlier.
		src.ch <- discovery.Update{}
		pending := next("empty-pending").At
		time.Sleep(grace - time.Nanosecond)
		none("just before the grace ends")
		if got := addrs(u); len(got) != 1 {
			t.Fatalf("targets dropped before the grace ended: %v", got)
		}
		time.Sleep(time.Nanosecond)
		if e := next("empty"); e.At.Sub(pending) != grace || !e.Live.Equal(e.At) {
			t.Fatalf("targets dropped %v after the empty answer, want %v", e.At.Sub(pending), grace)
		}
		if got := addrs(u); len(got) != 0 {
			t.Fatalf("after grace: %v", got)
		}
	})
}

func TestPriorityGroups(t *testing.T) {
	u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets("dns", []Target{
		{Addr: "a:1", Weight: 1, Priority: 10}, {Addr: "b:1", Weight: 1, Priority: 10},
		{Addr: "c:1", Weight: 1, Priority: 20},
	})
	if got := pickN(t, u, 10); got["c:1"] != 0 || got["a:1"] != 5 {
		t.Fatalf("lowest group first: %v", got)
	}
	mark(t, u, "a:1", health.MarkUnhealthy)
	// Half healthy: 50 % × 1.4 = 70 % stays, the rest overflows.
	if got := pickN(t, u, 10); got["b:1"] != 7 || got["c:1"] != 3 {
		t.Fatalf("the group at half health: %v", got)
	}
	mark(t, u, "b:1", health.MarkUnhealthy)
	if got := pickN(t, u, 10); got["c:1"] != 10 {
		t.Fatalf("whole group unhealthy: next group: %v", got)
	}
}

// A discovered target's Backup and zone metadata reach the priority
// levels: the backup takes traffic only once the primary is down.
func TestWatchCarriesBackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newWithHealth(Options{Name: "u", Balancer: balance.NewRoundRobin()})
		src := chanSource{ch: make(chan discovery.Update)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			u.Watch(ctx, src, WatchOptions{})
			close(done)
		}()
		defer func() { cancel(); <-done }()
		src.ch <- discovery.Update{At: time.Now(), Targets: []discovery.Target{
			{Addr: "p:1", Weight: 1, Meta: map[string]string{MetaZone: "a"}},
			{Addr: "b:1", Weight: 1, Backup: true},
		}}
		synctest.Wait()
		if got := pickN(t, u, 10); got["p:1"] != 10 {
			t.Fatalf("with the primary healthy: %v", got)
		}
		mark(t, u, "p:1", health.MarkUnhealthy)
		if got := pickN(t, u, 10); got["b:1"] != 10 {
			t.Fatalf("with the primary down: %v", got)
		}
	})
}
