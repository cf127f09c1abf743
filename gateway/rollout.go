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

// stepBase remembers the counters at the start of a rollout step, so a
// step is judged on its own traffic.
type stepBase struct {
	step    int
	since   int64
	primary proxy.RoleSnapshot
	canary  proxy.RoleSnapshot
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
	reason  string // non-empty: roll back
}

func (g *Gateway) evaluateRollouts(ctx context.Context, now time.Time) {
	var verdicts []verdict
	g.mu.Lock()
	if g.pending != nil {
		// The fleet's layer does not build here: the sidecars where it
		// does run its rollouts (Mutate would refuse every decision).
		g.mu.Unlock()
		return
	}
	for name, r := range g.doc.Rollouts {
		if r.State != state.RolloutRunning {
			delete(g.stepBases, name)
			continue
		}
		st := g.stats[name]
		if st == nil {
			continue
		}
		base, ok := g.stepBases[name]
		if !ok || base.step != r.Step || base.since != r.StepSince {
			base = stepBase{step: r.Step, since: r.StepSince, primary: st.primary.Snapshot(), canary: st.canary.Snapshot()}
			g.stepBases[name] = base
		}
		pri, can := st.primary.Snapshot().Sub(base.primary), st.canary.Snapshot().Sub(base.canary)
		if reason := breach(r, pri, can); reason != "" {
			verdicts = append(verdicts, verdict{service: name, reason: reason})
			continue
		}
		if now.Sub(time.Unix(0, r.StepSince)) >= time.Duration(r.Interval) && can.Requests >= int64(r.MinRequests) {
			verdicts = append(verdicts, verdict{service: name, advance: true})
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
	var msg string
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
			msg = "rollout rolled back: " + v.reason
		case r.Step+1 >= len(r.Steps):
			r.State = state.RolloutCompleted
			msg = fmt.Sprintf("rollout completed at %g%%", c.Percent)
		default:
			r.Step++
			r.StepSince = now.UnixNano()
			c.Percent = r.Steps[r.Step]
			msg = fmt.Sprintf("rollout advanced to step %d: %g%%", r.Step+1, c.Percent)
		}
		c.UpdatedAt = now.Unix()
		return nil
	})
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
	pri, can := st.primary.Snapshot(), st.canary.Snapshot()
	if b, ok := g.stepBases[service]; ok {
		pri, can = pri.Sub(b.primary), can.Sub(b.canary)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return admin.RolloutStatus{
		PrimaryRequests: pri.Requests, PrimaryErrorRate: pri.ErrorRate(), PrimaryP99Ms: ms(pri.P99()),
		CanaryRequests: can.Requests, CanaryErrorRate: can.ErrorRate(), CanaryP99Ms: ms(can.P99()),
	}, true
}
