package state_test

import (
	"encoding/json"
	"testing"

	"github.com/outrigger-gw/outrigger/state"
)

// TestRolloutStepSinceSeconds: step_since is in Unix seconds, like every
// timestamp; one saved in nanoseconds by an earlier version reads as
// seconds.
func TestRolloutStepSinceSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{`{"state": "running", "step_since": 1700000000, "updated_at": 1700000000}`, 1700000000},
		{`{"state": "running", "step_since": 1700000000123456789, "updated_at": 1700000000}`, 1700000000},
	} {
		var r state.Rollout
		if err := json.Unmarshal([]byte(tc.in), &r); err != nil {
			t.Fatal(err)
		}
		if r.StepSince != tc.want || r.UpdatedAt != 1700000000 || r.State != state.RolloutRunning {
			t.Errorf("%s: got %+v, want step_since %d", tc.in, r, tc.want)
		}
	}
}
