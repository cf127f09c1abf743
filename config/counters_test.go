package config

import (
	"testing"
	"time"
)

// TestCounterBlocksBare: a counters block given with none of its counters
// gets the file's defaults (the table's FileBare); one that gives a
// counter keeps zeros for the others.
func TestCounterBlocksBare(t *testing.T) {
	f, err := Parse("f.yaml", []byte(`upstreams:
  - name: bare
    healthchecks:
      active: {healthy: {http_statuses: [200]}, unhealthy: {}}
      passive: {healthy: {}, unhealthy: {grpc_statuses: [14]}}
  - name: given
    healthchecks:
      active: {healthy: {successes: 3}, unhealthy: {timeouts: 4}}
      passive: {healthy: {successes: 1}, unhealthy: {tcp_failures: 9}}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	b, g := f.Upstreams[0].Healthchecks, f.Upstreams[1].Healthchecks
	if h := b.Active.Healthy; h.Interval != Seconds(time.Second) || h.Successes != 2 || len(h.HTTPStatuses) != 1 {
		t.Errorf("bare active healthy: %+v", h)
	}
	if u := b.Active.Unhealthy; u.Interval != Seconds(time.Second) || u.HTTPFailures != 5 || u.TCPFailures != 2 || u.Timeouts != 3 {
		t.Errorf("bare active unhealthy: %+v", u)
	}
	if h := b.Passive.Healthy; h.Successes != 5 {
		t.Errorf("bare passive healthy: %+v", h)
	}
	if u := b.Passive.Unhealthy; u.HTTPFailures != 5 || u.TCPFailures != 2 || u.Timeouts != 7 || len(u.GRPCStatuses) != 1 {
		t.Errorf("bare passive unhealthy: %+v", u)
	}
	if h, u := g.Active.Healthy, g.Active.Unhealthy; h.Interval != 0 || h.Successes != 3 || u.Interval != 0 || u.HTTPFailures != 0 || u.Timeouts != 4 {
		t.Errorf("given active: %+v %+v", h, u)
	}
	if h, u := g.Passive.Healthy, g.Passive.Unhealthy; h.Successes != 1 || u.HTTPFailures != 0 || u.TCPFailures != 9 || u.Timeouts != 0 {
		t.Errorf("given passive: %+v %+v", h, u)
	}
}
