package discovery

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff returns the delay before retry number attempt (1-based): lo
// doubled for every attempt after the first, capped at hi, then passed
// through jitter (FullJitter, or an injected one in tests). Attempt 0 or
// less means no delay.
func Backoff(attempt int, lo, hi time.Duration, jitter func(time.Duration) time.Duration) time.Duration {
	if attempt < 1 {
		return 0
	}
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	return jitter(min(d, hi))
}

// FullJitter returns a uniform duration in [0, d] (AWS's "full jitter":
// retries of many clients spread out instead of arriving in waves).
func FullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// Sleep waits d or until ctx ends; it reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
