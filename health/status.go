package health

import "time"

// Status is a target's effective health as last published, with why and
// since when it is so. It is recorded at every state change (never per
// probe or per request) and read without a lock.
type Status struct {
	// Healthy is the effective health (what Healthy returns).
	Healthy bool `json:"healthy"`
	// Cause and Since say why and when the effective health last changed
	// (CauseInitial and the time the target was added until it first
	// does). A change of the checks' verdict that a manual mark masks
	// leaves them alone.
	Cause Cause     `json:"cause"`
	Since time.Time `json:"since"`
	// Checks is the checks' own verdict, Mark the manual mark.
	Checks bool `json:"checks_healthy"`
	Mark   Mark `json:"mark"`
	// Ejected, Ejections and EjectedUntil are as in TargetState, as of the
	// last state change (Ejections decays lazily: States is exact).
	Ejected      bool      `json:"ejected"`
	Ejections    int       `json:"ejections"`
	EjectedUntil time.Time `json:"ejected_until"`
}

// Status returns addr's status and whether addr is a target. It takes no
// lock and allocates nothing.
func (c *Checker) Status(addr string) (Status, bool) {
	t := c.lookup(addr)
	if t == nil {
		return Status{}, false
	}
	if s := t.status.Load(); s != nil {
		return *s, true
	}
	return Status{Healthy: t.eff.Load()}, true
}

// storeStatus publishes t's status after a state change; changed says the
// effective health flipped, with cause at now. Caller holds t.mu.
func (t *target) storeStatus(changed bool, cause Cause, now time.Time) {
	s := Status{Healthy: t.effective(), Cause: cause, Since: now, Checks: t.healthy, Mark: t.mark,
		Ejected: t.ejected, Ejections: t.ejections, EjectedUntil: t.ejectedUntil}
	if prev := t.status.Load(); prev != nil && !changed {
		s.Cause, s.Since = prev.Cause, prev.Since
	}
	t.status.Store(&s)
}
