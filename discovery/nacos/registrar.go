package nacos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/discovery/internal/localprobe"
)

// Event kinds reported to the WithOnEvent callback.
const (
	// EventRegister: a registration attempt of Run.
	EventRegister = "register"
	// EventDisconnect: the client lost its connection (err is
	// ErrDisconnected). The server drops the instance with the connection.
	EventDisconnect = "disconnect"
	// EventReconnect: the client connected again; the SDK re-registers the
	// instance on the new connection by itself (its redo).
	EventReconnect = "reconnect"
	// EventDeregister: the deregistration when Run ends.
	EventDeregister = "deregister"
	// EventProbe: the local service's health changed; err is the probe's
	// failure, nil when it turned healthy.
	EventProbe = "probe"
	// EventUpdate: the instance was registered again to publish a change
	// of its health (reported on failure only).
	EventUpdate = "update"
)

// CheckSpec is a Registrar's probe of the local service: a gRPC health
// check (GRPC, "host:port[/service]", SERVING passes) or a health URL
// (GET, 2xx passes); at most one.
type CheckSpec struct {
	GRPC string
	// GRPCUseTLS makes the gRPC probe use TLS.
	GRPCUseTLS bool
	// TLSSkipVerify turns certificate verification off (TLS gRPC and
	// https URLs).
	TLSSkipVerify bool
	HealthURL     string
	// Interval paces the probes (default 10s); Timeout bounds one
	// (default and cap: min(Interval, 5s)).
	Interval, Timeout time.Duration
}

func (c CheckSpec) set() bool { return c.GRPC != "" || c.HealthURL != "" }

// RegistrationConfig configures a Registrar.
type RegistrationConfig struct {
	// Servers, GRPCPort, Namespace, Username and Password as in
	// SourceConfig.
	Servers            []string
	GRPCPort           int
	Namespace          string
	Username, Password string
	// Group defaults to DEFAULT_GROUP.
	Group string
	// Service is the announced service (required).
	Service string
	// IP and Port are the instance's address (required).
	IP   string
	Port int
	// Weight is Nacos's float weight; 0 means 1 (Nacos's default).
	Weight float64
	// Cluster defaults to DEFAULT; letters, digits and '-' only.
	Cluster  string
	Metadata map[string]string
	// Check, when set, probes the local service: the instance is
	// registered healthy only while the probe passes.
	Check CheckSpec
}

// Registrar announces the local service as one ephemeral instance; it
// implements discovery.Registrar.
type Registrar struct {
	// Immutable after NewRegistrar.
	pool *Pool
	key  clientKey
	cfg  RegistrationConfig
	opts options
	// probe is nil without a Check.
	probe *localprobe.Prober

	// healthy is the last probe's verdict (true without a Check); written
	// by Run, read by Healthy from any goroutine.
	healthy atomic.Bool
}

var _ discovery.Registrar = (*Registrar)(nil)

// NewRegistrar validates cfg and returns a Registrar using a client of
// pool's for each Run. It does not contact Nacos.
func NewRegistrar(pool *Pool, cfg RegistrationConfig, opts ...Option) (*Registrar, error) {
	if pool == nil {
		return nil, errors.New("nacos: registration: nil pool")
	}
	if err := checkName("service", cfg.Service, true); err != nil {
		return nil, fmt.Errorf("nacos: registration: %w", err)
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if err := checkName("group", cfg.Group, false); err != nil {
		return nil, fmt.Errorf("nacos: registration %q: %w", cfg.Service, err)
	}
	if strings.TrimSpace(cfg.IP) == "" {
		return nil, fmt.Errorf("nacos: registration %q: ip is required", cfg.Service)
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("nacos: registration %q: port %d out of 1..65535", cfg.Service, cfg.Port)
	}
	switch {
	case cfg.Weight == 0:
		cfg.Weight = 1
	case !(cfg.Weight > 0) || cfg.Weight > 10000:
		return nil, fmt.Errorf("nacos: registration %q: weight %v out of (0, 10000]", cfg.Service, cfg.Weight)
	}
	if cfg.Cluster == "" {
		cfg.Cluster = DefaultCluster
	}
	if !validClusterName(cfg.Cluster) {
		return nil, fmt.Errorf("nacos: registration %q: cluster %q: letters, digits and '-' only", cfg.Service, cfg.Cluster)
	}
	k, err := connConfig{cfg.Servers, cfg.GRPCPort, cfg.Namespace, cfg.Username, cfg.Password}.key()
	if err != nil {
		return nil, fmt.Errorf("nacos: registration %q: %w", cfg.Service, err)
	}
	cfg.Namespace = k.namespace
	cfg.Servers = slices.Clone(cfg.Servers)
	cfg.Metadata = maps.Clone(cfg.Metadata)
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	r := &Registrar{pool: pool, key: k, cfg: cfg, opts: buildOptions(opts)}
	if chk := &r.cfg.Check; chk.set() {
		if chk.Interval < 0 || chk.Timeout < 0 {
			return nil, fmt.Errorf("nacos: registration %q: negative check duration", cfg.Service)
		}
		if chk.Interval == 0 {
			chk.Interval = 10 * time.Second
		}
		if limit := min(chk.Interval, 5*time.Second); chk.Timeout == 0 || chk.Timeout > limit {
			chk.Timeout = limit
		}
		p, err := localprobe.New(localprobe.Spec{URL: chk.HealthURL, GRPC: chk.GRPC, GRPCUseTLS: chk.GRPCUseTLS, TLSSkipVerify: chk.TLSSkipVerify})
		if err != nil {
			return nil, fmt.Errorf("nacos: registration %q: check: %w", cfg.Service, err)
		}
		r.probe = p
	} else {
		r.healthy.Store(true)
	}
	return r, nil
}

// Healthy reports the verdict of the last probe of the local service
// (false before the first); always true without a Check.
func (r *Registrar) Healthy() bool { return r.healthy.Load() }

// runProbe probes the local service once and reports whether the verdict
// changed.
func (r *Registrar) runProbe(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, r.cfg.Check.Timeout)
	err := r.probe.Probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return false
	}
	if was := r.healthy.Swap(err == nil); was == (err == nil) {
		return false
	}
	r.event(EventProbe, err)
	return true
}

// validClusterName is Nacos's rule: ^[0-9a-zA-Z-]+$.
func validClusterName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
			return false
		}
	}
	return true
}

func (r *Registrar) event(kind string, err error) {
	if r.opts.onEvent != nil {
		r.opts.onEvent(kind, err)
	}
}

func (r *Registrar) instance() model.Instance {
	return model.Instance{
		Ip:          r.cfg.IP,
		Port:        uint64(r.cfg.Port),
		Weight:      r.cfg.Weight,
		Healthy:     r.healthy.Load(),
		Enable:      true,
		Ephemeral:   true,
		ClusterName: r.cfg.Cluster,
		Metadata:    maps.Clone(r.cfg.Metadata),
	}
}

// Run registers the instance and keeps it registered until ctx ends, then
// deregisters it; see the package documentation.
func (r *Registrar) Run(ctx context.Context) error {
	var c *client
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return nil
		}
		var err error
		c, err = r.pool.acquireDedicated(r.key)
		if err == nil {
			break
		}
		r.event(EventRegister, err)
		if !discovery.Sleep(ctx, retryDelay(attempt, r.opts)) {
			return nil
		}
	}
	defer r.pool.releaseDedicated(c)
	w := c.watchState()
	defer c.unwatch(w)

	var probeC <-chan time.Time
	if r.probe != nil {
		defer r.probe.Close()
		// Probe first, so the instance is registered in the state the
		// local service is in.
		r.runProbe(ctx)
		tk := time.NewTicker(r.cfg.Check.Interval)
		defer tk.Stop()
		probeC = tk.C
	}

	prev := c.state()
	registered := false
	failures := 0
	waiting := false // EventRegister(ErrDisconnected) reported
	// Go 1.23 timers: Reset never delivers a stale tick.
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			err := r.deregister(c)
			r.event(EventDeregister, err)
			return err
		case <-w.notify:
			cs := c.state()
			switch {
			case !cs.connected && prev.connected:
				r.event(EventDisconnect, ErrDisconnected)
			case cs.connected && cs.epoch != prev.epoch:
				if prev.epoch > 0 {
					r.event(EventReconnect, nil)
				}
				if !registered {
					// Try now rather than at the end of the backoff.
					timer.Reset(0)
				}
			}
			prev = cs
			continue
		case <-probeC:
			if !r.runProbe(ctx) || !registered {
				continue // an unregistered instance gets the verdict when it registers
			}
			if !c.state().connected {
				// The SDK's redo registers the instance again, with the new
				// health, once the connection is back.
				registered = false
				continue
			}
			// Registering again replaces the instance with its new health.
			if err := r.register(c); err != nil {
				r.event(EventUpdate, err)
				registered = false
				failures++
				timer.Reset(retryDelay(failures, r.opts))
			}
			continue
		case <-timer.C:
		}
		if registered {
			continue
		}
		// Call the SDK only while connected: its request path races with
		// its own reconnect otherwise (nacos-sdk-go#905, #908). Once the
		// registration is in the SDK's redo cache, the SDK registers again
		// after every reconnect by itself.
		if !c.state().connected {
			if !waiting {
				r.event(EventRegister, ErrDisconnected)
				waiting = true
			}
			continue // the next connection wakes us
		}
		err := r.register(c)
		r.event(EventRegister, err)
		if err == nil {
			registered, failures = true, 0
			continue
		}
		failures++
		timer.Reset(retryDelay(failures, r.opts))
	}
}

func (r *Registrar) register(c *client) error {
	ok, err := c.proxy.RegisterInstance(r.cfg.Service, r.cfg.Group, r.instance())
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("nacos: server refused the registration")
	}
	return nil
}

// deregister removes the instance. With the connection down there is
// nothing to do: the server drops ephemeral instances with their
// connection (and the client is closed right after).
func (r *Registrar) deregister(c *client) error {
	if !c.state().connected {
		return nil
	}
	inst := r.instance()
	ok, err := c.proxy.DeregisterInstance(r.cfg.Service, r.cfg.Group, model.Instance{
		Ip: inst.Ip, Port: inst.Port, ClusterName: inst.ClusterName, Ephemeral: true,
	})
	if err != nil {
		return fmt.Errorf("nacos: deregister %s:%d: %w", r.cfg.IP, r.cfg.Port, err)
	}
	if !ok {
		return fmt.Errorf("nacos: deregister %s:%d: server refused", r.cfg.IP, r.cfg.Port)
	}
	return nil
}
