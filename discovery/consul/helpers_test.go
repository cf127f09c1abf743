package consul

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/internal/sourcetest"
)

// waitTimeout bounds every wait on the real agent.
const waitTimeout = 15 * time.Second

// watcher runs a Source and collects its updates (sourcetest.Recorder);
// seen lists the updates until has taken so far.
type watcher struct {
	*sourcetest.Recorder
	t    *testing.T
	seen []discovery.Update
}

func watch(t *testing.T, src *Source) *watcher {
	t.Helper()
	return &watcher{Recorder: sourcetest.Watch(t, src, 1024, waitTimeout), t: t}
}

// until waits for an update satisfying ok and returns it with the time it
// took; it fails the test at the deadline.
func (w *watcher) until(what string, ok func(discovery.Update) bool) (discovery.Update, time.Duration) {
	w.t.Helper()
	u, d := w.Until(what, ok)
	w.seen = w.Since(0)
	return u, d
}

// set waits for a good update whose addresses are exactly addrs.
func (w *watcher) set(addrs ...string) (discovery.Update, time.Duration) {
	w.t.Helper()
	slices.Sort(addrs)
	return w.until("set "+strings.Join(addrs, ","), func(u discovery.Update) bool {
		return u.Err == nil && slices.Equal(addrsOf(u), addrs)
	})
}

func render(u discovery.Update) string { return sourcetest.Render(u) }

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration { return sourcetest.Percentile(ds, p) }

// poll calls ok every 20ms until it returns true or the deadline passes.
func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	sourcetest.Poll(t, waitTimeout, what, ok)
}
