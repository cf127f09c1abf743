// Package sourcetest runs the discovery sub-packages' Sources and
// Registrars in tests.
//
// Contract:
//
//   - Watch runs a discovery.Source's Run in a goroutine and hands its
//     updates, through a channel of the given buffer, to a Recorder; an
//     update that finds the buffer full fails the test. Run is cancelled,
//     and waited for, by Stop or at the end of the test.
//   - The Recorder's waits (Until) consume the updates in order and fail
//     the test at their deadline; every update taken is kept (Mark, Since).
//   - RunRegistrar runs a discovery.Registrar until its stop is called or
//     the test ends.
//   - Every wait is bounded by the timeout the caller gives; nothing is
//     shared between tests.
package sourcetest

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/discovery"
)

// Recorder runs a Source and collects its updates.
type Recorder struct {
	t       testing.TB
	timeout time.Duration
	updates chan discovery.Update
	last    discovery.Update
	mu      sync.Mutex
	seen    []discovery.Update
	cancel  context.CancelFunc
	done    chan struct{}
}

// Watch runs src until Stop or the end of the test, buffering at most
// buffer updates; timeout bounds every wait of the Recorder.
func Watch(t testing.TB, src discovery.Source, buffer int, timeout time.Duration) *Recorder {
	t.Helper()
	r := &Recorder{t: t, timeout: timeout, updates: make(chan discovery.Update, buffer), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		src.Run(ctx, func(u discovery.Update) {
			select {
			case r.updates <- u:
			default:
				t.Errorf("sourcetest: update buffer full")
			}
		})
	}()
	t.Cleanup(r.Stop)
	return r
}

// Stop ends Run and waits for it (bounded); it may be called again.
func (r *Recorder) Stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(r.timeout):
		r.t.Errorf("Source.Run did not return after cancel")
	}
}

// Until waits for an update satisfying ok and returns it with the time it
// took; it fails the test at the deadline.
func (r *Recorder) Until(what string, ok func(discovery.Update) bool) (discovery.Update, time.Duration) {
	r.t.Helper()
	start := time.Now()
	deadline := time.NewTimer(r.timeout)
	defer deadline.Stop()
	for {
		select {
		case u := <-r.updates:
			r.take(u)
			if ok(u) {
				return u, time.Since(start)
			}
		case <-deadline.C:
			r.t.Fatalf("no update with %s within %s; last: %s", what, r.timeout, Render(r.last))
			return discovery.Update{}, 0
		}
	}
}

// Drain takes whatever arrives within d.
func (r *Recorder) Drain(d time.Duration) {
	end := time.NewTimer(d)
	defer end.Stop()
	for {
		select {
		case u := <-r.updates:
			r.take(u)
		case <-end.C:
			return
		}
	}
}

func (r *Recorder) take(u discovery.Update) {
	r.last = u
	r.mu.Lock()
	r.seen = append(r.seen, u)
	r.mu.Unlock()
}

// Mark returns the number of updates taken so far.
func (r *Recorder) Mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// Since returns (a copy of) the updates taken after mark m.
func (r *Recorder) Since(m int) []discovery.Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen[m:])
}

// Render shows an update as "[addr/wWEIGHT ...]" or "err: ...".
func Render(u discovery.Update) string {
	if u.Err != nil {
		return "err: " + u.Err.Error()
	}
	var parts []string
	for _, t := range u.Targets {
		parts = append(parts, t.Addr+"/w"+strconv.Itoa(t.Weight))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// Percentile returns the p-th percentile (nearest rank) of ds, 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// Poll calls ok every 20ms until it returns true, failing the test when
// timeout passes first.
func Poll(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		<-tick.C
	}
}

// RunRegistrar runs r until the test ends or the returned stop is called;
// stop (which may be called again) cancels Run, waits for it at most
// timeout and returns its error.
func RunRegistrar(t testing.TB, r discovery.Registrar, timeout time.Duration) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(timeout):
				t.Errorf("Registrar.Run did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}
