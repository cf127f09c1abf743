package upstream

import (
	"context"
	"errors"
	"testing"
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

func TestWatchKeepsLastGoodSetAndGracesEmpty(t *testing.T) {
	u := New(Options{Name: "u", Balancer: balance.NewRoundRobin()})
	src := chanSource{ch: make(chan discovery.Update)}
	events := make(chan WatchEvent, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		u.Watch(ctx, src, WatchOptions{EmptyGrace: 200 * time.Millisecond, OnEvent: func(e WatchEvent) { events <- e }})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	next := func(want string) WatchEvent {
		t.Helper()
		select {
		case e := <-events:
			if e.Kind != want {
				t.Fatalf("event %q, want %q", e.Kind, want)
			}
			return e
		case <-time.After(10 * time.Second):
			t.Fatalf("no %q event", want)
		}
		return WatchEvent{}
	}
	two := []discovery.Target{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}}
	src.ch <- discovery.Update{Targets: two}
	next("update")
	if got := addrs(u); !got["a:1"] || !got["b:1"] {
		t.Fatalf("after update: %v", got)
	}
	src.ch <- discovery.Update{Err: errors.New("consul down")}
	next("error")
	if got := addrs(u); len(got) != 2 {
		t.Fatalf("an error emptied the set: %v", got)
	}
	// An empty answer followed quickly by a full one changes nothing.
	src.ch <- discovery.Update{}
	next("empty-pending")
	src.ch <- discovery.Update{Targets: two[:1]}
	next("update")
	if got := addrs(u); len(got) != 1 {
		t.Fatalf("after shrink: %v", got)
	}
	// An empty answer that stands past the grace drops the targets.
	src.ch <- discovery.Update{}
	next("empty-pending")
	next("empty")
	if got := addrs(u); len(got) != 0 {
		t.Fatalf("after grace: %v", got)
	}
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
	if got := pickN(t, u, 10); got["b:1"] != 10 {
		t.Fatalf("the group still has a healthy target: %v", got)
	}
	mark(t, u, "b:1", health.MarkUnhealthy)
	if got := pickN(t, u, 10); got["c:1"] != 10 {
		t.Fatalf("whole group unhealthy: next group: %v", got)
	}
}
