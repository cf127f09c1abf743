package health

import (
	"strings"
	"testing"
)

// feedActive records probe outcomes for addr as if probes had returned
// them.
func feedActive(c *Checker, addr string, ks ...kind) {
	t := c.lookup(addr)
	for _, k := range ks {
		t.mu.Lock()
		notify := c.recordActive(t, k)
		t.mu.Unlock()
		if notify {
			c.drain()
		}
	}
}

const (
	S  = kindSuccess
	H  = kindHTTPFailure
	TC = kindTCPFailure
	TO = kindTimeout
)

func TestActiveCounters(t *testing.T) {
	base := ActiveConfig{
		Enabled: true, Type: TypeHTTP, HealthyInterval: 1, UnhealthyInterval: 1,
		Successes: 2, HTTPFailures: 3, TCPFailures: 2, Timeouts: 2,
	}
	tests := []struct {
		desc        string
		cfg         func(*ActiveConfig)
		seq         []kind
		wantHealthy bool
		want        Counters
	}{
		{desc: "success clears every failure counter",
			seq: []kind{H, H, TC, TO, S}, wantHealthy: true, want: Counters{Successes: 1}},
		{desc: "a failure clears the success counter only",
			seq: []kind{S, S, H, TC}, wantHealthy: true, want: Counters{HTTPFailures: 1, TCPFailures: 1}},
		{desc: "failure kinds count separately",
			seq: []kind{H, H, TC, TO}, wantHealthy: true, want: Counters{HTTPFailures: 2, TCPFailures: 1, Timeouts: 1}},
		{desc: "http failures reach threshold: unhealthy, counters reset",
			seq: []kind{H, H, H}, wantHealthy: false, want: Counters{}},
		{desc: "tcp failures reach threshold",
			seq: []kind{TC, TC}, wantHealthy: false},
		{desc: "timeouts reach threshold",
			seq: []kind{TO, TO}, wantHealthy: false},
		{desc: "interleaved success prevents flip",
			seq: []kind{H, H, S, H, H}, wantHealthy: true, want: Counters{HTTPFailures: 2}},
		{desc: "hysteresis down then up: one success is not enough",
			seq: []kind{H, H, H, S}, wantHealthy: false, want: Counters{Successes: 1}},
		{desc: "hysteresis down then up: successes threshold heals",
			seq: []kind{H, H, H, S, S}, wantHealthy: true, want: Counters{}},
		{desc: "failure while unhealthy restarts the success count",
			seq: []kind{H, H, H, S, H, S}, wantHealthy: false, want: Counters{Successes: 1}},
		{desc: "threshold 0 disables the timeouts counter",
			cfg: func(a *ActiveConfig) { a.Timeouts = 0 },
			seq: []kind{TO, TO, TO, TO, TO}, wantHealthy: true, want: Counters{}},
		{desc: "threshold 0 disables the http failures counter but failures still clear successes",
			cfg: func(a *ActiveConfig) { a.HTTPFailures = 0 },
			seq: []kind{S, H, H, H, H}, wantHealthy: true, want: Counters{}},
		{desc: "successes 0: an unhealthy target never heals through probes",
			cfg: func(a *ActiveConfig) { a.Successes = 0 },
			seq: []kind{TC, TC, S, S, S, S}, wantHealthy: false, want: Counters{}},
		{desc: "ignored outcomes neither count nor clear",
			seq: []kind{H, H, kindIgnore, H}, wantHealthy: false},
		{desc: "successes keep counting while healthy",
			seq: []kind{S, S, S}, wantHealthy: true, want: Counters{Successes: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			a := base
			if tc.cfg != nil {
				tc.cfg(&a)
			}
			var rec recorder
			c := New(Config{Active: a}, rec.options(newFakeClock()))
			c.SetTargets([]string{"t:1"})
			feedActive(c, "t:1", tc.seq...)
			st := state(t, c, "t:1")
			if st.Healthy != tc.wantHealthy || st.Checks != tc.wantHealthy {
				t.Errorf("healthy = %v (checks %v), want %v", st.Healthy, st.Checks, tc.wantHealthy)
			}
			if st.Active != tc.want {
				t.Errorf("active counters = %+v, want %+v", st.Active, tc.want)
			}
			if st.Passive != (Counters{}) {
				t.Errorf("passive counters = %+v, want zero", st.Passive)
			}
		})
	}
}

func TestPassiveCounters(t *testing.T) {
	base := PassiveConfig{
		Enabled: true, HTTPFailures: 3, TCPFailures: 2, Timeouts: 2,
		HealthyStatuses: []int{200, 201}, UnhealthyStatuses: []int{500, 503},
	}
	ok, bad, other := Result{Status: 200}, Result{Status: 503}, Result{Status: 404}
	tcp, tout := Result{TCPFailure: true}, Result{Timeout: true, Status: 200}
	tests := []struct {
		desc        string
		cfg         func(*PassiveConfig)
		seq         []Result
		wantHealthy bool
		want        Counters
	}{
		{desc: "success clears failures",
			seq: []Result{bad, bad, tcp, ok}, wantHealthy: true, want: Counters{}},
		{desc: "failures accumulate per kind",
			seq: []Result{bad, bad, tcp, tout}, wantHealthy: true, want: Counters{HTTPFailures: 2, TCPFailures: 1, Timeouts: 1}},
		{desc: "timeout wins over status",
			seq: []Result{tout, tout}, wantHealthy: false},
		{desc: "statuses in neither list are ignored",
			seq: []Result{bad, other, bad, other, bad}, wantHealthy: false},
		{desc: "zero result is ignored",
			seq: []Result{bad, {}, bad}, wantHealthy: true, want: Counters{HTTPFailures: 2}},
		{desc: "http failures eject",
			seq: []Result{bad, bad, bad}, wantHealthy: false},
		{desc: "threshold 0 disables tcp failures",
			cfg: func(p *PassiveConfig) { p.TCPFailures = 0 },
			seq: []Result{tcp, tcp, tcp, tcp}, wantHealthy: true, want: Counters{}},
		{desc: "outcomes during a timed ejection count but cannot eject again",
			seq: []Result{bad, bad, bad, bad, tcp}, wantHealthy: false, want: Counters{HTTPFailures: 1, TCPFailures: 1}},
		{desc: "disabled passive checker ignores everything",
			cfg: func(p *PassiveConfig) { p.Enabled = false },
			seq: []Result{bad, bad, bad, bad}, wantHealthy: true, want: Counters{}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := base
			if tc.cfg != nil {
				tc.cfg(&p)
			}
			var rec recorder
			c := New(Config{Passive: p}, rec.options(newFakeClock()))
			c.SetTargets([]string{"t:1"})
			for _, r := range tc.seq {
				c.Observe("t:1", r)
			}
			st := state(t, c, "t:1")
			if st.Healthy != tc.wantHealthy {
				t.Errorf("healthy = %v, want %v", st.Healthy, tc.wantHealthy)
			}
			if st.Passive != tc.want {
				t.Errorf("passive counters = %+v, want %+v", st.Passive, tc.want)
			}
		})
	}
}

func TestUnknownAddress(t *testing.T) {
	c := New(Config{Passive: PassiveConfig{Enabled: true, HTTPFailures: 1, UnhealthyStatuses: []int{500}}}, Options{Clock: newFakeClock()})
	c.Observe("nobody:1", Result{Status: 500})
	if !c.Healthy("nobody:1") {
		t.Error("unknown address must be healthy")
	}
	if c.Mark("nobody:1", MarkUnhealthy) {
		t.Error("Mark on unknown address must report false")
	}
	if len(c.States()) != 0 {
		t.Error("States must be empty")
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	bad := DefaultConfig()
	bad.Active.Type = "udp"
	bad.Active.HTTPPath = "health"
	bad.Active.Timeouts = -1
	bad.Passive.MaxEjectionPercent = 101
	bad.Passive.HealthyStatuses = append(bad.Passive.HealthyStatuses, 503)
	err := bad.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"active.type", "http_path", "active.unhealthy.timeouts", "max_ejection_percent", "status 503"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
