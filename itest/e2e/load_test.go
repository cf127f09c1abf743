package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// load is a closed-loop GET load on one URL: a fixed number of workers,
// each sending at most one request per pace, bounded by a request cap and
// a duration, whichever comes first (or an earlier stop).
type load struct {
	url      string
	max      int64
	pace     time.Duration
	deadline time.Time
	client   *http.Client

	claimed atomic.Int64 // requests started
	stopCh  chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
	doneCh  chan struct{} // closed when every worker has returned

	mu         sync.Mutex
	done       int
	failed     int
	byInstance map[string]int
	errors     []string // the first few failures
}

// loadStats is what a load saw.
type loadStats struct {
	Done, Failed int
	ByInstance   map[string]int
	Errors       []string
}

// loadPace spaces each worker's requests: 4 workers send at most 800
// requests/s, so a request cap is not reached before the time bound.
const loadPace = 5 * time.Millisecond

// startLoad starts workers sending GET url until maxRequests have been
// sent, maxDuration has passed, or Stop.
func startLoad(url string, workers int, maxRequests int64, maxDuration time.Duration) *load {
	l := &load{
		url:      url,
		max:      maxRequests,
		pace:     loadPace,
		deadline: time.Now().Add(maxDuration),
		// Longer than the client sidecar's worst case: a partitioned
		// target's read timeout (2s) plus retries on healthy targets.
		client:     &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}},
		stopCh:     make(chan struct{}),
		doneCh:     make(chan struct{}),
		byInstance: map[string]int{},
	}
	for range workers {
		l.wg.Add(1)
		go l.worker()
	}
	go func() { l.wg.Wait(); close(l.doneCh) }()
	return l
}

func (l *load) worker() {
	defer l.wg.Done()
	tick := time.NewTicker(l.pace)
	defer tick.Stop()
	for {
		select {
		case <-l.stopCh:
			return
		case <-tick.C:
		}
		if time.Now().After(l.deadline) || l.claimed.Add(1) > l.max {
			return
		}
		instance, err := l.get()
		l.mu.Lock()
		l.done++
		if err != nil {
			l.failed++
			if len(l.errors) < 10 {
				l.errors = append(l.errors, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
			}
		} else {
			l.byInstance[instance]++
		}
		l.mu.Unlock()
	}
}

// get sends one request; a success is a 200 naming the instance.
func (l *load) get() (string, error) {
	resp, err := l.client.Get(l.url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	var r struct{ Instance string }
	if err := json.Unmarshal(body, &r); err != nil || r.Instance == "" {
		return "", fmt.Errorf("no instance in %.200s", body)
	}
	return r.Instance, nil
}

// Stats returns a snapshot of what the load saw so far.
func (l *load) Stats() loadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	by := make(map[string]int, len(l.byInstance))
	for k, v := range l.byInstance {
		by[k] = v
	}
	return loadStats{Done: l.done, Failed: l.failed, ByInstance: by, Errors: append([]string(nil), l.errors...)}
}

// WaitDone waits until at least n requests completed, or the load ended,
// or d passed; it reports whether n were reached.
func (l *load) WaitDone(n int, d time.Duration) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if l.Stats().Done >= n {
			return true
		}
		if l.finished() {
			return l.Stats().Done >= n
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// finished reports whether every worker has returned.
func (l *load) finished() bool {
	select {
	case <-l.doneCh:
		return true
	default:
		return false
	}
}

// Wait waits for the load to reach its request cap or its duration and
// returns the final stats.
func (l *load) Wait() loadStats {
	<-l.doneCh
	l.client.CloseIdleConnections()
	return l.Stats()
}

// Stop ends the load, waits for the workers and returns the final stats.
func (l *load) Stop() loadStats {
	l.stopped.Do(func() { close(l.stopCh) })
	<-l.doneCh
	l.client.CloseIdleConnections()
	return l.Stats()
}

// sub returns how many requests each instance got between two snapshots.
func sub(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}
