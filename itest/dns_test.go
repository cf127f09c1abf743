package itest

// DNS SRV discovery through the real binary: against a real Consul agent's
// DNS interface, and against a small authoritative server written here
// (miekg/dns, UDP on 127.0.0.1, kernel-chosen port) whose answers the tests
// change.
//
// Facts the tests rely on (discovery/dnssrv/dnssrv.go): the source refreshes
// after the smallest TTL involved, clamped to [min_ttl, max_ttl], and never
// sooner than min_ttl after a success or a failure; SERVFAIL keeps the last
// set silently (stale grace 5m); NXDOMAIN is an authoritative empty set,
// which the upstream applies after empty_grace.
//
// Helpers are prefixed dn; the cs helpers come from consul_test.go.

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/outrigger-gw/outrigger/internal/consultest"
)

// dnSRV is one SRV record of the test server, pointing at a backend.
type dnSRV struct {
	priority, weight uint16
	b                *backend
}

// dnServer is an authoritative server for one SRV name. Every SRV target
// is <backend name>.backends.outrigger.test., with its A record
// (127.0.0.1) in the additional section, and answered on its own too.
type dnServer struct {
	Addr string
	name string // the SRV name, fully qualified, lower case

	mu    sync.Mutex
	rcode int    // for the SRV name
	ttl   uint32 // of every record
	srvs  []dnSRV

	srvQueries atomic.Int64
	servfails  atomic.Int64
	nxdomains  atomic.Int64
}

const dnZone = "outrigger.test."

func dnStart(t testing.TB, name string) *dnServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnServer{Addr: pc.LocalAddr().String(), name: strings.ToLower(dns.Fqdn(name)), rcode: dns.RcodeServerFailure}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("dns test server did not start")
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	return s
}

// set replaces what the SRV name answers: rcode (dns.RcodeSuccess with
// srvs, dns.RcodeNameError, dns.RcodeServerFailure) and the TTL of every
// record.
func (s *dnServer) set(rcode int, ttl uint32, srvs ...dnSRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcode, s.ttl, s.srvs = rcode, ttl, srvs
}

func (s *dnServer) soa(ttl uint32) dns.RR {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: dnZone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  "ns." + dnZone, Mbox: "hostmaster." + dnZone, Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: ttl,
	}
}

func (s *dnServer) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	rcode, ttl, srvs := s.rcode, s.ttl, s.srvs
	s.mu.Unlock()
	a := func(owner string) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IPv4(127, 0, 0, 1)}
	}
	switch {
	case name == s.name:
		if q.Qtype != dns.TypeSRV {
			m.Ns = append(m.Ns, s.soa(ttl))
			break
		}
		s.srvQueries.Add(1)
		switch rcode {
		case dns.RcodeSuccess:
			for _, rec := range srvs {
				target := rec.b.Name + ".backends." + dnZone
				_, ps, _ := net.SplitHostPort(rec.b.Addr)
				port, _ := strconv.Atoi(ps)
				m.Answer = append(m.Answer, &dns.SRV{
					Hdr:      dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
					Priority: rec.priority, Weight: rec.weight, Port: uint16(port), Target: target,
				})
				m.Extra = append(m.Extra, a(target))
			}
		case dns.RcodeNameError:
			s.nxdomains.Add(1)
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, s.soa(ttl))
		default:
			s.servfails.Add(1)
			m.Rcode = rcode
		}
	case strings.HasSuffix(name, ".backends."+dnZone) && q.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, a(q.Name))
	case strings.HasSuffix(name, ".backends."+dnZone):
		m.Ns = append(m.Ns, s.soa(ttl))
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa(ttl))
	}
	_ = w.WriteMsg(m)
}

// dnActiveChecks is an active health check block (probes of /health every
// 100ms; unhealthy after 2 failures, healthy after 1 success).
const dnActiveChecks = `    healthchecks:
      active:
        http_path: /health
        timeout: 1
        healthy: {interval: 0.1, successes: 1}
        unhealthy: {interval: 0.1, http_failures: 2, tcp_failures: 2}
`

// dnConfig is one upstream u discovered from the SRV name through resolver
// (min_ttl 1s, max_ttl 5s), with extra upstream keys, and a catch-all
// route to it.
func dnConfig(name, resolver, grace, extra string) string {
	return fmt.Sprintf(`
upstreams:
  - name: u
    discovery:
      dns_srv: {name: %s, resolver: "%s", min_ttl: 1s, max_ttl: 5s}
      empty_grace: %s
%sservices:
  - {name: s, host: u, retries: 2, connect_timeout: 1000, routes: [{name: r, paths: [/]}]}
`, name, resolver, grace, extra)
}

// TestDNSSRVConsul: _web._tcp.service.consul from a real agent's DNS
// interface; both registered instances get traffic, split by their
// Consul weights (the SRV weights), and a deregistered one leaves.
func TestDNSSRVConsul(t *testing.T) {
	ag := consultest.Start(t)
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	ra, rb := csInstance(t, "web", "web-a", a), csInstance(t, "web", "web-b", b)
	ra.Weights = &api.AgentWeights{Passing: 3, Warning: 1}
	rb.Weights = &api.AgentWeights{Passing: 1, Warning: 1}
	csRegister(t, ag, ra)
	csRegister(t, ag, rb)
	g := startGateway(t, dnConfig("_web._tcp.service.consul", ag.DNSAddr, "5s", ""))
	c := newClient()

	t.Run("both instances get traffic", func(t *testing.T) {
		csWaitBackends(t, c, g, 15*time.Second, "a", "b")
		csWaitSplit(t, c, g, 15*time.Second, map[string]int{"a": 30, "b": 10})
		if got := csSpread(t, c, g, 400); got["a"] != 300 || got["b"] != 100 {
			t.Fatalf("400 sequential requests split %v, want exactly a=300 b=100 (SRV weights 3 and 1)", got)
		}
	})
	t.Run("a deregistered instance leaves at the next refresh", func(t *testing.T) {
		csDeregister(t, ag, "web-b")
		start := time.Now()
		csWaitBackends(t, c, g, 10*time.Second, "a")
		t.Logf("deregistration -> SRV answer without b applied after %.0fms (Consul's DNS TTL 0, min_ttl 1s)", csMS(time.Since(start)))
	})
}

// TestDNSSRVServer runs the gateway against the test server.
func TestDNSSRVServer(t *testing.T) {
	const name = "_web._tcp.outrigger.test"

	for _, tc := range []struct {
		desc string
		ttl  uint32 // of every record; min_ttl is 1s, max_ttl 5s
	}{
		{desc: "TTL 1s (= min_ttl): a changed record set is picked up", ttl: 1},
		{desc: "TTL 2s (> min_ttl): refreshes follow the record TTL", ttl: 2},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s := dnStart(t, name)
			a := startBackend(t, "a", nil)
			b := startBackend(t, "b", nil)
			s.set(dns.RcodeSuccess, tc.ttl, dnSRV{10, 1, a})
			started := time.Now()
			g := startGateway(t, dnConfig(name, s.Addr, "5s", ""))
			c := newClient()
			csWaitBackends(t, c, g, 10*time.Second, "a")

			s.set(dns.RcodeSuccess, tc.ttl, dnSRV{10, 1, b})
			changed := time.Now()
			csWaitBackends(t, c, g, 10*time.Second, "b")
			t.Logf("record change (TTL %ds) -> traffic moved after %.0fms", tc.ttl, csMS(time.Since(changed)))
			// Refreshes are at least the TTL apart (a lower bound the
			// source's sleep guarantees): at most one query per TTL
			// since the start, plus the first.
			elapsed := time.Since(started)
			q := s.srvQueries.Load()
			limit := int64(elapsed/(time.Duration(tc.ttl)*time.Second)) + 1
			t.Logf("%d SRV queries in %.1fs (at most %d allowed by the TTL)", q, elapsed.Seconds(), limit)
			if q > limit {
				t.Fatalf("%d SRV queries in %s: refreshes closer than the %ds TTL (want <= %d)", q, elapsed, tc.ttl, limit)
			}
		})
	}

	t.Run("priority groups: the lowest group with a healthy target gets all traffic", func(t *testing.T) {
		s := dnStart(t, name)
		p1, health1 := csHealthBackend(t, "p1")
		p2, _ := csHealthBackend(t, "p2")
		s.set(dns.RcodeSuccess, 1, dnSRV{10, 1, p1}, dnSRV{20, 1, p2})
		g := startGateway(t, dnConfig(name, s.Addr, "5s", dnActiveChecks))
		c := newClient()
		csWaitBackends(t, c, g, 10*time.Second, "p1")
		if got := csSpread(t, c, g, 50); got["p1"] != 50 {
			t.Fatalf("50 requests split %v, want all on the priority-10 group", got)
		}

		health1.Store(http.StatusInternalServerError)
		csWaitBackends(t, c, g, 10*time.Second, "p2")
		if got := csSpread(t, c, g, 50); got["p2"] != 50 {
			t.Fatalf("with p1 unhealthy 50 requests split %v, want all on the priority-20 group", got)
		}

		health1.Store(http.StatusOK)
		csWaitBackends(t, c, g, 10*time.Second, "p1")
	})

	t.Run("SERVFAIL keeps the stale set", func(t *testing.T) {
		s := dnStart(t, name)
		a := startBackend(t, "a", nil)
		b := startBackend(t, "b", nil)
		s.set(dns.RcodeSuccess, 1, dnSRV{10, 1, a}, dnSRV{10, 1, b})
		g := startGateway(t, dnConfig(name, s.Addr, "1s", ""))
		c := newClient()
		csWaitBackends(t, c, g, 10*time.Second, "a", "b")

		s.set(dns.RcodeServerFailure, 1)
		// Keep sending while the server fails: every request must succeed
		// on the old set. Three failed refreshes (retried after 1s, then
		// 2s) outlast empty_grace (1s) well.
		got := map[string]int{}
		csPoll(t, 15*time.Second, func() bool {
			for k, v := range csSpread(t, c, g, 10) {
				got[k] += v
			}
			return s.servfails.Load() >= 3
		}, func() string { return fmt.Sprintf("3 SERVFAIL answers (sent %d)", s.servfails.Load()) })
		if got["a"] == 0 || got["b"] == 0 {
			t.Fatalf("during SERVFAIL requests split %v, want both a and b", got)
		}
		csWaitBackends(t, c, g, 5*time.Second, "a", "b")
		if v := csMetric(t, g, `outrigger_discovery_targets{source="dns_srv:`+name+`",upstream="u"}`); v != 2 {
			t.Fatalf("outrigger_discovery_targets = %v during SERVFAIL, want 2", v)
		}
		t.Logf("%d SERVFAIL answers, %d requests all served by the stale set %v", s.servfails.Load(), got["a"]+got["b"], got)
	})

	t.Run("NXDOMAIN empties the upstream after empty_grace", func(t *testing.T) {
		s := dnStart(t, name)
		a := startBackend(t, "a", nil)
		s.set(dns.RcodeSuccess, 1, dnSRV{10, 1, a})
		g := startGateway(t, dnConfig(name, s.Addr, "2s", ""))
		c := newClient()
		csWaitBackends(t, c, g, 10*time.Second, "a")

		s.set(dns.RcodeNameError, 1)
		const pendingMsg = "discovery answered empty; dropping the targets after the grace unless they come back"
		waitFor(t, 10*time.Second, "the empty answer to be seen", func() bool { return len(g.logsWhere(pendingMsg)) > 0 })
		// Within the grace the targets stay.
		if who := csWho(t, c, g); who != "a" {
			t.Fatalf("right after the empty answer (grace 2s) the request got %q, want a", who)
		}
		var body string
		csPoll(t, 10*time.Second, func() bool {
			who, b, err := csTry(c, g.url("/x"))
			if err != nil {
				t.Fatal(err)
			}
			body = b
			return who == "status 503"
		}, func() string { return "503 after empty_grace (last body " + body + ")" })
		if strings.TrimSpace(body) != csNoPeer {
			t.Fatalf("503 body %q, want %s", body, csNoPeer)
		}
		resp, err := c.Get(g.url("/x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 503 || !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("got %d %q, want 503 JSON", resp.StatusCode, ct)
		}
		if len(g.logsWhere("discovery: no targets")) == 0 {
			t.Fatalf("no \"discovery: no targets\" log line")
		}
		if v := csMetric(t, g, `outrigger_discovery_targets{source="dns_srv:`+name+`",upstream="u"}`); v != 0 {
			t.Fatalf("outrigger_discovery_targets = %v, want 0", v)
		}

		// The name comes back: so does the traffic.
		s.set(dns.RcodeSuccess, 1, dnSRV{10, 1, a})
		csWaitBackends(t, c, g, 10*time.Second, "a")
	})
}
