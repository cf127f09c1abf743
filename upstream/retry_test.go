package upstream

import (
	"strconv"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/config"
)

// Every name the file accepts parses here, and means what Envoy's does.
func TestParseRetryOn(t *testing.T) {
	names := append(config.RetryOnConditions(), config.GRPCRetryOnConditions()...)
	names = append(names, strconv.Itoa(config.MinRetryStatus), strconv.Itoa(config.MaxRetryStatus))
	for _, n := range names {
		if _, err := ParseRetryOn([]string{n}); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := ParseRetryOn([]string{"600"}); err == nil {
		t.Error("600 parsed")
	}
	gw, _ := ParseRetryOn([]string{"gateway-error"})
	five, _ := ParseRetryOn([]string{"5xx"})
	st, _ := ParseRetryOn([]string{"503", "retriable-4xx"})
	grpc, _ := ParseRetryOn([]string{"resource-exhausted", "cancelled"})
	for _, tc := range []struct {
		on     RetryOn
		status int
		want   bool
	}{
		{gw, 502, true}, {gw, 503, true}, {gw, 504, true}, {gw, 500, false},
		{five, 500, true}, {five, 599, true}, {five, 499, false},
		{st, 503, true}, {st, 502, false}, {st, 409, true},
	} {
		if got := tc.on.Status(tc.status); got != tc.want {
			t.Errorf("%+v.Status(%d) = %v", tc.on, tc.status, got)
		}
	}
	if !gw.Failure(true) || gw.Failure(false) || gw.ConnectFailure() {
		t.Error("gateway-error: timeouts only among failures")
	}
	if !five.ConnectFailure() || !five.RefusedStream() || !five.Failure(false) {
		t.Error("5xx covers every failure")
	}
	if !grpc.GRPC(8) || !grpc.GRPC(1) || grpc.GRPC(14) || !defaultRetryPolicy.On.GRPC(14) {
		t.Error("gRPC codes")
	}
	if st.AnyStatus() == false || defaultRetryPolicy.On.AnyStatus() {
		t.Error("AnyStatus")
	}
}

// Exponential backoff with full jitter: the ceiling doubles from the base
// per retry up to the max; the wait is the random share of it.
func TestBackoff(t *testing.T) {
	p := RetryPolicy{BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond}
	for n, want := range map[int]time.Duration{1: 25 * time.Millisecond, 2: 50 * time.Millisecond, 3: 100 * time.Millisecond,
		4: 200 * time.Millisecond, 5: 250 * time.Millisecond, 40: 250 * time.Millisecond} {
		// rnd = ceiling gives the ceiling itself (uniform over [0, ceiling]).
		if got := p.Backoff(n, uint64(want)); got != want {
			t.Errorf("retry %d at the top: %v, want %v", n, got, want)
		}
		if got := p.Backoff(n, uint64(want)+1); got != 0 {
			t.Errorf("retry %d wrapping: %v, want 0", n, got)
		}
	}
	if got := p.Backoff(1, 7); got != 7 {
		t.Errorf("retry 1, rnd 7: %v", got)
	}
	if (&RetryPolicy{}).Backoff(3, 99) != 0 {
		t.Error("no base, still a wait")
	}
}
