package consul

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-gw/outrigger/discovery"
)

// Event kinds reported to the WithOnEvent callback.
const (
	// EventRegister: the first registration attempt(s) of Run.
	EventRegister = "register"
	// EventReregister: a registration after the agent forgot the service.
	EventReregister = "reregister"
	// EventVerify: a failed check that the agent still knows the service
	// (reported on failure only).
	EventVerify = "verify"
	// EventTTL: a TTL check update (reported on failure only).
	EventTTL = "ttl"
	// EventProbe: the local service's health changed; err is the probe's
	// failure, nil when it turned healthy.
	EventProbe = "probe"
	// EventDeregister: the deregistration when Run ends.
	EventDeregister = "deregister"
)

// deregisterTimeout bounds the deregistration when Run's context ends.
const deregisterTimeout = 5 * time.Second

// Weights are Consul's service weights (DNS SRV weights and, for Outrigger's
// Source, target weights) for passing and warning instances.
type Weights struct {
	Passing, Warning int
}

// ServiceSpec describes the announced service instance.
type ServiceSpec struct {
	Name string
	// ID defaults to "<name>-<address or hostname>-<port>".
	ID string
	// Address defaults to the agent's node address.
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
	// Weights default to Consul's (1, 1) when zero.
	Weights Weights
}

// CheckSpec describes the service's check: at most one of HTTP, TCP, GRPC
// and TTL.
type CheckSpec struct {
	HTTP string
	TCP  string
	// GRPC is "host:port" or "host:port/service": the agent calls
	// grpc.health.v1.Health/Check for the service ("" = the whole server)
	// and passes the check on SERVING; over TLS with GRPCUseTLS.
	GRPC       string
	GRPCUseTLS bool
	// TLSSkipVerify turns the agent's certificate verification off for
	// HTTPS and TLS gRPC checks.
	TLSSkipVerify bool
	TTL           time.Duration
	// Interval applies to HTTP, TCP and GRPC checks (default 10s) and paces
	// LocalHealthURL probes for them.
	Interval time.Duration
	Timeout  time.Duration
	// DeregisterCriticalServiceAfter makes the agent drop the service after
	// it has been critical that long (0: never).
	DeregisterCriticalServiceAfter time.Duration
	// LocalHealthURL is probed (GET, 2xx = healthy) to drive Healthy and,
	// for TTL checks, the TTL updates.
	LocalHealthURL string
}

// RegistrationConfig configures a Registrar.
type RegistrationConfig struct {
	// Address, Scheme and Token as in SourceConfig.
	Address, Scheme, Token string
	// Datacenter, when set, must be the agent's datacenter (agents register
	// services in their own datacenter only); Run fails otherwise.
	Datacenter string
	Service    ServiceSpec
	Check      CheckSpec
}

// Registrar announces one service instance; it implements
// discovery.Registrar.
type Registrar struct {
	cfg     RegistrationConfig
	id      string
	checkID string
	opts    options
	agent   *api.Agent
	raw     *api.Raw
	probe   *http.Client
	healthy atomic.Bool
	jitter  func(time.Duration) time.Duration
	// agentUp probes the agent after it failed to answer at all.
	agentUp *probe
}

var _ discovery.Registrar = (*Registrar)(nil)

// NewRegistrar validates cfg and returns a Registrar. It does not contact
// Consul.
func NewRegistrar(cfg RegistrationConfig, opts ...Option) (*Registrar, error) {
	svc := &cfg.Service
	if strings.TrimSpace(svc.Name) == "" {
		return nil, errors.New("consul: registration: service name is required")
	}
	if svc.Port < 1 || svc.Port > 65535 {
		return nil, fmt.Errorf("consul: registration %q: port %d out of 1..65535", svc.Name, svc.Port)
	}
	if svc.Weights.Passing < 0 || svc.Weights.Warning < 0 {
		return nil, fmt.Errorf("consul: registration %q: negative weights", svc.Name)
	}
	scheme, err := checkScheme(cfg.Scheme)
	if err != nil {
		return nil, err
	}
	cfg.Scheme = scheme
	chk := &cfg.Check
	kinds := 0
	for _, set := range []bool{chk.HTTP != "", chk.TCP != "", chk.GRPC != "", chk.TTL > 0} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		return nil, fmt.Errorf("consul: registration %q: more than one check kind (http, tcp, grpc, ttl)", svc.Name)
	}
	if chk.GRPCUseTLS && chk.GRPC == "" {
		return nil, fmt.Errorf("consul: registration %q: GRPCUseTLS without a grpc check", svc.Name)
	}
	if chk.TTL < 0 || chk.Interval < 0 || chk.Timeout < 0 || chk.DeregisterCriticalServiceAfter < 0 {
		return nil, fmt.Errorf("consul: registration %q: negative check duration", svc.Name)
	}
	if chk.Interval == 0 {
		chk.Interval = 10 * time.Second
	}
	svc.Tags = slices.Clone(svc.Tags)
	svc.Meta = maps.Clone(svc.Meta)

	o := buildOptions(opts)
	cfg.Address = resolveAddress(cfg.Address, o.lookupEnv)
	// The registrar's calls never block; Consul's own default timeouts for
	// agent writes are well under this.
	client, err := newClient(cfg.Address, cfg.Scheme, cfg.Token, "", 30*time.Second, &o)
	if err != nil {
		return nil, err
	}

	id := svc.ID
	if id == "" {
		host := svc.Address
		if host == "" {
			host, _ = os.Hostname()
		}
		id = fmt.Sprintf("%s-%s-%d", svc.Name, host, svc.Port)
	}
	r := &Registrar{
		cfg:     cfg,
		id:      id,
		checkID: "service:" + id,
		opts:    o,
		agent:   client.Agent(),
		raw:     client.Raw(),
		probe: &http.Client{
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		jitter: discovery.FullJitter,
	}
	probes := o.probes
	if probes == nil {
		probes = NewProbes()
	}
	r.agentUp = probes.get(cfg.Scheme, cfg.Address, o.transport)
	if cfg.Check.LocalHealthURL == "" {
		r.healthy.Store(true)
	}
	return r, nil
}

// ServiceID is the ID the service is registered under.
func (r *Registrar) ServiceID() string { return r.id }

// CheckID is the ID of the service's check ("service:<id>").
func (r *Registrar) CheckID() string { return r.checkID }

// Healthy reports the verdict of the last LocalHealthURL probe (false before
// the first one); always true when no LocalHealthURL is configured.
func (r *Registrar) Healthy() bool { return r.healthy.Load() }

func (r *Registrar) event(kind string, err error) {
	if r.opts.onEvent != nil {
		r.opts.onEvent(kind, err)
	}
}

// probeInterval is how often LocalHealthURL is probed (and a TTL check
// updated); 0 when nothing is to be done periodically.
func (r *Registrar) probeInterval() time.Duration {
	c := r.cfg.Check
	switch {
	case c.TTL > 0:
		return max(c.TTL/3, 10*time.Millisecond)
	case c.LocalHealthURL != "":
		return c.Interval
	}
	return 0
}

// Run registers the service and keeps it registered until ctx ends, then
// deregisters it; see the package documentation.
func (r *Registrar) Run(ctx context.Context) error {
	if err := r.checkDatacenter(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		r.event(EventRegister, err)
		return err
	}

	registered, everRegistered := false, false
	failures := 0

	var probeC <-chan time.Time
	if every := r.probeInterval(); every > 0 {
		// Probe first, so the registration starts a TTL check in the
		// state the local service is in.
		r.runProbe(ctx)
		tk := time.NewTicker(every)
		defer tk.Stop()
		probeC = tk.C
	}
	verify := time.NewTimer(0)
	defer verify.Stop()
	// While the agent does not answer at all, its reachability probe
	// brings the next verification (or registration attempt) forward to
	// the moment it is back: an agent that restarted without state gets
	// the service again at once, not after the verify interval or backoff.
	var agentUp <-chan struct{}
	stopAwait := func() {}
	awaitAgent := func(err error) {
		if probe, down := agentTrouble(err); probe && agentUp == nil {
			agentUp, stopAwait = r.agentUp.await(down)
		}
	}
	defer func() { stopAwait() }()

	for {
		select {
		case <-ctx.Done():
			return r.deregister()
		case <-agentUp:
			stopAwait()
			agentUp, stopAwait = nil, func() {}
			resetTimer(verify, 0)
		case <-verify.C:
			stopAwait()
			agentUp, stopAwait = nil, func() {}
			if registered {
				_, _, err := r.agent.Service(r.id, (&api.QueryOptions{}).WithContext(ctx))
				switch {
				case ctx.Err() != nil:
					continue
				case err == nil:
					verify.Reset(r.opts.verifyInterval)
					continue
				case !isNotFound(err):
					r.event(EventVerify, err)
					verify.Reset(r.opts.verifyInterval)
					awaitAgent(err)
					continue
				}
				registered = false
			}
			kind := EventRegister
			if everRegistered {
				kind = EventReregister
			}
			err := r.register(ctx)
			if ctx.Err() != nil {
				continue
			}
			r.event(kind, err)
			if err != nil {
				failures++
				verify.Reset(discovery.Backoff(failures, r.opts.backoffMin, r.opts.backoffMax, r.jitter))
				awaitAgent(err)
				continue
			}
			failures = 0
			registered, everRegistered = true, true
			verify.Reset(r.opts.verifyInterval)
		case <-probeC:
			output := r.runProbe(ctx)
			if ctx.Err() != nil || !registered || r.cfg.Check.TTL <= 0 {
				continue
			}
			if err := r.updateTTL(ctx, output); err != nil && ctx.Err() == nil {
				r.event(EventTTL, err)
				if checkForgotten(err) {
					// The agent forgot the check, hence the service:
					// re-register now rather than at the next verification.
					registered = false
					resetTimer(verify, 0)
				} else {
					awaitAgent(err)
				}
			}
		}
	}
}

// checkForgotten tells whether a TTL update failed because the agent does not
// know the check (404 "Unknown check ID", or a 500 "does not have associated
// TTL" when the check exists without TTL).
func checkForgotten(err error) bool {
	msg := strings.ToLower(err.Error())
	return isNotFound(err) || strings.Contains(msg, "unknown check") ||
		strings.Contains(msg, "does not have associated ttl")
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	t.Reset(d)
}

// checkDatacenter verifies a configured datacenter against the agent's,
// retrying with backoff while the agent cannot be reached.
func (r *Registrar) checkDatacenter(ctx context.Context) error {
	if r.cfg.Datacenter == "" {
		return nil
	}
	for attempt := 1; ; attempt++ {
		var self struct{ Config struct{ Datacenter string } }
		_, err := r.raw.Query("/v1/agent/self", &self, (&api.QueryOptions{}).WithContext(ctx))
		if err == nil {
			if dc := self.Config.Datacenter; dc != r.cfg.Datacenter {
				return fmt.Errorf("consul: registration %q: agent is in datacenter %q, not %q", r.cfg.Service.Name, dc, r.cfg.Datacenter)
			}
			return nil
		}
		r.event(EventRegister, err)
		var wake <-chan struct{}
		release := func() {}
		if probe, down := agentTrouble(err); probe {
			wake, release = r.agentUp.await(down)
		}
		live := sleepOrWake(ctx, discovery.Backoff(attempt, r.opts.backoffMin, r.opts.backoffMax, r.jitter), wake)
		release()
		if !live {
			return ctx.Err()
		}
	}
}

// registration is what is sent to the agent.
func (r *Registrar) registration() *api.AgentServiceRegistration {
	s, c := r.cfg.Service, r.cfg.Check
	reg := &api.AgentServiceRegistration{
		ID:      r.id,
		Name:    s.Name,
		Address: s.Address,
		Port:    s.Port,
		Tags:    s.Tags,
		Meta:    s.Meta,
	}
	if s.Weights.Passing > 0 || s.Weights.Warning > 0 {
		w := api.AgentWeights{Passing: s.Weights.Passing, Warning: s.Weights.Warning}
		if w.Passing == 0 {
			w.Passing = 1
		}
		reg.Weights = &w
	}
	chk := &api.AgentServiceCheck{
		CheckID: r.checkID,
		Name:    "outrigger: " + s.Name,
	}
	switch {
	case c.HTTP != "":
		chk.HTTP = c.HTTP
		chk.Interval = c.Interval.String()
	case c.TCP != "":
		chk.TCP = c.TCP
		chk.Interval = c.Interval.String()
	case c.GRPC != "":
		chk.GRPC = c.GRPC
		chk.GRPCUseTLS = c.GRPCUseTLS
		chk.Interval = c.Interval.String()
	case c.TTL > 0:
		chk.TTL = c.TTL.String()
		// Start in the state last seen locally rather than in Consul's
		// default critical, so a re-registration does not flap.
		chk.Status = api.HealthCritical
		if r.healthy.Load() {
			chk.Status = api.HealthPassing
		}
	default:
		return reg
	}
	if c.Timeout > 0 && c.TTL == 0 {
		chk.Timeout = c.Timeout.String()
	}
	chk.TLSSkipVerify = c.TLSSkipVerify
	if c.DeregisterCriticalServiceAfter > 0 {
		chk.DeregisterCriticalServiceAfter = c.DeregisterCriticalServiceAfter.String()
	}
	reg.Check = chk
	return reg
}

func (r *Registrar) register(ctx context.Context) error {
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.agent.ServiceRegisterOpts(r.registration(), opts); err != nil {
		return fmt.Errorf("consul: register %q: %w", r.id, err)
	}
	return nil
}

func (r *Registrar) updateTTL(ctx context.Context, output string) error {
	status := api.HealthCritical
	if r.healthy.Load() {
		status = api.HealthPassing
	}
	err := r.agent.UpdateTTLOpts(r.checkID, output, status, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul: update ttl of %q: %w", r.checkID, err)
	}
	return nil
}

func (r *Registrar) deregister() error {
	ctx, cancel := context.WithTimeout(context.Background(), deregisterTimeout)
	defer cancel()
	err := r.agent.ServiceDeregisterOpts(r.id, (&api.QueryOptions{}).WithContext(ctx))
	if isNotFound(err) {
		err = nil
	}
	if err != nil {
		err = fmt.Errorf("consul: deregister %q: %w", r.id, err)
	}
	r.event(EventDeregister, err)
	return err
}

// runProbe probes LocalHealthURL (when set), records the verdict and returns
// the output to report with a TTL update.
func (r *Registrar) runProbe(ctx context.Context) string {
	url := r.cfg.Check.LocalHealthURL
	if url == "" {
		return "outrigger is running"
	}
	timeout := min(r.probeInterval(), 5*time.Second)
	if r.cfg.Check.Timeout > 0 {
		timeout = min(timeout, r.cfg.Check.Timeout)
	}
	err := r.get(ctx, url, timeout)
	if ctx.Err() != nil {
		return ""
	}
	was := r.healthy.Swap(err == nil)
	if was != (err == nil) {
		r.event(EventProbe, err)
	}
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("GET %s: healthy", url)
}

func (r *Registrar) get(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := r.probe.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
