package dnssrv

import (
	"context"
	"errors"
	"net"
	"os"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/outrigger-gw/outrigger/discovery"
)

// stepTimeout bounds every wait of these tests.
const stepTimeout = 5 * time.Second

// ---- a small authoritative test server on loopback ----

type seenQuery struct {
	Name, Type, Net string
}

type testServer struct {
	t    *testing.T
	addr string

	mu      sync.Mutex
	answer  func(q dns.Question, network string, m *dns.Msg) // fills the reply
	queries []seenQuery
}

// newTestServer serves UDP (and TCP on the same port when tcp is set) on
// 127.0.0.1, port chosen by the kernel.
func newTestServer(t *testing.T, tcp bool) *testServer {
	t.Helper()
	ts := &testServer{t: t}
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if !tcp {
			break
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	ts.addr = pc.LocalAddr().String()
	serve := func(srv *dns.Server, run func() error) {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = run() }()
		select {
		case <-started:
		case <-time.After(stepTimeout):
			t.Fatal("dns test server did not start")
		}
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	udp := &dns.Server{PacketConn: pc, Handler: ts.handler("udp")}
	serve(udp, udp.ActivateAndServe)
	if ln != nil {
		tcpSrv := &dns.Server{Listener: ln, Handler: ts.handler("tcp")}
		serve(tcpSrv, tcpSrv.ActivateAndServe)
	}
	return ts
}

func (ts *testServer) handler(network string) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			_ = w.WriteMsg(m)
			return
		}
		q := r.Question[0]
		ts.mu.Lock()
		ts.queries = append(ts.queries, seenQuery{q.Name, dns.TypeToString[q.Qtype], network})
		answer := ts.answer
		ts.mu.Unlock()
		if answer == nil {
			m.Rcode = dns.RcodeServerFailure
		} else {
			answer(q, network, m)
		}
		if m.Rcode == -1 { // drop: simulate a timeout
			return
		}
		_ = w.WriteMsg(m)
	})
}

func (ts *testServer) setAnswer(f func(q dns.Question, network string, m *dns.Msg)) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.answer = f
}

func (ts *testServer) takeQueries() []seenQuery {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	q := ts.queries
	ts.queries = nil
	return q
}

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("bad RR %q: %v", s, err)
	}
	return r
}

// zone answers from a fixed list of records: records whose owner and type
// match the question go to the answer section; extra goes to the additional
// section of SRV answers; names absent from the zone are NXDOMAIN with a SOA.
type zone struct {
	records []dns.RR
	extra   []dns.RR
	soa     dns.RR
}

func (z zone) answer(q dns.Question, _ string, m *dns.Msg) {
	known := false
	for _, r := range z.records {
		if !equalFold(r.Header().Name, q.Name) {
			continue
		}
		known = true
		if r.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, r)
		}
	}
	if q.Qtype == dns.TypeSRV && len(m.Answer) > 0 {
		m.Extra = append(m.Extra, z.extra...)
	}
	if len(m.Answer) == 0 {
		if !known {
			m.Rcode = dns.RcodeNameError
		}
		if z.soa != nil {
			m.Ns = append(m.Ns, z.soa)
		}
	}
}

func equalFold(a, b string) bool {
	return dns.CanonicalName(a) == dns.CanonicalName(b)
}

// ---- a Run driver with a fake clock ----

type driver struct {
	t       *testing.T
	src     *Source
	updates chan discovery.Update
	sleeps  chan time.Duration
	proceed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}

	mu  sync.Mutex
	now time.Time
}

// drive runs src.Run with a fake clock: each refresh's sleep is reported on
// d.sleeps and lasts until d.next.
func drive(t *testing.T, src *Source) *driver {
	t.Helper()
	d := &driver{
		t:       t,
		src:     src,
		updates: make(chan discovery.Update, 100),
		sleeps:  make(chan time.Duration),
		proceed: make(chan struct{}),
		done:    make(chan struct{}),
		now:     time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	src.now = func() time.Time {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.now
	}
	src.sleep = func(ctx context.Context, dur time.Duration) bool {
		select {
		case d.sleeps <- dur:
		case <-ctx.Done():
			return false
		}
		select {
		case <-d.proceed:
			d.mu.Lock()
			d.now = d.now.Add(dur)
			d.mu.Unlock()
			return true
		case <-ctx.Done():
			return false
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		defer close(d.done)
		src.Run(ctx, func(u discovery.Update) { d.updates <- u })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(stepTimeout):
			t.Error("Run did not return after cancel")
		}
	})
	return d
}

// waitSleep returns the duration of the next sleep Run asks for, i.e. the
// end of one refresh.
func (d *driver) waitSleep() time.Duration {
	d.t.Helper()
	select {
	case dur := <-d.sleeps:
		return dur
	case <-time.After(stepTimeout):
		d.t.Fatal("Run did not finish a refresh in time")
		return 0
	}
}

// next lets the pending sleep end.
func (d *driver) next() {
	d.t.Helper()
	select {
	case d.proceed <- struct{}{}:
	case <-time.After(stepTimeout):
		d.t.Fatal("Run is not sleeping")
	}
}

// drain returns the updates emitted so far (all refreshes up to the last
// waitSleep have completed, so nothing is in flight). Every update must
// carry when its answer arrived (Observed, not after At).
func (d *driver) drain() []discovery.Update {
	var us []discovery.Update
	for {
		select {
		case u := <-d.updates:
			if u.Observed.IsZero() || u.Observed.After(u.At) {
				d.t.Errorf("update Observed %v, want set and not after At %v", u.Observed, u.At)
			}
			us = append(us, u)
		default:
			return us
		}
	}
}

func newSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	s, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addrs(ts []discovery.Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Addr)
	}
	return out
}

// ---- tests ----

func TestPriorityGroupsAndWeights(t *testing.T) {
	srv := newTestServer(t, false)
	z := zone{
		records: []dns.RR{
			rr(t, "_web._tcp.example. 30 IN SRV 10 0 8080 a.example."),
			rr(t, "_web._tcp.example. 30 IN SRV 10 5 8081 b.example."),
			rr(t, "_web._tcp.example. 30 IN SRV 20 3 8082 c.example."),
			// b is also listed with a worse priority: the better record wins.
			rr(t, "_web._tcp.example. 30 IN SRV 30 9 8081 b.example."),
		},
		extra: []dns.RR{
			rr(t, "a.example. 30 IN A 127.0.0.10"),
			rr(t, "b.example. 30 IN A 127.0.0.11"),
			rr(t, "c.example. 30 IN A 127.0.0.12"),
			rr(t, "c.example. 30 IN AAAA ::1"),
		},
	}
	srv.setAnswer(z.answer)
	d := drive(t, newSource(t, Config{Name: "_web._tcp.example", Resolver: srv.addr}))
	d.waitSleep()
	us := d.drain()
	if len(us) != 1 || us[0].Err != nil {
		t.Fatalf("updates = %+v, want one set", us)
	}
	want := []discovery.Target{
		{Addr: "127.0.0.10:8080", Weight: 1, Priority: 10}, // SRV weight 0 -> 1
		{Addr: "127.0.0.11:8081", Weight: 5, Priority: 10},
		{Addr: "127.0.0.12:8082", Weight: 3, Priority: 20},
		{Addr: "[::1]:8082", Weight: 3, Priority: 20},
	}
	if !reflect.DeepEqual(us[0].Targets, want) {
		t.Fatalf("targets =\n%+v\nwant\n%+v", us[0].Targets, want)
	}
	for _, q := range srv.takeQueries() {
		if q.Type != "SRV" {
			t.Errorf("unexpected %s query for %s: the additional section had every address", q.Type, q.Name)
		}
	}
}

func TestSeparateLookupsAndTTL(t *testing.T) {
	srv := newTestServer(t, false)
	z := zone{
		records: []dns.RR{
			rr(t, "_web._tcp.example. 30 IN SRV 1 1 80 a.example."),
			rr(t, "_web._tcp.example. 30 IN SRV 1 1 81 b.example."),
			rr(t, "_web._tcp.example. 30 IN SRV 1 1 82 127.0.0.99."),
			rr(t, "_web._tcp.example. 30 IN SRV 1 1 83 gone.example."),
			rr(t, "_web._tcp.example. 30 IN SRV 1 1 84 ."),
			rr(t, "b.example. 7 IN A 127.0.0.21"),
			rr(t, "b.example. 9 IN AAAA ::1"),
		},
		extra: []dns.RR{rr(t, "a.example. 20 IN A 127.0.0.20")},
		soa:   rr(t, "example. 100 IN SOA ns.example. host.example. 1 7200 900 1209600 12"),
	}
	srv.setAnswer(z.answer)
	d := drive(t, newSource(t, Config{Name: "_web._tcp.example", Resolver: srv.addr}))
	wait := d.waitSleep()
	us := d.drain()
	if len(us) != 1 || us[0].Err != nil {
		t.Fatalf("updates = %+v, want one set", us)
	}
	wantAddrs := []string{"127.0.0.20:80", "127.0.0.21:81", "127.0.0.99:82", "[::1]:81"}
	if got := addrs(us[0].Targets); !reflect.DeepEqual(got, wantAddrs) {
		t.Fatalf("addrs = %v, want %v", got, wantAddrs)
	}
	// SRV 30, additional A 20, b's A 7 and AAAA 9, gone's NXDOMAIN
	// (min(SOA TTL 100, MINIMUM 12) = 12): the next refresh is after 7s.
	if wait != 7*time.Second {
		t.Errorf("next refresh after %s, want 7s (smallest TTL involved)", wait)
	}
	got := map[seenQuery]int{}
	for _, q := range srv.takeQueries() {
		got[q]++
	}
	want := map[seenQuery]int{
		{"_web._tcp.example.", "SRV", "udp"}: 1,
		{"b.example.", "A", "udp"}:           1,
		{"b.example.", "AAAA", "udp"}:        1,
		{"gone.example.", "A", "udp"}:        1,
		{"gone.example.", "AAAA", "udp"}:     1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("queries = %v\nwant %v", got, want)
	}
}

func TestTTLClamping(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		ttl      int
		min, max time.Duration
		want     time.Duration
	}{
		{desc: "ttl 0 refreshes after MinTTL", ttl: 0, want: time.Second},
		{desc: "ttl within bounds is used", ttl: 5, want: 5 * time.Second},
		{desc: "large ttl is capped at MaxTTL", ttl: 3600, want: 60 * time.Second},
		{desc: "custom bounds, below min", ttl: 1, min: 3 * time.Second, max: 10 * time.Second, want: 3 * time.Second},
		{desc: "custom bounds, above max", ttl: 11, min: 3 * time.Second, max: 10 * time.Second, want: 10 * time.Second},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			srv := newTestServer(t, false)
			srv.setAnswer(zone{records: []dns.RR{
				rr(t, "_x._tcp.example. "+strconv.Itoa(tc.ttl)+" IN SRV 1 1 80 127.0.0.1."),
			}}.answer)
			d := drive(t, newSource(t, Config{Name: "_x._tcp.example", Resolver: srv.addr, MinTTL: tc.min, MaxTTL: tc.max}))
			// Two refreshes: the clamped interval is the same each time and
			// exactly one SRV query is sent per refresh.
			for i := range 2 {
				if got := d.waitSleep(); got != tc.want {
					t.Fatalf("refresh %d: next after %s, want %s", i, got, tc.want)
				}
				if n := len(srv.takeQueries()); n != 1 {
					t.Fatalf("refresh %d: %d queries, want 1", i, n)
				}
				d.next()
			}
			d.waitSleep()
			if us := d.drain(); len(us) != 1 {
				t.Errorf("%d updates for an unchanged set over 3 refreshes, want 1", len(us))
			}
		})
	}
}

func TestServfailKeepsStale(t *testing.T) {
	good := zone{records: []dns.RR{
		rr(t, "_web._tcp.example. 5 IN SRV 1 1 80 127.0.0.1."),
	}}.answer
	servfail := func(_ dns.Question, _ string, m *dns.Msg) { m.Rcode = dns.RcodeServerFailure }

	t.Run("no grace: every failure emits Err, never an empty set", func(t *testing.T) {
		srv := newTestServer(t, false)
		srv.setAnswer(good)
		d := drive(t, newSource(t, Config{Name: "_web._tcp.example", Resolver: srv.addr, StaleGrace: -1}))
		d.waitSleep()
		if us := d.drain(); len(us) != 1 || len(us[0].Targets) != 1 {
			t.Fatalf("first updates = %+v", us)
		}
		srv.setAnswer(servfail)
		var waits []time.Duration
		for range 3 {
			d.next()
			waits = append(waits, d.waitSleep())
			us := d.drain()
			if len(us) != 1 || us[0].Err == nil || us[0].Targets != nil {
				t.Fatalf("after SERVFAIL: updates = %+v, want one Err update", us)
			}
			var re *RcodeError
			if !errors.As(us[0].Err, &re) || re.Rcode != dns.RcodeServerFailure {
				t.Errorf("err = %v, want an RcodeError SERVFAIL", us[0].Err)
			}
		}
		if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !reflect.DeepEqual(waits, want) {
			t.Errorf("retry waits = %v, want %v", waits, want)
		}
		// Recovery with the same set emits it again (the consumer saw errors).
		srv.setAnswer(good)
		d.next()
		d.waitSleep()
		if us := d.drain(); len(us) != 1 || us[0].Err != nil || len(us[0].Targets) != 1 {
			t.Fatalf("after recovery: updates = %+v", us)
		}
	})

	t.Run("within grace the last set is served silently", func(t *testing.T) {
		srv := newTestServer(t, false)
		srv.setAnswer(good)
		d := drive(t, newSource(t, Config{Name: "_web._tcp.example", Resolver: srv.addr, StaleGrace: 10 * time.Second}))
		d.waitSleep()
		d.drain()
		srv.setAnswer(servfail)
		// First failure at t=5s, retries after 1s, 2s, 4s; the fourth is
		// capped to the grace's end (t=15s), where Err is emitted and the
		// backoff goes on (16s).
		var waits []time.Duration
		var us []discovery.Update
		for range 5 {
			d.next()
			waits = append(waits, d.waitSleep())
			if us = d.drain(); len(us) > 0 {
				break
			}
		}
		if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 3 * time.Second, 16 * time.Second}; !reflect.DeepEqual(waits, want) {
			t.Errorf("retry waits = %v, want %v", waits, want)
		}
		if len(us) != 1 || us[0].Err == nil {
			t.Fatalf("at the grace's end: updates = %+v, want one Err update", us)
		}
	})

	t.Run("timeout without a set emits Err at once", func(t *testing.T) {
		srv := newTestServer(t, false)
		srv.setAnswer(func(_ dns.Question, _ string, m *dns.Msg) { m.Rcode = -1 }) // never answer
		d := drive(t, newSource(t, Config{Name: "_web._tcp.example", Resolver: srv.addr, Timeout: 100 * time.Millisecond}))
		d.waitSleep()
		us := d.drain()
		if len(us) != 1 || us[0].Err == nil {
			t.Fatalf("updates = %+v, want one Err update", us)
		}
		var ne net.Error
		if !errors.As(us[0].Err, &ne) || !ne.Timeout() {
			t.Errorf("err = %v, want a timeout", us[0].Err)
		}
	})
}

func TestAuthoritativeEmpty(t *testing.T) {
	for _, tc := range []struct {
		desc string
		z    zone
		want time.Duration
	}{
		{
			desc: "NXDOMAIN with SOA uses the negative TTL",
			z:    zone{soa: rr(t, "example. 100 IN SOA ns.example. host.example. 1 7200 900 1209600 4")},
			want: 4 * time.Second,
		},
		{
			desc: "NOERROR without SRV records (and without SOA) refreshes after MinTTL",
			z:    zone{records: []dns.RR{rr(t, "_web._tcp.example. 30 IN TXT \"not srv\"")}},
			want: time.Second,
		},
		{
			desc: "only the root target: service not available",
			z:    zone{records: []dns.RR{rr(t, "_web._tcp.example. 30 IN SRV 0 0 0 .")}},
			want: 30 * time.Second,
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			srv := newTestServer(t, false)
			srv.setAnswer(zone{records: []dns.RR{rr(t, "_web._tcp.example. 30 IN SRV 1 1 80 127.0.0.1.")}}.answer)
			d := drive(t, newSource(t, Config{Name: "_web._tcp.example", Resolver: srv.addr}))
			d.waitSleep()
			if us := d.drain(); len(us) != 1 || len(us[0].Targets) != 1 {
				t.Fatalf("first updates = %+v", us)
			}
			srv.setAnswer(tc.z.answer)
			d.next()
			wait := d.waitSleep()
			us := d.drain()
			if len(us) != 1 || us[0].Err != nil || us[0].Targets == nil || len(us[0].Targets) != 0 {
				t.Fatalf("updates = %+v, want one authoritative empty set", us)
			}
			if wait != tc.want {
				t.Errorf("next refresh after %s, want %s", wait, tc.want)
			}
		})
	}
}

func TestTruncationRetriesOverTCP(t *testing.T) {
	srv := newTestServer(t, true)
	full := zone{
		records: []dns.RR{
			rr(t, "_big._tcp.example. 30 IN SRV 1 1 80 a.example."),
			rr(t, "_big._tcp.example. 30 IN SRV 1 1 81 a.example."),
		},
		extra: []dns.RR{rr(t, "a.example. 30 IN A 127.0.0.30")},
	}
	srv.setAnswer(func(q dns.Question, network string, m *dns.Msg) {
		if network == "udp" {
			m.Truncated = true // too big for UDP: no records, TC set
			return
		}
		full.answer(q, network, m)
	})
	d := drive(t, newSource(t, Config{Name: "_big._tcp.example", Resolver: srv.addr}))
	d.waitSleep()
	us := d.drain()
	if len(us) != 1 || us[0].Err != nil {
		t.Fatalf("updates = %+v", us)
	}
	if got, want := addrs(us[0].Targets), []string{"127.0.0.30:80", "127.0.0.30:81"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("addrs = %v, want %v", got, want)
	}
	want := []seenQuery{{"_big._tcp.example.", "SRV", "udp"}, {"_big._tcp.example.", "SRV", "tcp"}}
	if got := srv.takeQueries(); !reflect.DeepEqual(got, want) {
		t.Errorf("queries = %v, want %v", got, want)
	}
}

func TestChangesOnlyEmitWhenSetChanges(t *testing.T) {
	srv := newTestServer(t, false)
	one := zone{records: []dns.RR{rr(t, "_w._tcp.example. 1 IN SRV 1 1 80 127.0.0.1.")}}.answer
	two := zone{records: []dns.RR{
		rr(t, "_w._tcp.example. 1 IN SRV 1 1 80 127.0.0.1."),
		rr(t, "_w._tcp.example. 1 IN SRV 1 1 81 127.0.0.1."),
	}}.answer
	srv.setAnswer(one)
	d := drive(t, newSource(t, Config{Name: "_w._tcp.example", Resolver: srv.addr}))
	var counts []int
	for i, answer := range []func(dns.Question, string, *dns.Msg){one, one, two, two, one} {
		if i > 0 {
			srv.setAnswer(answer)
			d.next()
		}
		d.waitSleep()
		counts = append(counts, len(d.drain()))
	}
	if want := []int{1, 0, 1, 0, 1}; !reflect.DeepEqual(counts, want) {
		t.Errorf("updates per refresh = %v, want %v", counts, want)
	}
}

func TestNewSource(t *testing.T) {
	dir := t.TempDir()
	conf := dir + "/resolv.conf"
	if err := writeFile(conf, "search example\nnameserver 127.0.0.53\nnameserver 127.0.0.54\noptions ndots:1\n"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc    string
		cfg     Config
		resolv  string
		want    string
		wantErr bool
	}{
		{desc: "explicit resolver", cfg: Config{Name: "_a._tcp.x", Resolver: "127.0.0.1:5353"}, want: "127.0.0.1:5353"},
		{desc: "resolver without port", cfg: Config{Name: "_a._tcp.x", Resolver: "127.0.0.1"}, want: "127.0.0.1:53"},
		{desc: "IPv6 resolver without port", cfg: Config{Name: "_a._tcp.x", Resolver: "::1"}, want: "[::1]:53"},
		{desc: "first nameserver of resolv.conf", cfg: Config{Name: "_a._tcp.x"}, resolv: conf, want: "127.0.0.53:53"},
		{desc: "unreadable resolv.conf", cfg: Config{Name: "_a._tcp.x"}, resolv: dir + "/missing", wantErr: true},
		{desc: "name required", cfg: Config{Resolver: "127.0.0.1:53"}, wantErr: true},
		{desc: "min above max", cfg: Config{Name: "_a._tcp.x", Resolver: "127.0.0.1:53", MinTTL: time.Minute, MaxTTL: time.Second}, wantErr: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var opts []Option
			if tc.resolv != "" {
				opts = append(opts, WithResolvConf(tc.resolv))
			}
			s, err := NewSource(tc.cfg, opts...)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("NewSource succeeded, want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Resolver() != tc.want {
				t.Errorf("resolver = %s, want %s", s.Resolver(), tc.want)
			}
			if s.Name() != "dns_srv:"+tc.cfg.Name {
				t.Errorf("name = %s", s.Name())
			}
		})
	}
}

func TestActiveGroup(t *testing.T) {
	ts := []discovery.Target{
		{Addr: "a:1", Priority: 10},
		{Addr: "b:1", Priority: 10},
		{Addr: "c:1", Priority: 20},
		{Addr: "d:1", Priority: 30},
		{Addr: "e:1", Priority: 20},
	}
	healthyOnly := func(addrs ...string) func(string) bool {
		return func(a string) bool {
			for _, h := range addrs {
				if h == a {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		desc    string
		ts      []discovery.Target
		healthy func(string) bool
		want    []string
	}{
		{desc: "no targets", ts: nil, healthy: nil, want: nil},
		{desc: "nil health: lowest group", ts: ts, healthy: nil, want: []string{"a:1", "b:1"}},
		{desc: "one healthy in the lowest group keeps the whole group", ts: ts, healthy: healthyOnly("b:1", "c:1"), want: []string{"a:1", "b:1"}},
		{desc: "lowest group all unhealthy: next group", ts: ts, healthy: healthyOnly("e:1", "d:1"), want: []string{"c:1", "e:1"}},
		{desc: "only the last group healthy", ts: ts, healthy: healthyOnly("d:1"), want: []string{"d:1"}},
		{desc: "nothing healthy: lowest group", ts: ts, healthy: healthyOnly(), want: []string{"a:1", "b:1"}},
		{desc: "single group", ts: ts[:2], healthy: healthyOnly(), want: []string{"a:1", "b:1"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := addrs(ActiveGroup(tc.ts, tc.healthy)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ActiveGroup = %v, want %v", got, tc.want)
			}
		})
	}
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}
