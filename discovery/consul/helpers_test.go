package consul

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/discovery"
)

// waitTimeout bounds every wait on the real agent.
const waitTimeout = 15 * time.Second

// watcher runs a Source and collects its updates.
type watcher struct {
	t       *testing.T
	updates chan discovery.Update
	last    discovery.Update
	seen    []discovery.Update
}

func watch(t *testing.T, src *Source) *watcher {
	t.Helper()
	w := &watcher{t: t, updates: make(chan discovery.Update, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Run(ctx, func(u discovery.Update) {
			select {
			case w.updates <- u:
			default:
				t.Errorf("watcher: update buffer full")
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("Source.Run did not return after cancel")
		}
	})
	return w
}

// until waits for an update satisfying ok and returns it with the time it
// took; it fails the test at the deadline.
func (w *watcher) until(what string, ok func(discovery.Update) bool) (discovery.Update, time.Duration) {
	w.t.Helper()
	start := time.Now()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		select {
		case u := <-w.updates:
			w.last = u
			w.seen = append(w.seen, u)
			if ok(u) {
				return u, time.Since(start)
			}
		case <-deadline.C:
			w.t.Fatalf("no update with %s within %s; last: %s", what, waitTimeout, render(w.last))
			return discovery.Update{}, 0
		}
	}
}

// set waits for a good update whose addresses are exactly addrs.
func (w *watcher) set(addrs ...string) (discovery.Update, time.Duration) {
	w.t.Helper()
	slices.Sort(addrs)
	return w.until("set "+strings.Join(addrs, ","), func(u discovery.Update) bool {
		return u.Err == nil && slices.Equal(addrsOf(u), addrs)
	})
}

func render(u discovery.Update) string {
	if u.Err != nil {
		return "err: " + u.Err.Error()
	}
	var parts []string
	for _, t := range u.Targets {
		parts = append(parts, t.Addr+"/w"+strconv.Itoa(t.Weight))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// poll calls ok every 20ms until it returns true or the deadline passes.
func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		<-tick.C
	}
}
