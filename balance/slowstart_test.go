package balance

import (
	"math"
	"testing"
	"time"
)

func TestSlowStartWeight(t *testing.T) {
	const window = 60 * time.Second
	tests := []struct {
		desc       string
		weight     uint32
		elapsed    time.Duration
		window     time.Duration
		aggression float64
		minPercent float64
		want       uint32
	}{
		{desc: "start: min percent", weight: 100, elapsed: 0, window: window, aggression: 1, minPercent: 10, want: 10},
		{desc: "linear quarter", weight: 100, elapsed: 15 * time.Second, window: window, aggression: 1, minPercent: 10, want: 25},
		{desc: "linear half", weight: 100, elapsed: 30 * time.Second, window: window, aggression: 1, minPercent: 10, want: 50},
		{desc: "below min percent", weight: 100, elapsed: 3 * time.Second, window: window, aggression: 1, minPercent: 10, want: 10},
		{desc: "aggression 2 ramps faster: sqrt(1/4)", weight: 100, elapsed: 15 * time.Second, window: window, aggression: 2, minPercent: 0, want: 50},
		{desc: "aggression 0.5 ramps slower: (1/2)^2", weight: 100, elapsed: 30 * time.Second, window: window, aggression: 0.5, minPercent: 0, want: 25},
		{desc: "rounded to nearest", weight: 100, elapsed: 30 * time.Second, window: window, aggression: 2, minPercent: 0, want: 71}, // 70.71
		{desc: "at least 1", weight: 3, elapsed: 0, window: window, aggression: 1, minPercent: 0, want: 1},
		{desc: "window over: full weight", weight: 100, elapsed: window, window: window, aggression: 1, minPercent: 10, want: 100},
		{desc: "long after: full weight", weight: 100, elapsed: time.Hour, window: window, aggression: 1, minPercent: 10, want: 100},
		{desc: "no window: full weight", weight: 100, elapsed: 0, window: 0, aggression: 1, minPercent: 10, want: 100},
		{desc: "aggression 0 taken as 1", weight: 100, elapsed: 30 * time.Second, window: window, aggression: 0, minPercent: 0, want: 50},
		{desc: "aggression NaN taken as 1", weight: 100, elapsed: 30 * time.Second, window: window, aggression: math.NaN(), minPercent: 0, want: 50},
		{desc: "negative elapsed counts as 0", weight: 100, elapsed: -time.Second, window: window, aggression: 1, minPercent: 20, want: 20},
		{desc: "min percent above 100 clamped", weight: 100, elapsed: 0, window: window, aggression: 1, minPercent: 250, want: 100},
		{desc: "weight 0 stays 0", weight: 0, elapsed: 0, window: window, aggression: 1, minPercent: 10, want: 0},
		{desc: "max weight", weight: 65535, elapsed: 30 * time.Second, window: window, aggression: 1, minPercent: 10, want: 32768}, // 32767.5
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := SlowStartWeight(tc.weight, tc.elapsed, tc.window, tc.aggression, tc.minPercent); got != tc.want {
				t.Errorf("SlowStartWeight = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSlowStartRampIsMonotonic(t *testing.T) {
	for _, aggression := range []float64{0.3, 1, 1.5, 4} {
		prev := uint32(0)
		for e := time.Duration(0); e <= 61*time.Second; e += 250 * time.Millisecond {
			w := SlowStartWeight(1000, e, time.Minute, aggression, 5)
			if w < prev || w < 1 || w > 1000 {
				t.Fatalf("aggression %v: weight %d at %v after %d", aggression, w, e, prev)
			}
			prev = w
		}
		if prev != 1000 {
			t.Fatalf("aggression %v: ramp ended at %d", aggression, prev)
		}
	}
}
