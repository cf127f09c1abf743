package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/state"
)

// stagedHead: stable version 1, version 2 staged on a1 with steps.
func stagedHead(t0 time.Time, steps ...float64) *state.Head {
	return &state.Head{Version: 1, Latest: 2, Stage: &state.Stage{Version: 2, From: 1, Sidecars: []string{"a1"}, Steps: steps,
		Interval: state.Duration(10 * time.Second), MaxErrorRateIncrease: 0.05, MinRequests: 10, State: state.StageRunning,
		StepSince: t0.UnixMilli(), Baseline: map[string]state.Traffic{}}}
}

func rep(id string, version uint64, applied bool, req, errs int64) state.Report {
	r := state.Report{ID: id, Version: version, Target: version, Applied: applied, Traffic: state.Traffic{Requests: req, Errors: errs}}
	if !applied {
		r.Target, r.Error = 2, "route \"x\": service \"nope\" not found"
	}
	return r
}

func TestDecideStageWidensThenCompletes(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	h := stagedHead(t0, 100)
	reports := []state.Report{rep("a1", 2, true, 50, 0), rep("a2", 1, true, 50, 0), rep("a3", 1, true, 50, 0)}
	if msg, changed := decideStage(h, reports, t0.Add(9*time.Second)); changed {
		t.Fatalf("before the interval: %s", msg)
	}
	msg, changed := decideStage(h, reports, t0.Add(10*time.Second))
	if !changed || h.Stage.Percent != 100 || h.Stage.Step != 1 || h.Version != 1 {
		t.Fatalf("after the interval: %q %+v", msg, h.Stage)
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		if h.Target(id) != 2 {
			t.Fatalf("%s targets %d at 100%%", id, h.Target(id))
		}
	}
	// The widened share has not applied yet: no completion.
	t1 := t0.Add(10 * time.Second)
	if msg, changed := decideStage(h, reports, t1.Add(20*time.Second)); changed {
		t.Fatalf("completed before the share ran it: %s", msg)
	}
	// Everyone on 2, enough traffic since the step: completed.
	reports = []state.Report{rep("a1", 2, true, 70, 0), rep("a2", 2, true, 70, 0), rep("a3", 2, true, 70, 0)}
	msg, changed = decideStage(h, reports, t1.Add(10*time.Second))
	if !changed || h.Stage.State != state.StageCompleted || h.Version != 2 {
		t.Fatalf("completion: %q %+v %d", msg, h.Stage, h.Version)
	}
	if h.Target("a2") != 2 {
		t.Fatal("a completed stage's version is the stable one")
	}
}

func TestDecideStageRollsBackOnApplyFailure(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	h := stagedHead(t0, 100)
	reports := []state.Report{rep("a1", 1, false, 5, 0), rep("a2", 1, true, 50, 0)}
	msg, changed := decideStage(h, reports, t0.Add(time.Second))
	if !changed || h.Stage.State != state.StageRolledBack || !strings.Contains(h.Stage.Reason, "a1 could not apply version 2") {
		t.Fatalf("%q %+v", msg, h.Stage)
	}
	if h.Target("a1") != 1 || h.Version != 1 {
		t.Fatal("a rolled-back stage's sidecars return to the stable version")
	}
	// A stopped stage takes no more decisions.
	if _, changed := decideStage(h, reports, t0.Add(time.Hour)); changed {
		t.Fatal("decided on a stopped stage")
	}
}

func TestDecideStageRollsBackOnErrorRate(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	h := stagedHead(t0, 100)
	// Counters at the step's start: only what follows counts.
	h.Stage.Baseline = map[string]state.Traffic{"a1": {Requests: 1000, Errors: 900}, "a2": {Requests: 1000}}
	reports := []state.Report{rep("a1", 2, true, 1020, 901), rep("a2", 1, true, 1100, 1)}
	if msg, changed := decideStage(h, reports, t0.Add(time.Second)); changed {
		t.Fatalf("1/20 errors vs 1/100 is within 5 points: %s", msg)
	}
	reports = []state.Report{rep("a1", 2, true, 1020, 904), rep("a2", 1, true, 1100, 1)}
	msg, changed := decideStage(h, reports, t0.Add(2*time.Second))
	if !changed || h.Stage.State != state.StageRolledBack || !strings.Contains(h.Stage.Reason, "error rate") {
		t.Fatalf("%q %+v", msg, h.Stage)
	}
}

func TestDecideStageWithoutStepsWaitsForAHand(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	h := stagedHead(t0)
	reports := []state.Report{rep("a1", 2, true, 500, 0), rep("a2", 1, true, 500, 0)}
	if msg, changed := decideStage(h, reports, t0.Add(time.Hour)); changed {
		t.Fatalf("a stage without steps moved by itself: %s", msg)
	}
	p := 100.0
	if err := widenStage(h, &p, nil, reports, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	low := 10.0
	if err := widenStage(h, &low, nil, reports, t0.Add(time.Hour)); err == nil {
		t.Fatal("a stage narrowed")
	}
	reports = []state.Report{rep("a1", 2, true, 520, 0), rep("a2", 2, true, 520, 0)}
	if _, changed := decideStage(h, reports, t0.Add(time.Hour+10*time.Second)); !changed || h.Stage.State != state.StageCompleted {
		t.Fatalf("at 100%% held for the interval: %+v", h.Stage)
	}
}

func TestBucketIsStable(t *testing.T) {
	st := &state.Stage{Percent: 50}
	in := 0
	for i := range 1000 {
		id := "sidecar-" + string(rune('a'+i%26)) + strings.Repeat("x", i%7) + string(rune('0'+i%10))
		if state.Bucket(id) != state.Bucket(id) {
			t.Fatal("unstable")
		}
		if st.Selects(id) {
			in++
			wide := &state.Stage{Percent: 80}
			if !wide.Selects(id) {
				t.Fatalf("%s left the share when it widened", id)
			}
		}
	}
	if in == 0 || in == 1000 {
		t.Fatalf("50%% selected %d of 1000", in)
	}
}
