package health

import (
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// deadline bounds every wait in the tests; generous for loaded machines.
const deadline = 30 * time.Second

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fakeClock is a manually advanced Clock. Timers fire synchronously in
// Advance, in due order.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	when time.Time
	d    time.Duration
	f    func()
	done bool // fired or stopped
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), d: d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	t.c.timers = slices.DeleteFunc(t.c.timers, func(x *fakeTimer) bool { return x == t })
	return true
}

// Advance moves the clock forward by d and runs every timer that became
// due, including ones armed by the callbacks themselves.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due *fakeTimer
		for _, t := range c.timers {
			if !t.when.After(c.now) && (due == nil || t.when.Before(due.when)) {
				due = t
			}
		}
		if due == nil {
			c.mu.Unlock()
			return
		}
		due.done = true
		c.timers = slices.DeleteFunc(c.timers, func(x *fakeTimer) bool { return x == due })
		c.mu.Unlock()
		due.f()
	}
}

// pending returns the durations the pending timers were armed with.
func (c *fakeClock) pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, t := range c.timers {
		ds = append(ds, t.d)
	}
	slices.Sort(ds)
	return ds
}

// next returns how far the earliest pending timer is, and whether there
// is one.
func (c *fakeClock) next() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	w := c.timers[0].when
	for _, t := range c.timers {
		if t.when.Before(w) {
			w = t.when
		}
	}
	return max(w.Sub(c.now), 0), true
}

// waitPending waits until n timers are pending.
func (c *fakeClock) waitPending(t *testing.T, n int) []time.Duration {
	t.Helper()
	var ds []time.Duration
	waitFor(t, "pending timers", func() bool {
		ds = c.pending()
		return len(ds) == n
	})
	return ds
}

// probeOnce fires the single target's pending probe timer and waits until
// the probe completed and planned the next one (both intervals must be
// non-zero). It returns the interval of the newly planned probe.
func (c *fakeClock) probeOnce(t *testing.T) time.Duration {
	t.Helper()
	c.waitPending(t, 1)
	d, _ := c.next()
	c.Advance(d)
	return c.waitPending(t, 1)[0]
}

// recorder collects callbacks.
type recorder struct {
	mu      sync.Mutex
	events  []Event
	changes int
}

func (r *recorder) options(clk Clock) Options {
	return Options{
		Clock:    clk,
		OnEvent:  r.onEvent,
		OnChange: r.onChange,
		Rand:     func() uint64 { return 0 },
	}
}

func (r *recorder) onEvent(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) onChange() {
	r.mu.Lock()
	r.changes++
	r.mu.Unlock()
}

func (r *recorder) snapshot() ([]Event, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events), r.changes
}

// waitEvents waits until exactly n events arrived and returns them.
func (r *recorder) waitEvents(t *testing.T, n int) []Event {
	t.Helper()
	var evs []Event
	waitFor(t, "events", func() bool {
		evs, _ = r.snapshot()
		return len(evs) >= n
	})
	if len(evs) != n {
		t.Fatalf("got %d events, want %d: %+v", len(evs), n, evs)
	}
	return evs
}

func state(t *testing.T, c *Checker, addr string) TargetState {
	t.Helper()
	for _, s := range c.States() {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("no state for %s", addr)
	return TargetState{}
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentListener accepts connections and never writes to them.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// pipeNet is an in-memory network for tests run in a bubble (real sockets
// would keep the bubble's clock from advancing): every dial returns one end
// of a net.Pipe and hands the other to serve, in its own goroutine. It
// records when each dial happened, on the bubble's clock.
type pipeNet struct {
	serve func(net.Conn)
	mu    sync.Mutex
	dials []time.Time // guarded by mu
}

func (p *pipeNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	p.mu.Lock()
	p.dials = append(p.dials, time.Now())
	p.mu.Unlock()
	go func() {
		defer server.Close()
		p.serve(server)
	}()
	return client, nil
}

// dialTimes returns the times of the dials so far.
func (p *pipeNet) dialTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.dials)
}

// silentPeer reads whatever the prober sends and never answers, until the
// prober closes the connection.
func silentPeer(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// hangingDial is a connect that never completes before ctx ends.
func hangingDial(ctx context.Context, _, _ string) (net.Conn, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
