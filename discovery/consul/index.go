package consul

import "time"

// NextIndex returns the wait index for the query that follows an answer
// carrying index got, asked with wait index prev (Consul's blocking query
// rules): an index that went backwards resets to 0 (the next query answers
// at once with fresh state), and an index of 0 becomes 1, so 0 is never
// sent twice in a row as a blocking cursor.
func NextIndex(prev, got uint64) uint64 {
	switch {
	case got < prev:
		return 0
	case got == 0:
		return 1
	}
	return got
}

// limiter is a token bucket: burst tokens, one more every `every`.
type limiter struct {
	every  time.Duration
	burst  int
	tokens float64
	last   time.Time
	primed bool
}

// reserve takes a token at time now and returns how long the caller must
// wait before using it (0 when a token was available).
func (l *limiter) reserve(now time.Time) time.Duration {
	if l.every <= 0 {
		return 0
	}
	if !l.primed {
		l.tokens, l.last, l.primed = float64(l.burst), now, true
	}
	if el := now.Sub(l.last); el > 0 {
		l.tokens += float64(el) / float64(l.every)
		if l.tokens > float64(l.burst) {
			l.tokens = float64(l.burst)
		}
		l.last = now
	}
	l.tokens--
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens * float64(l.every))
}
