package consul

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/internal/sourcetest"
)

// events records the Registrar's events.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) record(kind string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		kind += ": " + err.Error()
	}
	e.list = append(e.list, kind)
}

func (e *events) count(kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, k := range e.list {
		if k == kind {
			n++
		}
	}
	return n
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return "[" + strings.Join(e.list, "; ") + "]"
}

// localService is the "local service" whose health the registrar probes.
type localService struct {
	srv    *httptest.Server
	status atomic.Int32
}

func newLocalService(t *testing.T) *localService {
	l := &localService{}
	l.status.Store(http.StatusOK)
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(l.status.Load()))
	}))
	t.Cleanup(l.srv.Close)
	return l
}

// runRegistrar runs r until the test ends (or stop is called) and returns
// stop, which cancels Run and returns its error.
func runRegistrar(t *testing.T, r *Registrar) (stop func() error) {
	t.Helper()
	return sourcetest.RunRegistrar(t, r, waitTimeout)
}

func checkStatus(t *testing.T, a *consultest.Agent, checkID string) string {
	t.Helper()
	checks, err := a.Client.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := checks[checkID]; ok {
		return c.Status
	}
	return ""
}

func serviceKnown(t *testing.T, a *consultest.Agent, id string) bool {
	t.Helper()
	svcs, err := a.Client.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	_, ok := svcs[id]
	return ok
}

func TestRegistrarAgainstConsul(t *testing.T) {
	a := consultest.Start(t)

	t.Run("registration with an HTTP check; ctx cancel deregisters", func(t *testing.T) {
		local := newLocalService(t)
		ev := &events{}
		r, err := NewRegistrar(RegistrationConfig{
			Address: a.HTTPAddr,
			Service: ServiceSpec{
				Name: "api", ID: "api-1", Address: "127.0.0.1", Port: 7001,
				Tags: []string{"outrigger"}, Meta: map[string]string{"v": "1"},
				Weights: Weights{Passing: 5, Warning: 1},
			},
			Check: CheckSpec{HTTP: local.srv.URL + "/health", Interval: time.Second, Timeout: time.Second},
		}, WithOnEvent(ev.record))
		if err != nil {
			t.Fatal(err)
		}
		stop := runRegistrar(t, r)
		poll(t, "service registered", func() bool { return serviceKnown(t, a, "api-1") })
		svc, _, err := a.Client.Agent().Service("api-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if svc.Port != 7001 || svc.Address != "127.0.0.1" || svc.Weights.Passing != 5 || svc.Meta["v"] != "1" || len(svc.Tags) != 1 {
			t.Errorf("registered service = %+v", svc)
		}
		checks, err := a.Client.Agent().Checks()
		if err != nil {
			t.Fatal(err)
		}
		c, ok := checks[r.CheckID()]
		if !ok || c.Type != "http" || c.ServiceID != "api-1" {
			t.Fatalf("check %s = %+v", r.CheckID(), c)
		}
		poll(t, "HTTP check passing", func() bool { return checkStatus(t, a, r.CheckID()) == api.HealthPassing })
		// Visible through the health endpoint (what Sources read).
		poll(t, "passing in the health endpoint", func() bool {
			entries, _, err := a.Client.Health().Service("api", "", true, nil)
			return err == nil && len(entries) == 1
		})

		if err := stop(); err != nil {
			t.Fatalf("Run returned %v", err)
		}
		if serviceKnown(t, a, "api-1") {
			t.Errorf("service still registered after Run returned")
		}
		if ev.count(EventRegister) != 1 || ev.count(EventDeregister) != 1 {
			t.Errorf("events = %s", ev)
		}
	})

	t.Run("TTL check follows the local service's health", func(t *testing.T) {
		local := newLocalService(t)
		r, err := NewRegistrar(RegistrationConfig{
			Address: a.HTTPAddr,
			Service: ServiceSpec{Name: "ttl", ID: "ttl-1", Address: "127.0.0.1", Port: 7002},
			Check:   CheckSpec{TTL: 3 * time.Second, LocalHealthURL: local.srv.URL + "/health"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.Healthy() {
			t.Errorf("Healthy before any probe")
		}
		runRegistrar(t, r)
		poll(t, "TTL check passing", func() bool { return checkStatus(t, a, "service:ttl-1") == api.HealthPassing })
		if !r.Healthy() {
			t.Errorf("Healthy = false while the local service answers 200")
		}

		local.status.Store(http.StatusInternalServerError)
		start := time.Now()
		poll(t, "TTL check critical", func() bool { return checkStatus(t, a, "service:ttl-1") == api.HealthCritical })
		t.Logf("local 500 -> check critical after %s (TTL 3s, probe every 1s)", time.Since(start))
		if r.Healthy() {
			t.Errorf("Healthy = true while the local service answers 500")
		}
		checks, _ := a.Client.Agent().Checks()
		if c := checks["service:ttl-1"]; c == nil || c.Output == "" {
			t.Errorf("critical check without output: %+v", c)
		}

		local.status.Store(http.StatusOK)
		poll(t, "TTL check passing again", func() bool { return checkStatus(t, a, "service:ttl-1") == api.HealthPassing })
	})

	t.Run("forgotten service is re-registered by verification", func(t *testing.T) {
		ev := &events{}
		r, err := NewRegistrar(RegistrationConfig{
			Address: a.HTTPAddr,
			Service: ServiceSpec{Name: "forget", ID: "forget-1", Address: "127.0.0.1", Port: 7003},
			Check:   CheckSpec{TCP: "127.0.0.1:7003", Interval: 10 * time.Second},
		}, WithOnEvent(ev.record), WithVerifyInterval(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		runRegistrar(t, r)
		poll(t, "registered", func() bool { return serviceKnown(t, a, "forget-1") })
		for i := range 3 {
			if err := a.Client.Agent().ServiceDeregister("forget-1"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			poll(t, "re-registered", func() bool { return serviceKnown(t, a, "forget-1") })
			t.Logf("deregistered behind the registrar's back -> re-registered after %s (verify every 200ms)", time.Since(start))
			poll(t, "reregister event", func() bool { return ev.count(EventReregister) == i+1 })
		}
	})

	t.Run("forgotten TTL check is re-registered at the next TTL update", func(t *testing.T) {
		ev := &events{}
		r, err := NewRegistrar(RegistrationConfig{
			Address: a.HTTPAddr,
			Service: ServiceSpec{Name: "forgetttl", ID: "forgetttl-1", Address: "127.0.0.1", Port: 7004},
			Check:   CheckSpec{TTL: 600 * time.Millisecond},
		}, WithOnEvent(ev.record), WithVerifyInterval(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Healthy() {
			t.Errorf("Healthy = false without LocalHealthURL")
		}
		runRegistrar(t, r)
		poll(t, "TTL passing", func() bool { return checkStatus(t, a, "service:forgetttl-1") == api.HealthPassing })
		if err := a.Client.Agent().ServiceDeregister("forgetttl-1"); err != nil {
			t.Fatal(err)
		}
		poll(t, "re-registered", func() bool { return ev.count(EventReregister) == 1 && serviceKnown(t, a, "forgetttl-1") })
		poll(t, "TTL passing again", func() bool { return checkStatus(t, a, "service:forgetttl-1") == api.HealthPassing })
	})

	t.Run("agent restart: registration comes back", func(t *testing.T) {
		b := consultest.Start(t)
		ev := &events{}
		r, err := NewRegistrar(RegistrationConfig{
			Address: b.HTTPAddr,
			Service: ServiceSpec{Name: "survivor", ID: "survivor-1", Address: "127.0.0.1", Port: 7005},
			Check:   CheckSpec{TTL: 3 * time.Second},
		}, WithOnEvent(ev.record), WithVerifyInterval(200*time.Millisecond), WithBackoff(50*time.Millisecond, 500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		stop := runRegistrar(t, r)
		poll(t, "registered", func() bool { return serviceKnown(t, b, "survivor-1") })
		b.Restart() // a dev agent forgets everything
		poll(t, "re-registered after restart", func() bool { return serviceKnown(t, b, "survivor-1") })
		poll(t, "TTL passing after restart", func() bool { return checkStatus(t, b, "service:survivor-1") == api.HealthPassing })
		if err := stop(); err != nil {
			t.Errorf("Run returned %v", err)
		}
		t.Logf("events: %s", ev)
	})

	t.Run("datacenter mismatch fails Run", func(t *testing.T) {
		r, err := NewRegistrar(RegistrationConfig{
			Address: a.HTTPAddr, Datacenter: "elsewhere",
			Service: ServiceSpec{Name: "dc", Port: 7006},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := r.Run(ctx); err == nil {
			t.Errorf("Run succeeded against an agent in another datacenter")
		}
	})
}

func TestNewRegistrarConfig(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		cfg     RegistrationConfig
		wantID  string
		wantErr bool
	}{
		{desc: "explicit id", cfg: RegistrationConfig{Service: ServiceSpec{Name: "a", ID: "a-9", Port: 1}}, wantID: "a-9"},
		{desc: "default id from address and port", cfg: RegistrationConfig{Service: ServiceSpec{Name: "a", Address: "10.0.0.1", Port: 80}}, wantID: "a-10.0.0.1-80"},
		{desc: "name required", cfg: RegistrationConfig{Service: ServiceSpec{Port: 1}}, wantErr: true},
		{desc: "port required", cfg: RegistrationConfig{Service: ServiceSpec{Name: "a"}}, wantErr: true},
		{desc: "two check kinds", cfg: RegistrationConfig{Service: ServiceSpec{Name: "a", Port: 1}, Check: CheckSpec{HTTP: "http://x", TTL: time.Second}}, wantErr: true},
		{desc: "grpc and tcp checks", cfg: RegistrationConfig{Service: ServiceSpec{Name: "a", Port: 1}, Check: CheckSpec{GRPC: "127.0.0.1:1", TCP: "127.0.0.1:1"}}, wantErr: true},
		{desc: "grpc TLS without a grpc check", cfg: RegistrationConfig{Service: ServiceSpec{Name: "a", Port: 1}, Check: CheckSpec{TCP: "127.0.0.1:1", GRPCUseTLS: true}}, wantErr: true},
		{desc: "bad scheme", cfg: RegistrationConfig{Scheme: "tcp", Service: ServiceSpec{Name: "a", Port: 1}}, wantErr: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tc.cfg.Address = "127.0.0.1:1"
			r, err := NewRegistrar(tc.cfg)
			if tc.wantErr {
				if err == nil {
					t.Fatal("NewRegistrar succeeded, want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.ServiceID() != tc.wantID || r.CheckID() != "service:"+tc.wantID {
				t.Errorf("ids = %s, %s", r.ServiceID(), r.CheckID())
			}
		})
	}
}

// TestRegistrarPromptWhenAgentIsBack: a registration (or verification) that
// failed because the agent did not answer is retried as soon as the agent
// answers its reachability probe, not when the backoff or the verify
// interval runs out.
func TestRegistrarPromptWhenAgentIsBack(t *testing.T) {
	const bound = 5 * time.Second
	a := consultest.Start(t)
	a.Stop() // down when the registrar starts
	ev := &events{}
	r, err := NewRegistrar(RegistrationConfig{
		Address: a.HTTPAddr,
		Service: ServiceSpec{Name: "late", ID: "late-1", Address: "127.0.0.1", Port: 7101},
		Check:   CheckSpec{TCP: "127.0.0.1:7101", Interval: 10 * time.Second},
	}, WithOnEvent(ev.record), WithBackoff(time.Minute, time.Minute), WithVerifyInterval(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r.jitter = identity // the backoff is a full minute
	runRegistrar(t, r)
	failed := func(kind string) func() bool {
		return func() bool { return strings.Contains(ev.String(), kind+": ") }
	}
	poll(t, "a failed registration", failed(EventRegister))

	a.Restart()
	tBack := time.Now()
	poll(t, "registered once the agent is back", func() bool { return serviceKnown(t, a, "late-1") })
	d := time.Since(tBack)
	t.Logf("agent back -> first registration after %s (backoff 1m)", d.Round(time.Millisecond))
	if d > bound {
		t.Errorf("registered %s after the agent was back, want within %s", d, bound)
	}

	// A failed verification (agent down) is followed by one as soon as the
	// agent is back; the restarted dev agent forgot the service.
	a.Stop()
	poll(t, "a failed verification", failed(EventVerify))
	a.Restart()
	tBack = time.Now()
	poll(t, "re-registered after the restart", func() bool { return serviceKnown(t, a, "late-1") })
	d = time.Since(tBack)
	t.Logf("agent back -> re-registration after %s (verify every 2s)", d.Round(time.Millisecond))
	if d > bound {
		t.Errorf("re-registered %s after the agent was back, want within %s", d, bound)
	}
	t.Logf("events: %s", ev)
}
