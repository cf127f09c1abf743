package nacos

import (
	"errors"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/internal/nacostest"
)

func TestSourceRegistrationsAndDeregistrations(t *testing.T) {
	e := server(t)
	pool := newPool(t)
	svc := uniqueService(t, "web")

	a := registerOther(t, e, pool, svc, model.Instance{Port: 9001, Weight: 1, Healthy: true, Enable: true})
	b := registerOther(t, e, pool, svc, model.Instance{Port: 9002, Weight: 1, Healthy: true, Enable: true})
	src, err := NewSource(pool, e.sourceConfig(svc))
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, src)
	u := w.set(a.addr(), b.addr())
	for _, tg := range u.Targets {
		if tg.Weight != 100 {
			t.Errorf("%s: weight %d, want 100 (Nacos weight 1)", tg.Addr, tg.Weight)
		}
	}

	// Change -> emission latency, from just before the SDK call to the
	// update's At. Bounded repetitions, each change followed by its
	// emission before the next.
	const reps = 10
	var lat []time.Duration
	for range reps {
		t0 := time.Now()
		b.deregister()
		u := w.set(a.addr())
		lat = append(lat, u.At.Sub(t0))
		t0 = time.Now()
		b.register()
		u = w.set(a.addr(), b.addr())
		lat = append(lat, u.At.Sub(t0))
		// Observed is the push's arrival: after the change, not after
		// the emission.
		if u.Observed.Before(t0) || u.Observed.After(u.At) {
			t.Errorf("update Observed %v, want between the change %v and At %v", u.Observed, t0, u.At)
		}
	}
	t.Logf("nacos change -> emission (server push, %s), %d changes: p50 %s, p99 %s, max %s",
		serverKind(e), len(lat), percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
	if e.fake != nil {
		// Pushes only: no request per change. (The SDK's redo may repeat
		// the first subscription: its on-connect redo runs asynchronously
		// after the client starts.)
		if n := e.fake.Requests("SubscribeServiceRequest"); n > 2 {
			t.Errorf("%d subscribe requests for %d changes, want at most 2", n, 2*reps)
		}
		if n := e.fake.Requests("ServiceQueryRequest"); n != 0 {
			t.Errorf("%d query requests, want none", n)
		}
	}

	// The last instances leaving: an authoritative empty set.
	b.deregister()
	w.set(a.addr())
	a.deregister()
	u = w.set()
	if u.Err != nil || len(u.Targets) != 0 {
		t.Fatalf("want an authoritative empty set, got %s", render(u))
	}
	for _, u := range w.since(0) {
		if u.Err != nil {
			t.Errorf("unexpected error update: %v", u.Err)
		}
	}
}

func serverKind(e *env) string {
	if e.fake != nil {
		return "in-process fake"
	}
	return "real server " + e.addr
}

func TestSourceFilters(t *testing.T) {
	e := server(t)
	pool := newPool(t)
	svc := uniqueService(t, "filters")

	reg := func(port uint64, cluster string, w float64, healthy, enabled bool, md map[string]string) *other {
		return registerOther(t, e, pool, svc, model.Instance{
			Port: port, ClusterName: cluster, Weight: w, Healthy: healthy, Enable: enabled, Metadata: md,
		})
	}
	a := reg(9101, "A", 0.5, true, true, map[string]string{"zone": "a", "ver": "1"})
	b := reg(9102, "B", 1.234, true, true, map[string]string{"zone": "b"})
	c := reg(9103, "A", 0.001, true, true, map[string]string{"zone": "a", "ver": "2"})
	reg(9104, "A", 1, false, true, nil) // unhealthy
	reg(9105, "A", 1, true, false, nil) // disabled
	reg(9106, "A", 0, true, true, nil)  // weight 0

	newSrc := func(mod func(*SourceConfig)) *recorder {
		cfg := e.sourceConfig(svc)
		mod(&cfg)
		s, err := NewSource(pool, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return watch(t, s)
	}
	all := newSrc(func(*SourceConfig) {})
	clusterA := newSrc(func(c *SourceConfig) { c.Clusters = []string{"A"} })
	zoneA1 := newSrc(func(c *SourceConfig) { c.Metadata = map[string]string{"zone": "a", "ver": "1"} })
	none := newSrc(func(c *SourceConfig) { c.Clusters = []string{"B"}; c.Metadata = map[string]string{"zone": "a"} })

	u := all.set(a.addr(), b.addr(), c.addr())
	want := map[string]int{a.addr(): 50, b.addr(): 123, c.addr(): 1}
	if got := weightsOf(u); !maps.Equal(got, want) {
		t.Errorf("weights %v, want %v", got, want)
	}
	if md := u.Targets[0].Meta; md["zone"] != "a" || md["ver"] != "1" {
		t.Errorf("%s: meta %v", u.Targets[0].Addr, md)
	}
	clusterA.set(a.addr(), c.addr())
	zoneA1.set(a.addr())
	none.set()

	// The four Sources share one SDK client.
	if st := pool.Stats(); st.SharedClients != 1 || st.SharedRefs != 4 {
		t.Errorf("pool stats %+v, want 1 shared client with 4 refs", st)
	}

	t.Run("health, enabled and weight flips", func(t *testing.T) {
		e.needFake(t)
		k := nacostest.ServiceKey{Service: svc}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(e.fake.SetHealthy(k, a.addr(), false))
		all.set(b.addr(), c.addr())
		must(e.fake.SetEnabled(k, b.addr(), false))
		all.set(c.addr())
		must(e.fake.SetWeight(k, c.addr(), 2.5))
		u := all.set(c.addr())
		if u.Targets[0].Weight != 250 {
			t.Errorf("weight %d, want 250", u.Targets[0].Weight)
		}
		must(e.fake.SetWeight(k, c.addr(), 0))
		all.set()
		must(e.fake.SetHealthy(k, "127.0.0.1:9104", true))
		all.set("127.0.0.1:9104")
		must(e.fake.SetEnabled(k, "127.0.0.1:9105", true))
		must(e.fake.SetWeight(k, "127.0.0.1:9106", 1))
		must(e.fake.SetHealthy(k, a.addr(), true))
		must(e.fake.SetEnabled(k, b.addr(), true))
		all.set(a.addr(), b.addr(), "127.0.0.1:9104", "127.0.0.1:9105", "127.0.0.1:9106")
	})
}

func TestRegistrar(t *testing.T) {
	e := server(t)
	pool := newPool(t)
	svc := uniqueService(t, "reg")

	src, err := NewSource(pool, e.sourceConfig(svc))
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, src)
	w.set()

	var ev events
	cfg := e.registration(svc, 9201)
	cfg.Weight = 2.5
	cfg.Cluster = "blue"
	cfg.Metadata = map[string]string{"version": "1.2.3"}
	r, err := NewRegistrar(pool, cfg, WithOnEvent(ev.record))
	if err != nil {
		t.Fatal(err)
	}
	stop := runRegistrar(t, r)
	u := w.set(addr(9201))
	if tg := u.Targets[0]; tg.Weight != 250 || tg.Meta["version"] != "1.2.3" {
		t.Errorf("target %+v, want weight 250 and version metadata", tg)
	}
	// The server pushes before it answers the registration.
	poll(t, "successful register event", func() bool { return ev.has(EventRegister) })
	if e.fake != nil {
		ins := e.fake.Instances("", "", svc)
		if len(ins) != 1 || ins[0].Cluster != "blue" || !ins[0].Ephemeral || ins[0].Weight != 2.5 {
			t.Errorf("server holds %+v", ins)
		}
	}
	if st := pool.Stats(); st.DedicatedClients != 1 {
		t.Errorf("pool stats %+v, want 1 dedicated client", st)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	u = w.set()
	if u.Err != nil {
		t.Fatal(u.Err)
	}
	if !ev.has(EventDeregister) {
		t.Errorf("events %s: no successful deregister", &ev)
	}
	if st := pool.Stats(); st.DedicatedClients != 0 {
		t.Errorf("pool stats %+v, want the registrar's client closed", st)
	}
}

func TestDropConnections(t *testing.T) {
	e := server(t)
	e.needFake(t)
	skipUnderRaceSDKReconnect(t)
	pool := newPool(t)
	svc := uniqueService(t, "drop")

	var ev events
	r, err := NewRegistrar(pool, e.registration(svc, 9301), WithOnEvent(ev.record))
	if err != nil {
		t.Fatal(err)
	}
	runRegistrar(t, r)
	o := registerOther(t, e, pool, svc, model.Instance{Port: 9302, Weight: 1, Healthy: true, Enable: true})
	src, err := NewSource(pool, e.sourceConfig(svc))
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, src)
	w.set(addr(9301), o.addr())

	connOf := func(a string) string {
		for _, in := range e.fake.Instances("", "", svc) {
			if in.Addr() == a {
				return in.ConnectionID
			}
		}
		return ""
	}
	const rounds = 3
	for i := range rounds {
		before := connOf(addr(9301))
		m := w.mark()
		t0 := time.Now()
		if n := e.fake.DropConnections(); n < 3 {
			t.Fatalf("dropped %d connections, want at least 3", n)
		}
		// The registrar's redo registers the instance on a new connection.
		poll(t, "registrar's instance back", func() bool {
			id := connOf(addr(9301))
			return id != "" && id != before
		})
		poll(t, "other instance back", func() bool { return connOf(o.addr()) != "" })
		w.set(addr(9301), o.addr())
		t.Logf("round %d: recovered in %s; updates: %s", i+1, time.Since(t0), renderAll(w.since(m)))
		w.noEmptySince(m, "connections dropped")
	}
	poll(t, "reconnect events", func() bool { return ev.has(EventReconnect) })
	if !ev.has("disconnect:" + ErrDisconnected.Error()) {
		t.Errorf("events %s: no disconnect", &ev)
	}
}

func TestServerStopAndRestart(t *testing.T) {
	e := server(t)
	e.needFake(t)
	skipUnderRaceSDKReconnect(t)
	pool := newPool(t)
	svc := uniqueService(t, "restart")

	var ev events
	r, err := NewRegistrar(pool, e.registration(svc, 9401), WithOnEvent(ev.record))
	if err != nil {
		t.Fatal(err)
	}
	runRegistrar(t, r)
	src, err := NewSource(pool, e.sourceConfig(svc))
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, src)
	w.set(addr(9401))

	m := w.mark()
	e.fake.Stop()
	w.errUpdate(ErrDisconnected)
	poll(t, "registrar saw the outage", func() bool { return ev.has("disconnect:" + ErrDisconnected.Error()) })
	// Stay down a while: the SDK backs off between reconnect attempts.
	w.drain(1500 * time.Millisecond)
	t0 := time.Now()
	e.fake.Restart()
	w.set(addr(9401))
	t.Logf("recovered %s after restart; updates: %s", time.Since(t0), renderAll(w.since(m)))
	w.noEmptySince(m, "server stopped and restarted")
	if ins := e.fake.Instances("", "", svc); len(ins) != 1 {
		t.Errorf("after restart the server holds %+v", ins)
	}
}

// TestEmptyAfterReconnectIsHeld checks the hold directly: the instance's
// owner stays away after the server restarts, so the empty answer is held
// for the grace, then emitted.
func TestEmptyAfterReconnectIsHeld(t *testing.T) {
	e := server(t)
	e.needFake(t)
	skipUnderRaceSDKReconnect(t)
	pool := newPool(t)
	otherPool := newPool(t)
	svc := uniqueService(t, "hold")

	o := registerOther(t, e, otherPool, svc, model.Instance{Port: 9501, Weight: 1, Healthy: true, Enable: true})
	const grace = 1500 * time.Millisecond
	src, err := NewSource(pool, e.sourceConfig(svc), WithReconnectGrace(grace))
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, src)
	w.set(o.addr())

	// The owner goes away for good while the server is down.
	m := w.mark()
	e.fake.Stop()
	o.close()
	w.errUpdate(ErrDisconnected)
	e.fake.Restart()
	w.errUpdate(ErrEmptyAfterReconnect)
	held := time.Now()
	u := w.set()
	if d := time.Since(held); d < grace/2 {
		t.Errorf("empty set emitted %s after the hold began, want about %s", d, grace)
	}
	if u.Err != nil {
		t.Fatal(u.Err)
	}
	t.Logf("updates: %s", renderAll(w.since(m)))
}

func TestPoolSharesClients(t *testing.T) {
	e := server(t)
	parent := t.TempDir()
	pool := NewPool(WithTempDir(parent))
	t.Cleanup(func() { _ = pool.Close() })
	svc1, svc2 := uniqueService(t, "share1"), uniqueService(t, "share2")

	s1, err := NewSource(pool, e.sourceConfig(svc1))
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := e.sourceConfig(svc2)
	cfg2.Clusters = []string{"X"}
	s2, err := NewSource(pool, cfg2)
	if err != nil {
		t.Fatal(err)
	}
	w1, w2 := watch(t, s1), watch(t, s2)
	w1.set()
	w2.set()
	if st := pool.Stats(); st != (PoolStats{SharedClients: 1, SharedRefs: 2, Created: 1}) {
		t.Errorf("two sources on one server and namespace: stats %+v", st)
	}
	if e.fake != nil {
		if n := e.fake.Connections(); n != 1 {
			t.Errorf("server sees %d connections, want 1", n)
		}
	}

	// Another namespace needs another client.
	cfg3 := e.sourceConfig(svc1)
	cfg3.Namespace = "outrigger-test-ns"
	s3, err := NewSource(pool, cfg3)
	if err != nil {
		t.Fatal(err)
	}
	w3 := watch(t, s3)
	w3.until("any update", func(discovery.Update) bool { return true })
	if st := pool.Stats(); st.SharedClients != 2 || st.SharedRefs != 3 || st.Created != 2 {
		t.Errorf("third source in another namespace: stats %+v", st)
	}

	w1.stop()
	if st := pool.Stats(); st.SharedClients != 2 || st.SharedRefs != 2 {
		t.Errorf("after one source stopped: stats %+v", st)
	}
	w2.stop()
	w3.stop()
	if st := pool.Stats(); st.SharedClients != 0 || st.SharedRefs != 0 || st.Created != 2 {
		t.Errorf("after all sources stopped: stats %+v", st)
	}
	poll(t, "client directories removed", func() bool {
		ents, err := os.ReadDir(parent)
		return err == nil && len(ents) == 0
	})
}

func TestSourceWhileServerDown(t *testing.T) {
	e := server(t)
	e.needFake(t)
	e.fake.Stop()
	pool := newPool(t)
	src, err := NewSource(pool, e.sourceConfig(uniqueService(t, "down")))
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, src)
	w.errUpdate(ErrDisconnected)
	e.fake.Restart()
	u := w.set()
	if u.Err != nil {
		t.Fatal(u.Err)
	}
}

func TestDefaultGRPCPortAndAuth(t *testing.T) {
	t.Run("grpc port = http port + 1000", func(t *testing.T) {
		e := server(t, nacostest.WithPortOffset())
		if e.fake != nil {
			e.grpcPort = 0
		}
		pool := newPool(t)
		svc := uniqueService(t, "offset")
		registerOther(t, e, pool, svc, model.Instance{Port: 9601, Weight: 1, Healthy: true, Enable: true})
		src, err := NewSource(pool, e.sourceConfig(svc))
		if err != nil {
			t.Fatal(err)
		}
		watch(t, src).set(addr(9601))
	})
	t.Run("credentials", func(t *testing.T) {
		e := server(t, nacostest.WithAuth("outrigger", "s3cret"))
		e.needFake(t)
		pool := newPool(t)
		svc := uniqueService(t, "auth")

		good := e.sourceConfig(svc)
		good.Username, good.Password = "outrigger", "s3cret"
		s, err := NewSource(pool, good)
		if err != nil {
			t.Fatal(err)
		}
		watch(t, s).set()

		t.Run("wrong password", func(t *testing.T) {
			// A failed request makes the SDK client reconnect.
			skipUnderRaceSDKReconnect(t)
			bad := good
			bad.Password = "wrong"
			s, err = NewSource(pool, bad, WithBackoff(50*time.Millisecond, 200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			w := watch(t, s)
			u, _ := w.until("a subscribe error", func(u discovery.Update) bool {
				return u.Err != nil && !errors.Is(u.Err, ErrDisconnected)
			})
			t.Logf("wrong password: %v", u.Err)
			if st := pool.Stats(); st.SharedClients != 2 {
				t.Errorf("credentials are part of the client key: stats %+v", st)
			}
			w.drain(300 * time.Millisecond)
			for _, u := range w.since(0) {
				if u.Err == nil {
					t.Errorf("wrong password: a set was emitted: %s", render(u))
				}
			}
		})
	})
}

func TestRegistrarWhileServerDown(t *testing.T) {
	e := server(t)
	e.needFake(t)
	e.fake.Stop()
	pool := newPool(t)
	svc := uniqueService(t, "regdown")
	var ev events
	r, err := NewRegistrar(pool, e.registration(svc, 9701), WithOnEvent(ev.record), WithBackoff(50*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runRegistrar(t, r)
	poll(t, "waiting for a connection", func() bool { return ev.has(EventRegister + ":" + ErrDisconnected.Error()) })
	e.fake.Restart()
	poll(t, "registered", func() bool { return len(e.fake.Instances("", "", svc)) == 1 })
	poll(t, "successful register event", func() bool { return ev.has(EventRegister) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Instances("", "", svc); len(got) != 0 {
		t.Errorf("after Run returned: %+v", got)
	}
	t.Logf("events: %s", &ev)
}

// Instance metadata carries priority, backup and zone; an instance without
// a zone of its own takes its cluster's name (DEFAULT names none).
func TestSourceLocalityAndFailoverMetadata(t *testing.T) {
	e := server(t)
	pool := newPool(t)
	svc := uniqueService(t, "locality")
	reg := func(port uint64, cluster string, md map[string]string) *other {
		return registerOther(t, e, pool, svc, model.Instance{Port: port, ClusterName: cluster, Weight: 1, Healthy: true, Enable: true, Metadata: md})
	}
	p := reg(9201, "eu-1a", map[string]string{"priority": "0"})
	b := reg(9202, "eu-1b", map[string]string{"backup": "true", "zone": "own", "region": "eu"})
	d := reg(9203, DefaultCluster, map[string]string{"priority": "2"})
	s, err := NewSource(pool, e.sourceConfig(svc))
	if err != nil {
		t.Fatal(err)
	}
	u := watch(t, s).set(p.addr(), b.addr(), d.addr())
	got := map[string]discovery.Target{}
	for _, tg := range u.Targets {
		got[tg.Addr] = tg
	}
	if tg := got[p.addr()]; tg.Meta["zone"] != "eu-1a" || tg.Backup || tg.Priority != 0 {
		t.Errorf("primary %+v, want zone eu-1a from the cluster", tg)
	}
	if tg := got[b.addr()]; tg.Meta["zone"] != "own" || tg.Meta["region"] != "eu" || !tg.Backup {
		t.Errorf("backup %+v, want its own zone and backup", tg)
	}
	if tg := got[d.addr()]; tg.Meta["zone"] != "" || tg.Priority != 2 || tg.Backup {
		t.Errorf("DEFAULT cluster %+v, want no zone, priority 2", tg)
	}
}
