package upstream

import (
	"sync"
	"testing"
	"time"
)

// The budget admits ratio × the window's requests plus MinPerSecond × ttl
// retries, and forgets requests and retries older than ttl.
func TestRetryBudgetWindow(t *testing.T) {
	var b Breakers
	b.SetBudget(Budget{Ratio: 0.5, MinPerSecond: 1, TTL: 2 * time.Second})
	t0 := time.Unix(1000, 0)
	for range 10 {
		b.RecordRequest(t0)
	}
	allowed := 0
	for range 20 {
		if b.AllowRetry(t0) {
			allowed++
		}
	}
	if allowed != 7 { // 0.5 × 10 + 1 × 2
		t.Fatalf("%d retries allowed, want 7", allowed)
	}
	// One second on, the first second is still in the window.
	if b.AllowRetry(t0.Add(time.Second)) {
		t.Fatal("a retry over the budget was allowed a second later")
	}
	// Past the ttl only the floor is left.
	t2 := t0.Add(2 * time.Second)
	if !b.AllowRetry(t2) || !b.AllowRetry(t2) || b.AllowRetry(t2) {
		t.Fatal("after the ttl the floor of 2 retries should be all there is")
	}
	// Off, every retry passes.
	b.SetBudget(Budget{})
	if !b.AllowRetry(t2) {
		t.Fatal("a retry was refused without a budget")
	}
}

// Limits hold under concurrent acquires and survive a limit change.
func TestBreakerLimits(t *testing.T) {
	var b Breakers
	b.SetLimits(Limits{MaxRequests: 5})
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b.AcquireRequest() {
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got != 5 {
		t.Fatalf("%d acquired, want 5", got)
	}
	b.SetLimits(Limits{MaxRequests: 6})
	if !b.AcquireRequest() || b.AcquireRequest() {
		t.Fatal("raising the limit to 6 should admit exactly one more")
	}
	b.SetLimits(Limits{})
	if !b.AcquireRequest() {
		t.Fatal("refused without a limit")
	}
	if n, _ := b.InProgress(); n != 7 {
		t.Fatalf("%d in progress, want 7", n)
	}
}
