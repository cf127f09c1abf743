package proxy

import (
	"time"
)

// Deadlines on the engine's connections without a runtime timer update per
// read or write.
//
// A timeout that restarts with every operation (read_timeout: the longest
// wait for one read; idle_timeout: the longest wait for the next request)
// is kept as a deadline pushed out by a slack beyond what is due, and set
// again only once what is due passes it. A timeout of d therefore fires
// between d and d+slack after the operation that last restarted it, never
// earlier; the slack is d/64 (under a second for the 60 s defaults), so a
// busy connection moves its deadline about once per slack instead of on
// every request.

// monoClock reads time as nanoseconds since base on the monotonic clock:
// one clock read, where time.Now takes two. The zero value is not usable.
type monoClock struct{ base time.Time }

func newMonoClock() monoClock { return monoClock{base: time.Now()} }

// now is the current time on the clock's scale.
func (c monoClock) now() int64 { return int64(time.Since(c.base)) }

// time converts a time on the clock's scale back to a time.Time.
func (c monoClock) time(t int64) time.Time { return c.base.Add(time.Duration(t)) }

// deadlineSlack is how far a rolling deadline of timeout d may run late.
func deadlineSlack(d time.Duration) int64 { return int64(d / 64) }

// deadline is the read or the write deadline set on one connection, as
// this side set it last. It belongs to the connection's owner.
type deadline struct {
	at int64 // on the owner's monoClock; 0: none
}

// roll makes sure the deadline falls between now+d and now+d+slack,
// setting it (to the latter) only when it does not.
func (dl *deadline) roll(set func(time.Time) error, clk monoClock, now int64, d time.Duration) {
	want := now + int64(d)
	if dl.at >= want && dl.at-want <= deadlineSlack(d) {
		return
	}
	dl.at = want + deadlineSlack(d)
	_ = set(clk.time(dl.at))
}

// exact sets the deadline to at (on clk's scale), as a fixed deadline
// (header_timeout, the wait for a 100 Continue) needs.
func (dl *deadline) exact(set func(time.Time) error, clk monoClock, at int64) {
	dl.at = at
	_ = set(clk.time(at))
}

// clear removes the deadline, when one is set.
func (dl *deadline) clear(set func(time.Time) error) {
	if dl.at != 0 {
		dl.at = 0
		_ = set(time.Time{})
	}
}
