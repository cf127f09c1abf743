package gateway

import (
	"fmt"
	"slices"
	"time"

	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/state"
)

// The staged publish engine: the canary rollout engine (rollout.go)
// applied to a gateway group's configuration. The staged sidecars play the
// canary, the group's other sidecars the primary; their traffic comes from
// the sidecars' reports. Every sidecar of the group evaluates the running
// stage; a decision is a check-and-set on the group's head, so the fleet
// takes each one once.

// decideStage evaluates h's running stage against the group's reports at
// now and edits h: a rollback (a staged sidecar failed to apply the
// version, or the staged sidecars' error rate exceeds the others' by more
// than the bound), the next step, or completion. It reports what it did
// ("" and false: nothing).
//
// A step is taken once every staged sidecar that reports runs the version
// cleanly, the step held for Interval, and the staged sidecars served
// MinRequests during it. Without steps left, a share of 100% (or the
// last step) completes: the version becomes the group's stable one.
// Without steps at all, the share only grows by hand (POST /fleet/stage).
func decideStage(h *state.Head, reports []state.Report, now time.Time) (string, bool) {
	st := h.Stage
	if st == nil || st.State != state.StageRunning {
		return "", false
	}
	var staged, rest proxy.RoleSnapshot
	allOn := true
	for _, r := range reports {
		d := since(r.Traffic, st.Baseline[r.ID])
		if st.Selects(r.ID) {
			if r.Target == st.Version && !r.Applied && r.Error != "" {
				return stopStage(h, now, fmt.Sprintf("sidecar %s could not apply version %d: %s", r.ID, st.Version, r.Error)), true
			}
			if r.Version != st.Version || !r.Applied {
				allOn = false
				continue
			}
			staged.Requests += d.Requests
			staged.Errors += d.Errors
		} else if r.Version == st.From {
			rest.Requests += d.Requests
			rest.Errors += d.Errors
		}
	}
	bounds := &state.Rollout{MaxErrorRateIncrease: st.MaxErrorRateIncrease, MinRequests: st.MinRequests}
	if reason := breach(bounds, rest, staged); reason != "" {
		return stopStage(h, now, "staged sidecars out of bounds: "+reason), true
	}
	held := now.Sub(time.UnixMilli(st.StepSince)) >= time.Duration(st.Interval)
	if !allOn || !held || staged.Requests < int64(st.MinRequests) {
		return "", false
	}
	switch {
	case st.Step < len(st.Steps):
		st.Percent = st.Steps[st.Step]
		st.Step++
		st.StepSince, st.UpdatedAt = now.UnixMilli(), now.Unix()
		st.Baseline = baselineOf(reports)
		return fmt.Sprintf("staged publish of version %d widened to %g%%", st.Version, st.Percent), true
	case st.Percent >= 100 || len(st.Steps) > 0:
		h.Version = st.Version
		st.State, st.UpdatedAt = state.StageCompleted, now.Unix()
		return fmt.Sprintf("staged publish of version %d completed: the whole group runs it", st.Version), true
	}
	return "", false
}

// stopStage rolls h's stage back: its sidecars return to the stable
// version.
func stopStage(h *state.Head, now time.Time, reason string) string {
	h.Stage.State, h.Stage.Reason, h.Stage.UpdatedAt = state.StageRolledBack, reason, now.Unix()
	return fmt.Sprintf("staged publish of version %d rolled back: %s", h.Stage.Version, reason)
}

// widenStage grows h's running stage to percent (nil: unchanged) and
// takes in ids; a share never shrinks. The step restarts at now.
func widenStage(h *state.Head, percent *float64, ids []string, reports []state.Report, now time.Time) error {
	st := h.Stage
	if st == nil || st.State != state.StageRunning {
		return &state.RefusedError{Reason: "no staged publish is running"}
	}
	if percent != nil {
		if *percent < st.Percent {
			return &state.RefusedError{Reason: fmt.Sprintf("a stage only widens: it is at %g%%", st.Percent)}
		}
		st.Percent = *percent
		// Steps already passed are dropped.
		for st.Step < len(st.Steps) && st.Steps[st.Step] <= st.Percent {
			st.Step++
		}
	}
	for _, id := range ids {
		if !slices.Contains(st.Sidecars, id) {
			st.Sidecars = append(st.Sidecars, id)
		}
	}
	st.StepSince, st.UpdatedAt = now.UnixMilli(), now.Unix()
	st.Baseline = baselineOf(reports)
	return nil
}

// since is a sidecar's traffic since base (a restarted sidecar, whose
// counters went back, counts from 0).
func since(cur, base state.Traffic) state.Traffic {
	if cur.Requests < base.Requests || cur.Errors < base.Errors {
		return cur
	}
	return state.Traffic{Requests: cur.Requests - base.Requests, Errors: cur.Errors - base.Errors}
}

func baselineOf(reports []state.Report) map[string]state.Traffic {
	out := make(map[string]state.Traffic, len(reports))
	for _, r := range reports {
		out[r.ID] = r.Traffic
	}
	return out
}
