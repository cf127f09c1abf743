// Package dnssrv discovers upstream targets from DNS SRV records.
//
// Contract of Source (one per SRV name):
//
//   - Run queries the SRV name over UDP (EDNS0, 1232-byte buffer; once more
//     without EDNS0 on FORMERR), retrying over TCP when the answer is
//     truncated, each exchange bounded by Config.Timeout. Refreshes happen
//     in Run only, never on a request path.
//   - Each SRV record's target is resolved from the response's additional
//     section (A and AAAA records owned by the target name) when present,
//     else with separate A and AAAA queries; a target that is an IP literal
//     is used as is; a target of "." (RFC 2782: service not available here)
//     is skipped. Every address gives one discovery.Target: Addr is ip:port,
//     Priority the SRV priority, Weight the SRV weight, except that weight 0
//     becomes 1 (RFC 2782 weight 0 means "very small chance of selection",
//     not "drain"). An address listed by several records is kept once, from
//     the record with the lowest priority (then highest weight). Targets are
//     sorted by priority, then Addr. All priority groups are emitted; see
//     ActiveGroup for choosing among them.
//   - The next refresh is due after the smallest TTL among every record used
//     (SRV, additional A/AAAA, separate A/AAAA answers, and the SOA negative
//     TTL of empty answers: min(SOA TTL, SOA MINIMUM)), clamped to
//     [MinTTL, MaxTTL]; an empty answer without SOA refreshes after MinTTL.
//   - NXDOMAIN, or NOERROR without SRV records, is an authoritative empty set.
//     An A/AAAA lookup answering NXDOMAIN or no records just contributes no
//     address.
//   - SERVFAIL (and any other error rcode), timeouts and network errors, for
//     the SRV query or any A/AAAA lookup, fail the whole refresh; retries
//     follow after MinTTL doubling up to MaxTTL. While failures last no longer
//     than StaleGrace since the first of them, and a set was emitted before,
//     the source keeps serving that set: it emits nothing. Otherwise (grace
//     expired, no set yet, or StaleGrace < 0) every failure emits an Update
//     with Err; the consumer keeps its last set and decides. A failure never
//     produces an empty set.
//   - A set is emitted on the first success, on the first success after an
//     emitted error, and whenever it differs from the last emitted set.
//     Update.Observed is when the refresh's last answer arrived.
package dnssrv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/outrigger-gw/outrigger/discovery"
)

// Defaults for zero Config fields.
const (
	DefaultMinTTL     = time.Second
	DefaultMaxTTL     = 60 * time.Second
	DefaultTimeout    = 2 * time.Second
	DefaultStaleGrace = 5 * time.Minute
	// DefaultResolvConf is where the resolver is read from when
	// Config.Resolver is empty.
	DefaultResolvConf = "/etc/resolv.conf"
)

// ednsSize is the advertised UDP payload size (DNS flag day 2020).
const ednsSize = 1232

// Config configures a Source.
type Config struct {
	// Name is the SRV name, e.g. _web._tcp.service.consul.
	Name string
	// Resolver is host:port (port 53 when omitted); "" means the first
	// nameserver of /etc/resolv.conf.
	Resolver string
	// MinTTL and MaxTTL clamp the refresh interval (defaults 1s, 60s).
	MinTTL, MaxTTL time.Duration
	// Timeout bounds each DNS exchange (default 2s).
	Timeout time.Duration
	// StaleGrace is how long failures keep serving the last set silently
	// (default 5m; negative: no grace, every failure emits an Err update).
	StaleGrace time.Duration
}

// Option tunes a Source.
type Option func(*options)

type options struct {
	resolvConf string
}

// WithResolvConf reads the default resolver from path instead of
// /etc/resolv.conf.
func WithResolvConf(path string) Option {
	return func(o *options) { o.resolvConf = path }
}

// Source watches one SRV name; it implements discovery.Source.
type Source struct {
	cfg    Config
	server string

	// Seams for tests; set by NewSource.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) bool
}

var _ discovery.Source = (*Source)(nil)

// NewSource validates cfg, resolves the default resolver when needed and
// returns a Source. It sends no query.
func NewSource(cfg Config, opts ...Option) (*Source, error) {
	o := options{resolvConf: DefaultResolvConf}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if strings.TrimSpace(cfg.Name) == "" {
		return nil, errors.New("dns_srv: name is required")
	}
	if _, ok := dns.IsDomainName(cfg.Name); !ok {
		return nil, fmt.Errorf("dns_srv: %q is not a domain name", cfg.Name)
	}
	if cfg.MinTTL < 0 || cfg.MaxTTL < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("dns_srv %s: negative duration", cfg.Name)
	}
	if cfg.MinTTL == 0 {
		cfg.MinTTL = DefaultMinTTL
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.MinTTL > cfg.MaxTTL {
		return nil, fmt.Errorf("dns_srv %s: min TTL %s above max TTL %s", cfg.Name, cfg.MinTTL, cfg.MaxTTL)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.StaleGrace == 0 {
		cfg.StaleGrace = DefaultStaleGrace
	}
	server := cfg.Resolver
	if server == "" {
		cc, err := dns.ClientConfigFromFile(o.resolvConf)
		if err != nil {
			return nil, fmt.Errorf("dns_srv %s: reading resolver: %w", cfg.Name, err)
		}
		if len(cc.Servers) == 0 {
			return nil, fmt.Errorf("dns_srv %s: no nameserver in %s", cfg.Name, o.resolvConf)
		}
		port := cc.Port
		if port == "" {
			port = "53"
		}
		server = net.JoinHostPort(cc.Servers[0], port)
	} else if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(strings.Trim(server, "[]"), "53")
	}
	return &Source{cfg: cfg, server: server, now: time.Now, sleep: discovery.Sleep}, nil
}

// Name is "dns_srv:<name>".
func (s *Source) Name() string { return "dns_srv:" + s.cfg.Name }

// Resolver is the host:port queried.
func (s *Source) Resolver() string { return s.server }

// Run refreshes until ctx ends; see the package documentation.
func (s *Source) Run(ctx context.Context, fn func(discovery.Update)) {
	var (
		last         []discovery.Target
		fresh        = true // the next good set is emitted whatever it holds
		haveSet      bool
		failures     int
		failingSince time.Time
	)
	for ctx.Err() == nil {
		ts, ttl, err := s.refresh(ctx)
		if ctx.Err() != nil {
			return
		}
		now := s.now()
		var wait time.Duration
		if err != nil {
			failures++
			if failures == 1 {
				failingSince = now
			}
			wait = s.cfg.MinTTL
			for i := 1; i < failures && wait < s.cfg.MaxTTL; i++ {
				wait *= 2
			}
			wait = min(wait, s.cfg.MaxTTL)
			graceLeft := failingSince.Add(s.cfg.StaleGrace).Sub(now)
			if haveSet && graceLeft > 0 {
				// Serving the last set; retry no later than the grace's end
				// so its expiry is reported on time.
				wait = min(wait, graceLeft)
			} else {
				fresh = true
				fn(discovery.Update{Err: fmt.Errorf("%s: %w", s.Name(), err), At: now, Observed: now})
			}
		} else {
			failures = 0
			if fresh || !equalTargets(ts, last) {
				fresh, haveSet, last = false, true, ts
				fn(discovery.Update{Targets: ts, At: now, Observed: now})
			}
			wait = min(max(ttl, s.cfg.MinTTL), s.cfg.MaxTTL)
		}
		if !s.sleep(ctx, wait) {
			return
		}
	}
}

// RcodeError is a DNS answer with an error rcode other than NXDOMAIN.
type RcodeError struct {
	Name  string
	Type  uint16
	Rcode int
}

func (e *RcodeError) Error() string {
	return fmt.Sprintf("%s %s: %s", dns.TypeToString[e.Type], e.Name, dns.RcodeToString[e.Rcode])
}

// refresh resolves the SRV name once; ttl is the smallest TTL involved.
func (s *Source) refresh(ctx context.Context) ([]discovery.Target, time.Duration, error) {
	ttl := newMinTTL()
	r, err := s.query(ctx, s.cfg.Name, dns.TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	var srvs []*dns.SRV
	switch r.Rcode {
	case dns.RcodeSuccess:
		for _, rr := range r.Answer {
			if srv, ok := rr.(*dns.SRV); ok {
				srvs = append(srvs, srv)
				ttl.add(srv.Hdr.Ttl)
			}
		}
	case dns.RcodeNameError:
	default:
		return nil, 0, &RcodeError{Name: s.cfg.Name, Type: dns.TypeSRV, Rcode: r.Rcode}
	}
	if len(srvs) == 0 {
		ttl.negative(r)
		return []discovery.Target{}, ttl.get(), nil
	}

	extra := map[string][]net.IP{}
	extraTTL := map[string]uint32{}
	for _, rr := range r.Extra {
		name := strings.ToLower(rr.Header().Name)
		var ip net.IP
		switch a := rr.(type) {
		case *dns.A:
			ip = a.A
		case *dns.AAAA:
			ip = a.AAAA
		default:
			continue
		}
		extra[name] = append(extra[name], ip)
		if t, ok := extraTTL[name]; !ok || rr.Header().Ttl < t {
			extraTTL[name] = rr.Header().Ttl
		}
	}

	looked := map[string][]net.IP{}
	type cand struct {
		t      discovery.Target
		weight uint16
	}
	var cands []cand
	for _, srv := range srvs {
		target := strings.ToLower(dns.Fqdn(srv.Target))
		if target == "." {
			continue
		}
		var ips []net.IP
		if ip := net.ParseIP(strings.TrimSuffix(target, ".")); ip != nil {
			ips = []net.IP{ip}
		} else if got, ok := extra[target]; ok {
			ips = got
			ttl.add(extraTTL[target])
		} else if got, ok := looked[target]; ok {
			ips = got
		} else {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
				addrs, err := s.lookup(ctx, target, qt, ttl)
				if err != nil {
					return nil, 0, err
				}
				ips = append(ips, addrs...)
			}
			looked[target] = ips
		}
		w := int(srv.Weight)
		if w == 0 {
			w = 1
		}
		for _, ip := range ips {
			cands = append(cands, cand{
				t: discovery.Target{
					Addr:     net.JoinHostPort(ip.String(), fmt.Sprint(srv.Port)),
					Weight:   w,
					Priority: int(srv.Priority),
				},
				weight: srv.Weight,
			})
		}
	}
	// Keep each address once: lowest priority, then highest weight.
	slices.SortStableFunc(cands, func(a, b cand) int {
		if c := strings.Compare(a.t.Addr, b.t.Addr); c != 0 {
			return c
		}
		if a.t.Priority != b.t.Priority {
			return a.t.Priority - b.t.Priority
		}
		return int(b.weight) - int(a.weight)
	})
	ts := make([]discovery.Target, 0, len(cands))
	for i, c := range cands {
		if i > 0 && c.t.Addr == cands[i-1].t.Addr {
			continue
		}
		ts = append(ts, c.t)
	}
	slices.SortStableFunc(ts, func(a, b discovery.Target) int {
		if a.Priority != b.Priority {
			return a.Priority - b.Priority
		}
		return strings.Compare(a.Addr, b.Addr)
	})
	return ts, ttl.get(), nil
}

// lookup resolves name's records of type qt (A or AAAA), folding their TTLs
// (or the negative TTL) into ttl.
func (s *Source) lookup(ctx context.Context, name string, qt uint16, ttl *minTTL) ([]net.IP, error) {
	r, err := s.query(ctx, name, qt)
	if err != nil {
		return nil, err
	}
	switch r.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return nil, &RcodeError{Name: name, Type: qt, Rcode: r.Rcode}
	}
	var ips []net.IP
	for _, rr := range r.Answer {
		switch a := rr.(type) {
		case *dns.A:
			if qt == dns.TypeA {
				ips = append(ips, a.A)
				ttl.add(a.Hdr.Ttl)
			}
		case *dns.AAAA:
			if qt == dns.TypeAAAA {
				ips = append(ips, a.AAAA)
				ttl.add(a.Hdr.Ttl)
			}
		}
	}
	if len(ips) == 0 {
		ttl.negative(r)
	}
	return ips, nil
}

// query sends one question: UDP with EDNS0, without EDNS0 again on FORMERR,
// over TCP when truncated.
func (s *Source) query(ctx context.Context, name string, qt uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qt)
	m.RecursionDesired = true
	m.SetEdns0(ednsSize, false)

	r, err := s.exchange(ctx, m, "udp")
	if err == nil && r.Rcode == dns.RcodeFormatError {
		m.Extra = nil
		m.Id = dns.Id()
		r, err = s.exchange(ctx, m, "udp")
	}
	if err == nil && r.Truncated {
		m.Id = dns.Id()
		r, err = s.exchange(ctx, m, "tcp")
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s via %s: %w", dns.TypeToString[qt], name, s.server, err)
	}
	return r, nil
}

func (s *Source) exchange(ctx context.Context, m *dns.Msg, network string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	c := &dns.Client{Net: network, Timeout: s.cfg.Timeout}
	r, _, err := c.ExchangeContext(ctx, m, s.server)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", network, err)
	}
	return r, nil
}

// minTTL tracks the smallest TTL seen.
type minTTL struct {
	v   uint32
	set bool
}

func newMinTTL() *minTTL { return &minTTL{} }

func (m *minTTL) add(ttl uint32) {
	if !m.set || ttl < m.v {
		m.v, m.set = ttl, true
	}
}

// negative folds in the negative-caching TTL of an empty answer (RFC 2308:
// the smaller of the SOA record's TTL and its MINIMUM field); no SOA counts
// as 0, i.e. MinTTL after clamping.
func (m *minTTL) negative(r *dns.Msg) {
	for _, rr := range r.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			m.add(min(soa.Hdr.Ttl, soa.Minttl))
			return
		}
	}
	m.add(0)
}

func (m *minTTL) get() time.Duration {
	return time.Duration(m.v) * time.Second
}

// ActiveGroup returns the targets of the lowest priority that has at least
// one healthy target (healthy nil counts every target healthy). When no
// target is healthy at all it returns the lowest priority group, so the
// caller still has somewhere to send traffic. The result keeps the input
// order; it is nil for no targets.
func ActiveGroup(ts []discovery.Target, healthy func(addr string) bool) []discovery.Target {
	if len(ts) == 0 {
		return nil
	}
	prios := make([]int, 0, len(ts))
	for _, t := range ts {
		prios = append(prios, t.Priority)
	}
	slices.Sort(prios)
	prios = slices.Compact(prios)
	group := func(p int) []discovery.Target {
		var g []discovery.Target
		for _, t := range ts {
			if t.Priority == p {
				g = append(g, t)
			}
		}
		return g
	}
	for _, p := range prios {
		for _, t := range ts {
			if t.Priority == p && (healthy == nil || healthy(t.Addr)) {
				return group(p)
			}
		}
	}
	return group(prios[0])
}

func equalTargets(a, b []discovery.Target) bool {
	return slices.EqualFunc(a, b, func(x, y discovery.Target) bool {
		return x.Addr == y.Addr && x.Weight == y.Weight && x.Priority == y.Priority
	})
}
