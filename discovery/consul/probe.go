package consul

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// DefaultProbeInterval is how often an unreachable agent is probed while a
// Source or Registrar waits out its backoff.
const DefaultProbeInterval = 250 * time.Millisecond

// probeTimeout bounds one reachability probe.
const probeTimeout = time.Second

// Probes shares agent reachability probes: every Source and Registrar built
// with the same Probes (WithProbes) that talks to the same agent (scheme and
// address) waits on one probe, so N watchers of a dead agent cause one
// GET /v1/status/leader per interval, not N. Without WithProbes each Source
// and Registrar has a probe of its own. A probe runs only while someone
// waits on it; the zero value is not usable, use NewProbes.
//
// Concurrency: safe for concurrent use; mu guards m.
type Probes struct {
	every time.Duration

	mu sync.Mutex
	m  map[string]*probe
}

// NewProbes returns an empty set of shared probes, probing every
// DefaultProbeInterval.
func NewProbes() *Probes {
	return &Probes{every: DefaultProbeInterval, m: map[string]*probe{}}
}

// WithProbes makes a Source or Registrar share its agent reachability probe
// through p.
func WithProbes(p *Probes) Option {
	return func(o *options) {
		if p != nil {
			o.probes = p
		}
	}
}

// get returns the probe of the agent at addr (host:port, or with an
// "http://" or "https://" prefix, which wins over scheme), creating it with
// rt (nil: a default transport without proxy) on first use; the first
// caller's transport is the one the probe uses. It returns nil for other
// addresses (a unix socket): waits on a nil probe never end early.
func (ps *Probes) get(scheme, addr string, rt http.RoundTripper) *probe {
	if pre, rest, ok := strings.Cut(addr, "://"); ok {
		switch pre {
		case "http":
		case "https":
			scheme = "https"
		default:
			return nil
		}
		addr = rest
	}
	// An address may carry a reverse proxy's path prefix.
	host, prefix, _ := strings.Cut(addr, "/")
	if prefix != "" {
		prefix = "/" + strings.Trim(prefix, "/")
	}
	key := scheme + "://" + addr
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p := ps.m[key]; p != nil {
		return p
	}
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		t.MaxIdleConnsPerHost = 1
		rt = t
	}
	p := &probe{
		url:     (&url.URL{Scheme: scheme, Host: host, Path: prefix + "/v1/status/leader"}).String(),
		client:  &http.Client{Transport: rt, Timeout: probeTimeout},
		every:   ps.every,
		waiters: map[*probeWaiter]struct{}{},
	}
	ps.m[key] = p
	return p
}

// probe polls one agent's /v1/status/leader while someone waits for the
// agent to be back. The agent counts as answering when it replies 200 with a
// non-empty leader: an agent that is up without a leader would fail the
// queries anyway. No token is sent (the endpoint needs none).
//
// Concurrency: url, client and every are set at creation; mu guards seq,
// waiters and stop. One loop goroutine runs while waiters is not empty.
type probe struct {
	url    string
	client *http.Client
	every  time.Duration

	mu      sync.Mutex
	seq     uint64 // probes started so far
	waiters map[*probeWaiter]struct{}
	stop    context.CancelFunc // ends the running loop; nil when none runs
}

type probeWaiter struct {
	since uint64 // seq when the waiter arrived
	down  bool   // the agent was seen down since (or by the waiter itself)
	up    chan struct{}
}

// await returns a channel that is closed once the agent is back: a probe
// started after this call finds it answering, and it was seen down in
// between (down says the caller's own failure already showed it down: no
// answer at all). An agent that answers probes all along (its error
// answers have other causes) never closes the channel. The caller must call
// the release function when it stops waiting (after the channel closed or
// not). On a nil probe the channel is nil (never closed).
func (p *probe) await(down bool) (<-chan struct{}, func()) {
	if p == nil {
		return nil, func() {}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := &probeWaiter{since: p.seq, down: down, up: make(chan struct{})}
	p.waiters[w] = struct{}{}
	if p.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		p.stop = cancel
		go p.loop(ctx)
	}
	return w.up, func() { p.release(w) }
}

func (p *probe) release(w *probeWaiter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.waiters, w)
	p.stopIfIdleLocked()
}

func (p *probe) stopIfIdleLocked() {
	if len(p.waiters) == 0 && p.stop != nil {
		p.stop()
		p.stop = nil
	}
}

// loop probes every p.every until ctx ends (the last waiter left).
func (p *probe) loop(ctx context.Context) {
	tk := time.NewTicker(p.every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		p.mu.Lock()
		if ctx.Err() != nil { // stopped while the tick was pending
			p.mu.Unlock()
			return
		}
		p.seq++
		seq := p.seq
		p.mu.Unlock()
		ok := p.check(ctx) == nil
		p.mu.Lock()
		for w := range p.waiters {
			switch {
			case w.since >= seq: // the probe predates the waiter
			case !ok:
				w.down = true
			case w.down:
				close(w.up)
				delete(p.waiters, w)
			}
		}
		p.stopIfIdleLocked()
		p.mu.Unlock()
	}
}

// check does one probe: nil when the agent answered 200 with a leader.
func (p *probe) check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	var leader string
	if err := json.Unmarshal(b, &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader")
	}
	return nil
}

// agentTrouble classifies a failed call to the agent: down when it gave no
// HTTP answer at all (refused, reset, timed out); probe when the agent may
// be on its way down or back (down, or a 5xx answer such as "No cluster
// leader" or one sent while shutting down), so the wait for the retry is
// worth cutting short once its probe sees it back. Other answers (403, 429,
// ...) come from a working agent: their retries just back off.
func agentTrouble(err error) (probe, down bool) {
	var ue *url.Error
	if errors.As(err, &ue) {
		return true, true
	}
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code >= 500, false
	}
	var sp *api.StatusError
	if errors.As(err, &sp) && sp != nil {
		return sp.Code >= 500, false
	}
	return false, false
}

// sleepOrWake waits d, until wake is closed (nil: never) or until ctx ends;
// it reports whether ctx is still live.
func sleepOrWake(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-ctx.Done():
		return false
	}
	return true
}
