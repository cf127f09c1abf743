package health

import (
	"fmt"
	"time"
)

// Result is the outcome of one proxied request, as reported to Observe.
//
// Timeout wins over TCPFailure, which wins over Status. With neither flag
// set, Status is classified with the passive status lists: healthy list →
// success, unhealthy list → HTTP failure, anything else (including 0, "no
// status and no failure", e.g. the client went away) is ignored and leaves
// every counter untouched.
type Result struct {
	// Status is the HTTP status received, 0 if none.
	Status int
	// TCPFailure means the connection could not be established or was
	// refused or reset before a response arrived.
	TCPFailure bool
	// Timeout means the target did not answer in time.
	Timeout bool
	// Failure counts the result as an HTTP failure whatever Status (a
	// gRPC call that ended with a status the upstream holds against the
	// target).
	Failure bool
}

// Mark is a manual override of a target's health.
type Mark uint8

// Manual marks.
const (
	// MarkNone lets the checks decide.
	MarkNone Mark = iota
	// MarkHealthy forces the target healthy.
	MarkHealthy
	// MarkUnhealthy forces the target unhealthy.
	MarkUnhealthy
)

// String returns "none", "healthy" or "unhealthy".
func (m Mark) String() string {
	switch m {
	case MarkNone:
		return "none"
	case MarkHealthy:
		return "healthy"
	case MarkUnhealthy:
		return "unhealthy"
	}
	return fmt.Sprintf("Mark(%d)", uint8(m))
}

// MarshalText implements encoding.TextMarshaler.
func (m Mark) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (see ParseMark).
func (m *Mark) UnmarshalText(b []byte) error {
	v, err := ParseMark(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseMark parses "none" (or ""), "healthy" or "unhealthy".
func ParseMark(s string) (Mark, error) {
	switch s {
	case "", "none":
		return MarkNone, nil
	case "healthy":
		return MarkHealthy, nil
	case "unhealthy":
		return MarkUnhealthy, nil
	}
	return MarkNone, fmt.Errorf("health: unknown mark %q (want none, healthy or unhealthy)", s)
}

// Cause says why a target's state last changed (TargetState.Cause) or why
// an Event was emitted.
type Cause uint8

// Causes.
const (
	// CauseInitial: the target was added and starts healthy.
	CauseInitial Cause = iota
	// CauseActive: active probe counters crossed a threshold.
	CauseActive
	// CausePassive: passive counters crossed a threshold (an ejection, or
	// an early return from a timed ejection).
	CausePassive
	// CauseManual: a manual mark was set or cleared.
	CauseManual
	// CauseEjectionExpired: a timed passive ejection ran out.
	CauseEjectionExpired
	// CauseEjectionRefused: a passive ejection was refused by
	// MaxEjectionPercent; the target stays healthy and its passive
	// counters are reset. Not a state change, reported for visibility.
	CauseEjectionRefused
	// CauseSuccessRate: the target's success rate was an outlier among
	// the upstream's (success-rate ejection).
	CauseSuccessRate
)

// String returns the cause's name as used in logs and the admin API.
func (c Cause) String() string {
	switch c {
	case CauseInitial:
		return "initial"
	case CauseActive:
		return "active"
	case CausePassive:
		return "passive"
	case CauseManual:
		return "manual"
	case CauseEjectionExpired:
		return "ejection-expired"
	case CauseEjectionRefused:
		return "ejection-refused"
	case CauseSuccessRate:
		return "success-rate"
	}
	return fmt.Sprintf("Cause(%d)", uint8(c))
}

// MarshalText implements encoding.TextMarshaler.
func (c Cause) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Event reports one change of a target's state: the checks' verdict
// flipped, a manual mark changed, or a passive ejection was refused. It is
// never emitted per probe or per request.
type Event struct {
	Addr  string
	At    time.Time
	Cause Cause
	// Old and New are the effective health (manual mark applied) before
	// and after. They are equal when a mark masks a change of the checks'
	// verdict, when a mark does not change the outcome, and for
	// CauseEjectionRefused.
	Old, New bool
	// Checks is the checks' own verdict after the event.
	Checks bool
	// Mark is the manual mark after the event.
	Mark Mark
	// Ejections and EjectedUntil are as in TargetState.
	Ejections    int
	EjectedUntil time.Time
}

// Counters are one checker's consecutive-outcome counters for a target.
type Counters struct {
	Successes    int `json:"successes"`
	HTTPFailures int `json:"http_failures"`
	TCPFailures  int `json:"tcp_failures"`
	Timeouts     int `json:"timeouts"`
}

// TargetState is a snapshot of one target for the admin API.
type TargetState struct {
	Addr string `json:"addr"`
	// Healthy is the effective health (what Healthy returns).
	Healthy bool `json:"healthy"`
	// Checks is the checks' own verdict, ignoring the manual mark.
	Checks bool `json:"checks_healthy"`
	// Cause and Since say why and when Checks last changed.
	Cause Cause     `json:"cause"`
	Since time.Time `json:"since"`
	Mark  Mark      `json:"mark"`
	// Active and Passive are the counters of each checker.
	Active  Counters `json:"active"`
	Passive Counters `json:"passive"`
	// Ejected reports a passive ejection in force (the target counts
	// against MaxEjectionPercent).
	Ejected bool `json:"ejected"`
	// Ejections is the number of recent passive ejections (it sizes the
	// next timed ejection and decays by one per BaseEjectionTime spent
	// healthy).
	Ejections int `json:"ejections"`
	// EjectedUntil is when a timed ejection ends; zero when the target is
	// not ejected or waits for active probes to bring it back.
	EjectedUntil time.Time `json:"ejected_until"`
	// SuccessRate is the target's last success-rate sample; nil without
	// success-rate ejection or before an interval judged it.
	SuccessRate *RateSample `json:"success_rate,omitempty"`
}

// Clock is the time source. The zero Options use real time; tests inject a
// fake one to drive probe intervals and ejection timers.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once, in its own goroutine or from whatever drives
	// the clock, after d. It must never call f before returning. A d <= 0
	// means as soon as possible.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a scheduled AfterFunc call.
type Timer interface {
	// Stop cancels the call. It returns true if it did, false if f has
	// already been started or is about to be (as time.Timer.Stop for
	// AfterFunc timers).
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
