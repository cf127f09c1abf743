package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/state"
)

// The rollout engine advances canary rollouts step by step while the
// canary's error rate and p99 stay within the plan's bounds relative to the
// primary, and rolls back to 0 % (with the reason, logged) when they do
// not. Every decision is an ordinary admin change (Mutate): persisted,
// fleet-wide, all or nothing.

// rolloutTick is how often running rollouts are evaluated.
const rolloutTick = 250 * time.Millisecond

// rolloutBase remembers the counters at the start of a rollout plan and of
// its current step, so a step is judged on its own traffic and the plan's
// figures cover the plan only. Once the rollout stops running, final holds
// the counters of that moment.
type rolloutBase struct {
	step  int
	since int64     // the step's StepSince (Unix seconds)
	seen  time.Time // when this gateway started counting the step
	plan  rolePair  // at the plan's start (as seen here)
	start rolePair  // at the step's start
	// final, when set, froze the counters: the rollout stopped in state
	// stopped.
	final   *rolePair
	stopped string
}

// rolePair is a snapshot of both roles' counters.
type rolePair struct{ primary, canary proxy.RoleSnapshot }

func (g *Gateway) snapshot(st *serviceStats) rolePair {
	return rolePair{primary: st.primary.Snapshot(), canary: st.canary.Snapshot()}
}

// runRollouts evaluates rollouts until ctx ends.
func (g *Gateway) runRollouts(ctx context.Context) {
	t := time.NewTicker(rolloutTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.evaluateRollouts(ctx, now)
		}
	}
}

// verdict is what evaluating one rollout decided.
type verdict struct {
	service string
	advance bool
	reason  string   // non-empty: roll back
	at      rolePair // the counters the verdict was reached on
}

func (g *Gateway) evaluateRollouts(ctx context.Context, now time.Time) {
	if g.draftMode() {
		return // decisions would land in the group's draft (see README: fleet)
	}
	var verdicts []verdict
	g.mu.Lock()
	if g.pending != nil {
		// The fleet's layer does not build here: the sidecars where it
		// does run its rollouts (Mutate would refuse every decision).
		g.mu.Unlock()
		return
	}
	for name := range g.stepBases {
		if g.doc.Rollouts[name] == nil {
			delete(g.stepBases, name)
		}
	}
	for name, r := range g.doc.Rollouts {
		st := g.stats[name]
		if st == nil {
			continue
		}
		base, ok := g.stepBases[name]
		if r.State != state.RolloutRunning {
			if ok && base.final == nil {
				cur := g.snapshot(st)
				base.final, base.stopped = &cur, r.State
				g.stepBases[name] = base
			}
			continue
		}
		cur := g.snapshot(st)
		switch {
		case !ok || base.final != nil && !(base.stopped == state.RolloutPaused && base.step == r.Step):
			// A new plan (or the first look at one).
			base = rolloutBase{step: r.Step, since: r.StepSince, seen: now, plan: cur, start: cur}
			g.stepBases[name] = base
		case base.final != nil || base.step != r.Step || base.since != r.StepSince:
			// Resumed, or a new step: the plan's start stays.
			base = rolloutBase{step: r.Step, since: r.StepSince, seen: now, plan: base.plan, start: cur}
			g.stepBases[name] = base
		}
		pri, can := cur.primary.Sub(base.start.primary), cur.canary.Sub(base.start.canary)
		if reason := breach(r, pri, can); reason != "" {
			verdicts = append(verdicts, verdict{service: name, reason: reason, at: cur})
			continue
		}
		// StepSince has a resolution of a second: the step holds from the
		// later of it and when this gateway started counting the step.
		held := time.Unix(r.StepSince, 0)
		if base.seen.After(held) {
			held = base.seen
		}
		if now.Sub(held) >= time.Duration(r.Interval) && can.Requests >= int64(r.MinRequests) {
			verdicts = append(verdicts, verdict{service: name, advance: true, at: cur})
		}
	}
	g.mu.Unlock()
	for _, v := range verdicts {
		g.applyVerdict(ctx, v, now)
	}
}

// breach returns why the canary is out of bounds, or "".
func breach(r *state.Rollout, pri, can proxy.RoleSnapshot) string {
	if can.Requests < int64(max(r.MinRequests, 1)) {
		return ""
	}
	if d := can.ErrorRate() - pri.ErrorRate(); d > r.MaxErrorRateIncrease {
		return fmt.Sprintf("canary error rate %.2f%% exceeds the primary's %.2f%% by more than %.2f points",
			100*can.ErrorRate(), 100*pri.ErrorRate(), 100*r.MaxErrorRateIncrease)
	}
	if r.MaxP99Ratio > 0 && pri.Requests > 0 {
		cp, pp := can.P99(), pri.P99()
		if pp > 0 && float64(cp) > r.MaxP99Ratio*float64(pp) {
			return fmt.Sprintf("canary p99 %s is more than %.2f× the primary's %s", cp, r.MaxP99Ratio, pp)
		}
	}
	return ""
}

func (g *Gateway) applyVerdict(ctx context.Context, v verdict, now time.Time) {
	log := g.log.With().Str("service", v.service).Logger()
	var msg, stopped string
	err := g.Mutate(ctx, func(d *state.Doc) error {
		r, c := d.Rollouts[v.service], d.Canaries[v.service]
		if r == nil || c == nil || r.State != state.RolloutRunning {
			return errNoop
		}
		r.UpdatedAt = now.Unix()
		switch {
		case v.reason != "":
			r.State, r.Reason = state.RolloutRolledBack, v.reason
			c.Percent = 0
			stopped = r.State
			msg = "rollout rolled back: " + v.reason
		case r.Step+1 >= len(r.Steps):
			r.State = state.RolloutCompleted
			stopped = r.State
			msg = fmt.Sprintf("rollout completed at %g%%", c.Percent)
		default:
			r.Step++
			r.StepSince = now.Unix()
			c.Percent = r.Steps[r.Step]
			msg = fmt.Sprintf("rollout advanced to step %d: %g%%", r.Step+1, c.Percent)
		}
		c.UpdatedAt = now.Unix()
		return nil
	})
	if err == nil && stopped != "" {
		// The figures reported from now on are those the verdict was
		// reached on, so a rollback reason and the status agree.
		g.mu.Lock()
		if b, ok := g.stepBases[v.service]; ok && b.final == nil {
			b.final, b.stopped = &v.at, stopped
			g.stepBases[v.service] = b
		}
		g.mu.Unlock()
	}
	switch {
	case err == errNoop:
	case err != nil:
		log.Error().Err(err).Msg("rollout: could not record the decision")
	case v.reason != "":
		log.Warn().Str("reason", v.reason).Msg(msg)
	default:
		log.Info().Msg(msg)
	}
}

// errNoop aborts a Mutate that found nothing to do.
var errNoop = &admin.Error{Message: "nothing to do"}

// RolloutStatus implements admin.Controller.
func (g *Gateway) RolloutStatus(service string) (admin.RolloutStatus, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.stats[service]
	if st == nil {
		return admin.RolloutStatus{}, false
	}
	cur := g.snapshot(st)
	step, plan := cur, cur
	if b, ok := g.stepBases[service]; ok {
		if b.final != nil {
			cur = *b.final
		}
		step = rolePair{primary: cur.primary.Sub(b.start.primary), canary: cur.canary.Sub(b.start.canary)}
		plan = rolePair{primary: cur.primary.Sub(b.plan.primary), canary: cur.canary.Sub(b.plan.canary)}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return admin.RolloutStatus{
		PrimaryRequestsStep: step.primary.Requests, PrimaryErrorRateStep: step.primary.ErrorRate(), PrimaryP99MsStep: ms(step.primary.P99()),
		CanaryRequestsStep: step.canary.Requests, CanaryErrorRateStep: step.canary.ErrorRate(), CanaryP99MsStep: ms(step.canary.P99()),
		PrimaryRequestsTotal: plan.primary.Requests, PrimaryErrorRateTotal: plan.primary.ErrorRate(), PrimaryP99MsTotal: ms(plan.primary.P99()),
		CanaryRequestsTotal: plan.canary.Requests, CanaryErrorRateTotal: plan.canary.ErrorRate(), CanaryP99MsTotal: ms(plan.canary.P99()),
	}, true
}
