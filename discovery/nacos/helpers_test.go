package nacos

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/internal/nacostest"
	"github.com/outrigger-gw/outrigger/internal/sourcetest"
)

// waitTimeout bounds every wait in the tests.
const waitTimeout = 15 * time.Second

// AddrEnv names the variable pointing the tests at a real Nacos server.
const AddrEnv = "NACOS_ADDR"

// env is the server the tests talk to: the in-process fake, or a real
// server when NACOS_ADDR is set.
type env struct {
	addr     string // HTTP host:port
	grpcPort int    // 0: HTTP port + 1000
	fake     *nacostest.Server
}

func server(t *testing.T, opts ...nacostest.Option) *env {
	t.Helper()
	if a := strings.TrimSpace(os.Getenv(AddrEnv)); a != "" {
		return &env{addr: a}
	}
	f := nacostest.Start(t, opts...)
	return &env{addr: f.HTTPAddr(), grpcPort: f.GRPCPort(), fake: f}
}

// needFake skips tests that use the fake's hooks.
func (e *env) needFake(t *testing.T) {
	t.Helper()
	if e.fake == nil {
		t.Skipf("needs the in-process fake's hooks (%s points at a real server)", AddrEnv)
	}
}

// skipUnderRaceSDKReconnect skips a test that makes SDK clients reconnect
// (or fail requests) when the race detector is on: nacos-sdk-go v2.3.5
// races on its own fields there, which fails any test that triggers it.
// The same tests run without -race.
func skipUnderRaceSDKReconnect(t *testing.T) {
	t.Helper()
	if raceDetector {
		t.Skip("nacos-sdk-go v2.3.5 has data races in its reconnect path " +
			"(RpcClient.currentConnection, rpc_client.go:449 vs 487, nacos-sdk-go#741/#905; " +
			"RpcClient.rpcClientStatus in Request, #908) that the race detector reports on every reconnect; " +
			"run without -race to exercise reconnects")
	}
}

func (e *env) sourceConfig(service string) SourceConfig {
	return SourceConfig{Servers: []string{e.addr}, GRPCPort: e.grpcPort, Service: service}
}

func (e *env) registration(service string, port int) RegistrationConfig {
	return RegistrationConfig{Servers: []string{e.addr}, GRPCPort: e.grpcPort, Service: service, IP: "127.0.0.1", Port: port}
}

func (e *env) connConfig() connConfig {
	return connConfig{Servers: []string{e.addr}, GRPCPort: e.grpcPort}
}

func newPool(t *testing.T) *Pool {
	t.Helper()
	p := NewPool(WithTempDir(t.TempDir()), WithRequestTimeout(3*time.Second))
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// uniqueService returns a service name no other test (or earlier run
// against a real server) uses.
func uniqueService(t *testing.T, base string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "outrigger-" + base + "-" + hex.EncodeToString(b[:])
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// other is an instance registered by a separate SDK client, as another
// service would register itself.
type other struct {
	t       *testing.T
	pool    *Pool
	c       *client
	group   string
	service string
	in      model.Instance
}

// registerOther registers in on a new client of pool's (Ephemeral is
// forced; Healthy, Enable and Weight are taken as given).
func registerOther(t *testing.T, e *env, pool *Pool, service string, in model.Instance) *other {
	t.Helper()
	k, err := e.connConfig().key()
	if err != nil {
		t.Fatal(err)
	}
	c, err := pool.acquireDedicated(k)
	if err != nil {
		t.Fatal(err)
	}
	in.Ephemeral = true
	if in.Ip == "" {
		in.Ip = "127.0.0.1"
	}
	if in.Metadata == nil {
		in.Metadata = map[string]string{}
	}
	o := &other{t: t, pool: pool, c: c, group: DefaultGroup, service: service, in: in}
	t.Cleanup(o.close)
	o.register()
	return o
}

func (o *other) addr() string { return addr(int(o.in.Port)) }

func (o *other) register() {
	o.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, err := o.c.proxy.RegisterInstance(o.service, o.group, o.in)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("register %s: ok=%v err=%v", o.addr(), ok, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (o *other) deregister() {
	o.t.Helper()
	ok, err := o.c.proxy.DeregisterInstance(o.service, o.group, model.Instance{
		Ip: o.in.Ip, Port: o.in.Port, ClusterName: o.in.ClusterName, Ephemeral: true,
	})
	if err != nil || !ok {
		o.t.Fatalf("deregister %s: ok=%v err=%v", o.addr(), ok, err)
	}
}

func (o *other) close() {
	if o.c != nil {
		o.pool.releaseDedicated(o.c)
		o.c = nil
	}
}

// recorder runs a Source and collects its updates (sourcetest.Recorder).
type recorder struct {
	*sourcetest.Recorder
	t *testing.T
}

func watch(t *testing.T, src *Source) *recorder {
	t.Helper()
	return &recorder{Recorder: sourcetest.Watch(t, src, 4096, waitTimeout), t: t}
}

// stop ends Run and waits for it (bounded).
func (w *recorder) stop() { w.Stop() }

// until waits for an update satisfying ok and returns it with the time it
// took; it fails the test at the deadline.
func (w *recorder) until(what string, ok func(discovery.Update) bool) (discovery.Update, time.Duration) {
	w.t.Helper()
	return w.Until(what, ok)
}

// drain collects whatever arrives within d.
func (w *recorder) drain(d time.Duration) { w.Drain(d) }

// mark returns the number of updates seen so far.
func (w *recorder) mark() int { return w.Mark() }

// since returns the updates seen after mark m.
func (w *recorder) since(m int) []discovery.Update { return w.Since(m) }

// set waits for a good update whose addresses are exactly addrs.
func (w *recorder) set(addrs ...string) discovery.Update {
	w.t.Helper()
	slices.Sort(addrs)
	u, _ := w.until("set ["+strings.Join(addrs, " ")+"]", func(u discovery.Update) bool {
		return u.Err == nil && slices.Equal(addrsOf(u), addrs)
	})
	return u
}

// errUpdate waits for an Update{Err} wrapping target.
func (w *recorder) errUpdate(target error) discovery.Update {
	w.t.Helper()
	u, _ := w.until("error "+target.Error(), func(u discovery.Update) bool {
		return errors.Is(u.Err, target)
	})
	return u
}

// noEmptySince fails the test if a good empty set was seen after mark m.
func (w *recorder) noEmptySince(m int, phase string) {
	w.t.Helper()
	for _, u := range w.since(m) {
		if u.Err == nil && len(u.Targets) == 0 {
			w.t.Errorf("%s: an empty set was emitted", phase)
		}
	}
}

func addrsOf(u discovery.Update) []string {
	out := []string{}
	for _, t := range u.Targets {
		out = append(out, t.Addr)
	}
	slices.Sort(out)
	return out
}

func weightsOf(u discovery.Update) map[string]int {
	m := map[string]int{}
	for _, t := range u.Targets {
		m[t.Addr] = t.Weight
	}
	return m
}

func render(u discovery.Update) string { return sourcetest.Render(u) }

func renderAll(us []discovery.Update) string {
	var parts []string
	for _, u := range us {
		parts = append(parts, render(u))
	}
	return strings.Join(parts, ", ")
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration { return sourcetest.Percentile(ds, p) }

// poll calls ok every 20ms until it returns true or the deadline passes.
func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	sourcetest.Poll(t, waitTimeout, what, ok)
}

// events records a Registrar's events.
type events struct {
	mu   sync.Mutex
	list []string
}

func (ev *events) record(kind string, err error) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	s := kind
	if err != nil {
		s += ":" + err.Error()
	}
	ev.list = append(ev.list, s)
}

func (ev *events) has(s string) bool {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return slices.Contains(ev.list, s)
}

func (ev *events) String() string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return strings.Join(ev.list, ", ")
}

// runRegistrar runs r until the returned stop is called; stop returns Run's
// error.
func runRegistrar(t *testing.T, r *Registrar) (stop func() error) {
	t.Helper()
	return sourcetest.RunRegistrar(t, r, waitTimeout)
}
