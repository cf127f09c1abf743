package health

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// run is one Start..Stop period of active probing.
type run struct {
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts pending probe timers and probe goroutines of this run. A
	// timer's count is handed to the goroutine its callback starts.
	wg   sync.WaitGroup
	sem  chan struct{} // Concurrency slots
	done chan struct{} // closed once the run is torn down and wg drained
	// rateTimer is the next success-rate evaluation; guarded by
	// Checker.mu.
	rateTimer Timer
}

// Start begins active probing (if configured) and arms timed ejections
// left pending by a previous Stop. It returns at once; probing ends when
// ctx is cancelled or Stop is called. Calling Start while running does
// nothing.
func (c *Checker) Start(ctx context.Context) {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.last != nil {
		if c.last.ctx.Err() == nil {
			return
		}
		<-c.last.done // a cancelled run still tearing down
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &run{ctx: rctx, cancel: cancel, done: make(chan struct{})}
	if c.probeOn {
		r.sem = make(chan struct{}, c.prober.concurrency)
	}
	c.last = r
	c.halted.Store(false)

	c.mu.Lock()
	if c.probeOn {
		c.cur.Store(r)
	}
	if c.rate != nil {
		c.rateRun = r
		c.armRate(r)
	}
	now := c.clock.Now()
	for _, t := range *c.targets.Load() {
		t.mu.Lock()
		if c.probeOn {
			c.scheduleFirst(t, r)
		}
		if t.ejected && !t.ejectedUntil.IsZero() && t.ejectTimer == nil {
			c.armEjectTimer(t, max(t.ejectedUntil.Sub(now), 0))
		}
		t.mu.Unlock()
	}
	c.mu.Unlock()

	go func() {
		<-rctx.Done()
		c.teardown(r)
		r.wg.Wait()
		if c.prober.transport != nil {
			c.prober.transport.CloseIdleConnections()
		}
		c.closeGRPC()
		close(r.done)
	}()
}

// Stop ends active probing, cancels probes in flight and waits for them,
// and disarms ejection timers (targets in a timed ejection stay ejected
// until Start is called again). It may be called any number of times, with
// or without Start. Callbacks must not call Start or Stop.
func (c *Checker) Stop() {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if r := c.last; r != nil {
		r.cancel()
		<-r.done
	}
	c.halt()
}

// teardown detaches r and disarms every timer. Probe callbacks and
// goroutines of r that already started see r.ctx cancelled and end.
func (c *Checker) teardown(r *run) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur.CompareAndSwap(r, nil)
	c.halted.Store(true)
	if c.rateRun == r {
		c.rateRun = nil
		if r.rateTimer != nil {
			r.rateTimer.Stop()
		}
	}
	for _, t := range *c.targets.Load() {
		t.mu.Lock()
		if t.probeRun == r {
			c.stopProbeTimer(t)
		}
		c.stopEjectTimer(t)
		t.mu.Unlock()
	}
}

// halt disarms ejection timers without a run (Stop before any Start).
func (c *Checker) halt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.halted.Store(true)
	for _, t := range *c.targets.Load() {
		t.mu.Lock()
		c.stopEjectTimer(t)
		t.mu.Unlock()
	}
}

// interval is the probe interval for a verdict.
func (c *Checker) interval(healthy bool) time.Duration {
	if healthy {
		return c.healthyEvery
	}
	return c.unhealthyEvery
}

// scheduleFirst arms t's first probe of r after a random jitter within its
// interval, unless t already has one pending or in flight. Caller holds
// t.mu.
func (c *Checker) scheduleFirst(t *target, r *run) {
	if t.removed || t.probing || t.probeTimer != nil {
		return
	}
	if iv := c.interval(t.healthy); iv > 0 {
		c.schedule(t, r, time.Duration(c.rand()%uint64(iv)))
	}
}

// replan re-arms t's pending probe after its verdict changed, so that the
// new state's interval applies from now on (and a parked target whose new
// state is probed starts being probed). A probe in flight re-plans itself
// when it completes. Caller holds t.mu.
func (c *Checker) replan(t *target) {
	r := c.cur.Load()
	if r == nil || t.removed || t.probing {
		return
	}
	if t.probeTimer != nil {
		if !t.probeTimer.Stop() {
			return // already firing: that probe will re-plan
		}
		t.probeTimer = nil
		t.probeRun.wg.Done()
	}
	if iv := c.interval(t.healthy); iv > 0 {
		c.schedule(t, r, iv)
	}
}

// schedule arms a probe of t on r after d. Caller holds t.mu, and t has
// no pending or in-flight probe.
func (c *Checker) schedule(t *target, r *run, d time.Duration) {
	r.wg.Add(1)
	t.probeSeq++
	seq := t.probeSeq
	t.probeRun = r
	t.probeTimer = c.clock.AfterFunc(d, func() { c.fire(t, r, seq) })
}

// stopProbeTimer disarms t's pending probe, if any. Caller holds t.mu.
func (c *Checker) stopProbeTimer(t *target) {
	if t.probeTimer == nil {
		return
	}
	if t.probeTimer.Stop() {
		t.probeRun.wg.Done()
	}
	// Otherwise the callback is under way; it finds the target removed or
	// the run cancelled and releases its count itself.
	t.probeTimer = nil
	t.probeSeq++
}

// fire is a probe timer's callback.
func (c *Checker) fire(t *target, r *run, seq uint64) {
	t.mu.Lock()
	if seq != t.probeSeq || t.removed || r.ctx.Err() != nil {
		t.mu.Unlock()
		r.wg.Done()
		return
	}
	t.probeTimer = nil
	t.probing = true
	t.mu.Unlock()
	go c.probe(t, r)
}

// probe runs one probe of t and records it; it owns one count of r.wg.
func (c *Checker) probe(t *target, r *run) {
	defer r.wg.Done()
	k, ok := kindIgnore, false
	select {
	case r.sem <- struct{}{}:
		if c.prober.grpc != nil {
			k, ok = c.probeGRPC(t, r)
		} else {
			k, ok = c.prober.check(r.ctx, t.addr, &c.activeTh)
		}
		<-r.sem
	case <-r.ctx.Done():
	}

	t.mu.Lock()
	if !ok || t.removed || r.ctx.Err() != nil || c.cur.Load() != r {
		t.probing = false
		t.mu.Unlock()
		return
	}
	// probing stays set while recording so that a verdict change does
	// not arm a second probe.
	notify := c.recordActive(t, k)
	t.probing = false
	if iv := c.interval(t.healthy); iv > 0 {
		c.schedule(t, r, iv)
	}
	t.mu.Unlock()
	if notify {
		c.drain()
	}
}

// probeGRPC probes t over its gRPC channel, opening the channel first if
// t has none.
func (c *Checker) probeGRPC(t *target, r *run) (kind, bool) {
	t.mu.Lock()
	if t.removed {
		t.mu.Unlock()
		return kindIgnore, false
	}
	g := t.grpc
	if g == nil {
		var err error
		if g, err = c.prober.newGRPCConn(t.addr); err != nil {
			t.mu.Unlock()
			return kindTCPFailure, true
		}
		t.grpc = g
	}
	t.mu.Unlock()
	return c.prober.checkGRPC(r.ctx, g)
}

// closeGRPC closes the gRPC channels of every target (probing stopped).
func (c *Checker) closeGRPC() {
	if c.prober.grpc == nil {
		return
	}
	var conns []*grpcConn
	c.mu.Lock()
	for _, t := range *c.targets.Load() {
		t.mu.Lock()
		if t.grpc != nil {
			conns = append(conns, t.grpc)
			t.grpc = nil
		}
		t.mu.Unlock()
	}
	c.mu.Unlock()
	for _, g := range conns {
		g.close()
	}
}

// recordActive counts one probe outcome and flips the verdict when a
// threshold is reached. It reports whether callbacks were queued. Caller
// holds t.mu and must call drain after unlocking if it returns true.
func (c *Checker) recordActive(t *target, k kind) bool {
	switch move := t.active.record(k, &c.activeTh); {
	case move < 0 && t.healthy:
		c.setChecks(t, false, CauseActive, c.clock.Now())
		return true
	case move > 0 && !t.healthy:
		c.setChecks(t, true, CauseActive, c.clock.Now())
		return true
	}
	return false
}

// prober sends probes. Immutable after newProber.
type prober struct {
	tcp         bool
	concurrency int
	timeout     time.Duration
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	// grpc and grpcs only (they also use header for the user agent and
	// the metadata).
	grpc *grpcSetup
	// HTTP(S) only.
	transport *http.Transport
	client    *http.Client
	urlPrefix string // "http://" or "https://"
	path      string
	host      string
	header    http.Header
}

func newProber(a ActiveConfig, opts Options) prober {
	p := prober{
		concurrency: a.Concurrency,
		timeout:     a.Timeout,
		dial:        opts.DialContext,
		path:        a.HTTPPath,
		host:        a.Host,
	}
	if p.concurrency <= 0 {
		p.concurrency = DefaultConcurrency
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.dial == nil {
		p.dial = (&net.Dialer{}).DialContext
	}
	if p.path == "" {
		p.path = DefaultHTTPPath
	} else if !strings.HasPrefix(p.path, "/") {
		p.path = "/" + p.path
	}
	typ := strings.ToLower(a.Type)
	if typ == TypeTCP {
		p.tcp = true
		return p
	}
	p.header = make(http.Header, len(a.Headers)+1)
	for k, vs := range a.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			if p.host == "" && len(vs) > 0 {
				p.host = vs[0]
			}
			continue
		}
		for _, v := range vs {
			p.header.Add(k, v)
		}
	}
	if p.header.Get("User-Agent") == "" {
		p.header.Set("User-Agent", "outrigger-health")
	}
	if typ == TypeGRPC || typ == TypeGRPCS {
		p.grpc = newGRPCSetup(a, opts, typ == TypeGRPCS, p.host, p.header)
		return p
	}
	p.urlPrefix = "http://"
	var tlsConf *tls.Config
	if typ == TypeHTTPS {
		p.urlPrefix = "https://"
		if opts.TLSConfig != nil {
			tlsConf = opts.TLSConfig.Clone()
		} else {
			tlsConf = &tls.Config{}
		}
		tlsConf.InsecureSkipVerify = !a.HTTPSVerifyCertificate
		switch {
		case a.HTTPSSNI != "":
			tlsConf.ServerName = a.HTTPSSNI
		case p.host != "":
			tlsConf.ServerName = hostOnly(p.host)
		}
	}
	p.transport = &http.Transport{
		Proxy:                  nil, // never through an environment proxy
		DialContext:            p.dial,
		TLSClientConfig:        tlsConf,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	p.client = &http.Client{
		Transport: p.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return p
}

// hostOnly strips an optional port from a Host header value.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}

// check probes addr once and classifies the outcome. ok is false when ctx
// was cancelled (the result must be dropped).
func (p *prober) check(ctx context.Context, addr string, th *thresholds) (k kind, ok bool) {
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var err error
	if p.tcp {
		var conn net.Conn
		if conn, err = p.dial(pctx, "tcp", addr); err == nil {
			conn.Close()
			return kindSuccess, true
		}
	} else {
		var req *http.Request
		req, err = http.NewRequestWithContext(pctx, http.MethodGet, p.urlPrefix+addr+p.path, nil)
		if err == nil {
			req.Header = p.header.Clone()
			if p.host != "" {
				req.Host = p.host
			}
			var resp *http.Response
			if resp, err = p.client.Do(req); err == nil {
				resp.Body.Close()
				return th.classify(Result{Status: resp.StatusCode}), true
			}
		}
	}
	if ctx.Err() != nil {
		return kindIgnore, false
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return kindTimeout, true
	}
	return kindTCPFailure, true
}
