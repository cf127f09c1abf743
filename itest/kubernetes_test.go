package itest

// Kubernetes discovery through the real binary and a real kube-apiserver
// over a real etcd (internal/kubetest, started fresh for each test). No
// controller runs: the tests write the EndpointSlices themselves. The API
// refuses loopback addresses in EndpointSlices, so every origin
// (cmd/demo-service, which names itself in X-Instance) runs in a network
// namespace of its own, reached over a veth pair with a /30 of its own
// (kubetest.StartOrigin); no other address ever gets traffic.
//
// Facts the tests rely on: round-robin over equal weights strictly
// alternates (see consul_test.go), so two answers in a row from one origin
// prove the other has left the picker; weight 0 keeps a target listed but
// gives it no new requests.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outrigger-gw/outrigger/internal/kubetest"
)

// ksEP is one endpoint of a slice: an origin, its conditions and its
// topology (zone, node, zone hints; "" or nil when unset).
type ksEP struct {
	o                           *kubetest.Origin
	ready, serving, terminating *bool
	zone, node                  string
	forZones                    []string
}

// in returns e with its topology set.
func (e ksEP) in(zone, node string, forZones ...string) ksEP {
	e.zone, e.node, e.forZones = zone, node, forZones
	return e
}

func ksBool(b bool) *bool { return &b }

// ksReady, ksNotReady and ksTerminating are endpoints as the EndpointSlice
// controller writes them for a ready pod, an unready one and a terminating
// one that still passes its readiness probe.
func ksReady(o *kubetest.Origin) ksEP { return ksEP{o: o} }
func ksNotReady(o *kubetest.Origin) ksEP {
	return ksEP{o: o, ready: ksBool(false), serving: ksBool(false)}
}
func ksTerminating(o *kubetest.Origin) ksEP {
	return ksEP{o: o, ready: ksBool(false), serving: ksBool(true), terminating: ksBool(true)}
}

// ksAPI writes the slices of Service "web" in namespace default.
type ksAPI struct {
	t testing.TB
	c *kubetest.Cluster
}

func (a ksAPI) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// put creates or replaces slice name with port "http" (kubetest.OriginPort).
func (a ksAPI) put(name string, eps ...ksEP) time.Time {
	a.t.Helper()
	ctx, cancel := a.ctx()
	defer cancel()
	port, proto, pname := int32(kubetest.OriginPort), corev1.ProtocolTCP, "http"
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port, Protocol: &proto}},
	}
	for _, e := range eps {
		x := discoveryv1.Endpoint{Addresses: []string{e.o.IP},
			Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Serving: e.serving, Terminating: e.terminating}}
		if e.zone != "" {
			x.Zone = &e.zone
		}
		if e.node != "" {
			x.NodeName = &e.node
		}
		if len(e.forZones) > 0 {
			x.Hints = &discoveryv1.EndpointHints{}
			for _, z := range e.forZones {
				x.Hints.ForZones = append(x.Hints.ForZones, discoveryv1.ForZone{Name: z})
			}
		}
		s.Endpoints = append(s.Endpoints, x)
	}
	cl := a.c.Discovery.EndpointSlices("default")
	var err error
	if old, gerr := cl.Get(ctx, name, metav1.GetOptions{}); gerr == nil {
		s.ResourceVersion = old.ResourceVersion
		_, err = cl.Update(ctx, s, metav1.UpdateOptions{})
	} else {
		_, err = cl.Create(ctx, s, metav1.CreateOptions{})
	}
	if err != nil {
		a.t.Fatalf("put slice %s: %v", name, err)
	}
	return time.Now()
}

func (a ksAPI) del(name string) time.Time {
	a.t.Helper()
	ctx, cancel := a.ctx()
	defer cancel()
	if err := a.c.Discovery.EndpointSlices("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		a.t.Fatalf("delete slice %s: %v", name, err)
	}
	return time.Now()
}

func (a ksAPI) service() {
	a.t.Helper()
	ctx, cancel := a.ctx()
	defer cancel()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		ClusterIP: corev1.ClusterIPNone,
		Ports:     []corev1.ServicePort{{Name: "http", Port: 80}}}}
	if _, err := a.c.Core.Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		a.t.Fatalf("create service: %v", err)
	}
}

// ksConfig is upstream u discovered from Service web's port http with the
// kubeconfig at path, and a catch-all route to it.
func ksConfig(kubeconfig string) string { return ksConfigWith(kubeconfig, "") }

// ksConfigWith is ksConfig with more keys for the upstream (indented by
// four spaces).
func ksConfigWith(kubeconfig, extra string) string {
	return fmt.Sprintf(`
upstreams:
  - name: u
    discovery:
      kubernetes: {service: web, port: http, kubeconfig: %s}
      empty_grace: 2s
%s
services:
  - {name: s, host: u, retries: 2, connect_timeout: 1000, routes: [{name: r, paths: [/]}]}
`, kubeconfig, extra)
}

// ksWho sends one GET through g and returns the origin that answered, or
// "status <code>"; a transport error fails the test.
func ksWho(t testing.TB, c *http.Client, g *gateway) string {
	t.Helper()
	status, _, body, hdr, err := tryGet(c, g.url("/x"))
	if err != nil {
		t.Fatalf("GET through the gateway: %v", err)
	}
	if status != http.StatusOK {
		return fmt.Sprintf("status %d: %s", status, body)
	}
	return hdr.Get("X-Instance")
}

// ksWaitOrigins polls windows of 10 requests per origin until one window
// reaches exactly the origins in want.
func ksWaitOrigins(t testing.TB, c *http.Client, g *gateway, d time.Duration, want ...*kubetest.Origin) {
	t.Helper()
	var names []string
	for _, o := range want {
		names = append(names, o.Name)
	}
	slices.Sort(names)
	var seen []string
	csPoll(t, d, func() bool {
		set := map[string]bool{}
		for range 10 * max(len(want), 1) {
			set[ksWho(t, c, g)] = true
		}
		seen = slices.Sorted(maps.Keys(set))
		return slices.Equal(seen, names)
	}, func() string { return fmt.Sprintf("traffic to exactly %v (the last window reached %v)", names, seen) })
}

// ksTimeToAppear polls requests through g from t0 (when the API call
// returned) and returns the time to the first answer from o.
func ksTimeToAppear(t testing.TB, c *http.Client, g *gateway, t0 time.Time, o *kubetest.Origin) time.Duration {
	t.Helper()
	for i := 0; i < csMeasureCount && time.Since(t0) < csMeasureTime; i++ {
		if ksWho(t, c, g) == o.Name {
			return time.Since(t0)
		}
	}
	t.Fatalf("%s got no traffic within %s of its endpoint's write", o.Name, csMeasureTime)
	return 0
}

// ksTimeToVanish polls requests through g from t0 until o has left a
// two-origin, equal-weight round-robin (two answers in a row from the
// other), then checks that 20 more requests avoid it; any answer but a
// 200 fails the test.
func ksTimeToVanish(t testing.TB, c *http.Client, g *gateway, t0 time.Time, o *kubetest.Origin) time.Duration {
	t.Helper()
	prev := ""
	for i := 0; i < csMeasureCount && time.Since(t0) < csMeasureTime; i++ {
		who := ksWho(t, c, g)
		if strings.HasPrefix(who, "status ") {
			t.Fatalf("request %d after the change: %s", i, who)
		}
		if who != o.Name && who == prev {
			d := time.Since(t0)
			for j := range 20 {
				if w := ksWho(t, c, g); w == o.Name || strings.HasPrefix(w, "status ") {
					t.Fatalf("after two answers in a row from %s, request %d went to %q", who, j, w)
				}
			}
			return d
		}
		prev = who
	}
	t.Fatalf("%s still got traffic %s after the change", o.Name, csMeasureTime)
	return 0
}

// ksWeights reads the weights of u's targets from the admin API, by
// address.
func ksWeights(t testing.TB, g *gateway) map[string]int {
	t.Helper()
	var body struct {
		Data []struct {
			Target string `json:"target"`
			Weight int    `json:"weight"`
		} `json:"data"`
	}
	getJSON(t, "http://"+g.AdminAddr+"/upstreams/u/targets", &body)
	out := map[string]int{}
	for _, d := range body.Data {
		out[d.Target] = d.Weight
	}
	return out
}

// TestKubernetesDiscovery: slices merged into one set; a change reaches
// routing within 1 s (measured from the API call returning); an endpoint
// turning not-ready drains; terminating-but-serving endpoints are used only
// when nothing ready is left; a deleted slice takes its endpoints along.
func TestKubernetesDiscovery(t *testing.T) {
	c := kubetest.Start(t)
	demo := kubetest.DemoService(t)
	o1, o2, o3 := kubetest.StartOrigin(t, demo, "k1"), kubetest.StartOrigin(t, demo, "k2"), kubetest.StartOrigin(t, demo, "k3")
	a := ksAPI{t, c}
	a.service()
	a.put("web-a", ksReady(o1))
	a.put("web-b", ksReady(o2))
	g := startGateway(t, ksConfig(c.Kubeconfig("admin", "")))
	cl := newClient()

	ksWaitOrigins(t, cl, g, 10*time.Second, o1, o2)
	t.Logf("two slices merged: traffic to %s and %s", o1.Name, o2.Name)

	// Change -> routing, measured: an endpoint added to a slice, then the
	// same endpoint turning not-ready.
	var appear, vanish []time.Duration
	for range 3 {
		t0 := a.put("web-b", ksReady(o2), ksReady(o3))
		appear = append(appear, ksTimeToAppear(t, cl, g, t0, o3))
		ksWaitOrigins(t, cl, g, 5*time.Second, o1, o2, o3)
		t0 = a.put("web-b", ksReady(o2), ksNotReady(o3))
		// Three origins at equal weight, one leaving: wait until only the
		// two remain.
		d, _ := ksTimeToLeave(t, cl, g, t0, o3, o1, o2)
		vanish = append(vanish, d)
		if w := ksWeights(t, g); w[o3.Addr] != 0 || w[o1.Addr] == 0 {
			t.Fatalf("weights %v: the not-ready %s should stay listed at weight 0 (draining)", w, o3.Addr)
		}
	}
	t.Logf("change -> routing: endpoint ready -> traffic %v; not ready -> no traffic %v", appear, vanish)
	for i := range appear {
		if appear[i] > time.Second || vanish[i] > time.Second {
			t.Errorf("round %d: %s to route to a new endpoint, %s to drain one; want within 1s", i, appear[i], vanish[i])
		}
	}

	// Terminating but serving: no traffic while something is ready...
	a.put("web-a", ksReady(o1))
	a.put("web-b", ksTerminating(o2), ksNotReady(o3))
	ksWaitOrigins(t, cl, g, 5*time.Second, o1)
	// ... and all of it when nothing ready is left (the not-ready one
	// stays out).
	a.put("web-a", ksNotReady(o1))
	ksWaitOrigins(t, cl, g, 5*time.Second, o2)
	// A ready endpoint takes the traffic back.
	a.put("web-a", ksReady(o1))
	ksWaitOrigins(t, cl, g, 5*time.Second, o1)

	// A slice deleted.
	a.put("web-b", ksReady(o2), ksReady(o3))
	ksWaitOrigins(t, cl, g, 5*time.Second, o1, o2, o3)
	t0 := a.del("web-b")
	d, _ := ksTimeToLeave(t, cl, g, t0, o2, o1)
	t.Logf("slice deleted -> its endpoints out of routing in %s", d)
	if w := ksWeights(t, g); len(w) != 1 {
		t.Errorf("targets %v after the slice's deletion, want %s alone", w, o1.Addr)
	}

	// The last slice deleted: an authoritative empty answer, applied after
	// empty_grace (2s); until then the last target keeps serving.
	t0 = a.del("web-a")
	var last string
	for time.Since(t0) < 1500*time.Millisecond {
		if last = ksWho(t, cl, g); last != o1.Name {
			t.Fatalf("%s after the last slice's deletion, within empty_grace: %s", time.Since(t0), last)
		}
	}
	csPoll(t, 10*time.Second, func() bool {
		last = ksWho(t, cl, g)
		return strings.HasPrefix(last, "status 503")
	}, func() string { return "503 once empty_grace has passed (last: " + last + ")" })
	if d := time.Since(t0); d < 2*time.Second {
		t.Errorf("the targets were dropped %s after the last slice's deletion, before empty_grace (2s)", d)
	}
}

// ksTimeToLeave polls requests through g from t0 until gone has had no
// traffic in a window of 10 requests per remaining origin and every origin
// of rest answered in it; it returns the time to the end of that window.
func ksTimeToLeave(t testing.TB, c *http.Client, g *gateway, t0 time.Time, gone *kubetest.Origin, rest ...*kubetest.Origin) (time.Duration, map[string]int) {
	t.Helper()
	for time.Since(t0) < csMeasureTime {
		got := map[string]int{}
		for range 10 * len(rest) {
			w := ksWho(t, c, g)
			if strings.HasPrefix(w, "status ") {
				t.Fatalf("after the change: %s", w)
			}
			got[w]++
		}
		all := got[gone.Name] == 0
		for _, o := range rest {
			all = all && got[o.Name] > 0
		}
		if all {
			return time.Since(t0), got
		}
	}
	t.Fatalf("%s still got traffic %s after the change", gone.Name, csMeasureTime)
	return 0, nil
}

// TestKubernetesAPIServerOutage: the API server stops for 10 s under
// load: no request fails (the last set is kept), a gateway started during
// the outage is not ready until its first sync. After the restart the watch
// resumes: an endpoint written the moment the API server answers again gets
// traffic once the informer's retry reaches it (jittered backoff, at most
// 5 s: logged, the restart's cost to routing), and once the watch is back
// a new endpoint gets traffic within 1 s.
func TestKubernetesAPIServerOutage(t *testing.T) {
	c := kubetest.Start(t)
	demo := kubetest.DemoService(t)
	o1, o2, o3 := kubetest.StartOrigin(t, demo, "k1"), kubetest.StartOrigin(t, demo, "k2"), kubetest.StartOrigin(t, demo, "k3")
	o4 := kubetest.StartOrigin(t, demo, "k4")
	a := ksAPI{t, c}
	a.put("web-a", ksReady(o1), ksReady(o2))
	kc := c.Kubeconfig("admin", "")
	g := startGateway(t, ksConfig(kc))
	cl := newClient()
	ksWaitOrigins(t, cl, g, 10*time.Second, o1, o2)
	const src = "kubernetes:web:http"
	updates := csMetric(t, g, csDiscoverySeries(src, "update"))

	load := startLoad(newClient(), g.url("/x"), 5*time.Millisecond, 20000, 60*time.Second)
	c.KillAPIServer()
	outage := time.Now()
	waitFor(t, 10*time.Second, "the gateway to report the outage", func() bool {
		return csMetric(t, g, csDiscoverySeries(src, "error")) > 0
	})
	// A gateway that starts now has nothing to route with: not ready.
	g2 := startGateway(t, ksConfig(kc))
	if code, msg := g2.ready(t); code != http.StatusServiceUnavailable || !strings.Contains(msg, "kubernetes") {
		t.Errorf("a gateway started during the outage: /ready %d %q, want 503 naming kubernetes", code, msg)
	}
	// The outage lasts 10s by the scenario's definition.
	time.Sleep(time.Until(outage.Add(10 * time.Second)))
	restarted := time.Now()
	c.StartAPIServer()
	up := time.Now()
	t0 := a.put("web-a", ksReady(o1), ksReady(o2), ksReady(o3))
	var dUp time.Duration
	csPoll(t, 30*time.Second, func() bool {
		dUp = time.Since(up)
		return ksWho(t, cl, g) == o3.Name
	}, func() string { return o3.Name + ", written as the API server came back, to get traffic" })
	waitFor(t, 30*time.Second, "the watch to resume (the source answers again)", func() bool {
		return csMetric(t, g, csDiscoverySeries(src, "update")) > updates
	})
	waitFor(t, 30*time.Second, "the gateway started during the outage to be ready", func() bool {
		code, _ := g2.ready(t)
		return code == http.StatusOK
	})
	t1 := a.put("web-a", ksReady(o1), ksReady(o2), ksReady(o3), ksReady(o4))
	d := ksTimeToAppear(t, cl, g, t1, o4)
	ok, failed, first, _ := load.Stop()
	t.Logf("outage 10s; the API server took %s to start again; an endpoint written as it answered (%s after) got traffic %s after it answered; "+
		"after the watch resumed a new endpoint got traffic %s after its write; load: %d ok, %d failed %v",
		up.Sub(restarted).Round(time.Millisecond), t0.Sub(up).Round(time.Millisecond), dUp.Round(time.Millisecond), d, ok, failed, first)
	if failed > 0 || ok == 0 {
		t.Errorf("%d requests failed (%d ok) during the API server outage: %v", failed, ok, first)
	}
	if d > time.Second {
		t.Errorf("a new endpoint got traffic %s after its write, want within 1s", d)
	}
	if n := len(g.logsWhere("discovery failed; keeping the last known targets")); n == 0 || n > 5 {
		t.Errorf("%d outage warnings logged, want 1 to 5 (one per distinct failure)", n)
	}
}

// TestKubernetesRBACDenied: a service account without the verbs gets a
// clear error naming the missing verb and the resource: in the log, and in
// /ready while nothing could be read. (One that may list but not watch
// gets each list's answer, so it turns ready; the log still names the
// missing watch at every attempt.)
func TestKubernetesRBACDenied(t *testing.T) {
	c := kubetest.Start(t, "nobody", "lister")
	c.Grant("lister", "default", "discovery.k8s.io", "endpointslices", "get", "list")
	for _, tc := range []struct {
		user, verb string
		notReady   bool
	}{{"nobody", "list", true}, {"lister", "watch", false}} {
		g := startGateway(t, ksConfig(c.Kubeconfig(tc.user, "")))
		want := fmt.Sprintf("grant %q on endpointslices", tc.verb)
		var logged string
		waitFor(t, 10*time.Second, tc.user+": a warning naming the denial", func() bool {
			for _, l := range g.logsWhere("discovery failed; keeping the last known targets") {
				if e, _ := l["error"].(string); strings.Contains(e, want) && strings.Contains(e, "discovery.k8s.io") {
					logged = e
					return true
				}
			}
			return false
		})
		t.Logf("%s: logged: %s", tc.user, logged)
		if !tc.notReady {
			continue
		}
		if code, msg := g.ready(t); code != http.StatusServiceUnavailable || !strings.Contains(msg, want) {
			t.Errorf("%s: /ready %d %q, want 503 naming %q", tc.user, code, msg, want)
		}
	}
}

// TestKubernetesHealthKeptAcrossUpdates: a target's health state belongs
// to its address and survives the slice updates around it (another
// endpoint joining, its own condition flipping to not-ready and back).
// Active checks park unhealthy targets (unhealthy interval 0), so only the
// kept state keeps it out once its /health answers 200 again.
func TestKubernetesHealthKeptAcrossUpdates(t *testing.T) {
	c := kubetest.Start(t)
	demo := kubetest.DemoService(t)
	o1, o2, o3 := kubetest.StartOrigin(t, demo, "k1"), kubetest.StartOrigin(t, demo, "k2"), kubetest.StartOrigin(t, demo, "k3")
	a := ksAPI{t, c}
	a.put("web-a", ksReady(o1), ksReady(o2))
	g := startGateway(t, ksConfigWith(c.Kubeconfig("admin", ""), `    healthchecks:
      active:
        http_path: /health
        timeout: 1
        healthy: {interval: 0.1, successes: 1}
        unhealthy: {interval: 0, http_failures: 1, tcp_failures: 1}`))
	cl := newClient()
	ksWaitOrigins(t, cl, g, 10*time.Second, o1, o2)
	setHealth := func(o *kubetest.Origin, status int) {
		t.Helper()
		resp, err := cl.Post(fmt.Sprintf("http://%s/admin/health?status=%d", o.Addr, status), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("set %s's health: %s", o.Name, resp.Status)
		}
	}
	setHealth(o2, http.StatusServiceUnavailable)
	ksWaitOrigins(t, cl, g, 10*time.Second, o1)
	setHealth(o2, http.StatusOK)

	a.put("web-a", ksReady(o1), ksReady(o2), ksReady(o3))
	ksWaitOrigins(t, cl, g, 10*time.Second, o1, o3)
	a.put("web-a", ksReady(o1), ksNotReady(o2), ksReady(o3))
	waitFor(t, 10*time.Second, k2weight(o2, 0), func() bool { return ksWeights(t, g)[o2.Addr] == 0 })
	a.put("web-a", ksReady(o1), ksReady(o2), ksReady(o3))
	waitFor(t, 10*time.Second, k2weight(o2, 100), func() bool { return ksWeights(t, g)[o2.Addr] == 100 })
	got := map[string]int{}
	for range 60 {
		got[ksWho(t, cl, g)]++
	}
	if got[o2.Name] > 0 || got[o1.Name] == 0 || got[o3.Name] == 0 {
		t.Errorf("after the updates: %v; the unhealthy %s should stay out, the others serve", got, o2.Name)
	}
}

func k2weight(o *kubetest.Origin, w int) string {
	return fmt.Sprintf("%s listed at weight %d", o.Name, w)
}

// TestKubernetesNotReadyDrainsInFlight: a request in flight to an endpoint
// that turns not-ready finishes there (the target stays listed at weight 0:
// a drain, not a removal), while new requests go to the ready one. The
// request is held in flight by its body: the origin answers when the body
// ends (cmd/demo-service's echo reads it through).
func TestKubernetesNotReadyDrainsInFlight(t *testing.T) {
	c := kubetest.Start(t)
	demo := kubetest.DemoService(t)
	o1, o2 := kubetest.StartOrigin(t, demo, "k1"), kubetest.StartOrigin(t, demo, "k2")
	a := ksAPI{t, c}
	a.put("web-a", ksReady(o1), ksReady(o2))
	g := startGateway(t, ksConfig(c.Kubeconfig("admin", "")))
	cl := newClient()
	ksWaitOrigins(t, cl, g, 10*time.Second, o1, o2)

	type answer struct {
		status int
		who    string
		bytes  int64
		err    error
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan answer, 1)
	go func() {
		resp, err := newClient().Post(g.url("/upload"), "application/octet-stream", pr)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var body struct {
			BodyBytes int64 `json:"body_bytes"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		done <- answer{status: resp.StatusCode, who: resp.Header.Get("X-Instance"), bytes: body.BodyBytes, err: err}
	}()
	first := []byte(strings.Repeat("a", 1000))
	if _, err := pw.Write(first); err != nil {
		t.Fatal(err)
	}
	var held, other *kubetest.Origin
	waitFor(t, 10*time.Second, "the upload in flight at one origin", func() bool {
		v := dvGet(t, g, "u")
		for _, o := range []*kubetest.Origin{o1, o2} {
			if v.Targets[v.target(t, o.Addr)].InFlight == 1 {
				held = o
			}
		}
		return held != nil
	})
	other = o1
	if held == o1 {
		other = o2
	}

	t0 := a.put("web-a", ksReady(other), ksNotReady(held))
	d, _ := ksTimeToLeave(t, cl, g, t0, held, other)
	t.Logf("%s turned not-ready: out of new requests in %s, with the upload in flight there", held.Name, d)
	v := dvGet(t, g, "u")
	tg := v.Targets[v.target(t, held.Addr)]
	if tg.Weight != 0 || tg.InFlight != 1 {
		t.Fatalf("the not-ready %s: weight %d, in flight %d; want listed at weight 0 with the upload still in flight", held.Addr, tg.Weight, tg.InFlight)
	}
	select {
	case ans := <-done:
		t.Fatalf("the upload ended before its body did: %+v", ans)
	default:
	}
	rest := []byte(strings.Repeat("b", 500))
	if _, err := pw.Write(rest); err != nil {
		t.Fatalf("the upload's body after the drain began: %v", err)
	}
	pw.Close()
	select {
	case ans := <-done:
		if ans.err != nil || ans.status != http.StatusOK || ans.who != held.Name || ans.bytes != int64(len(first)+len(rest)) {
			t.Fatalf("the in-flight upload: %+v; want 200 from %s with %d bytes read", ans, held.Name, len(first)+len(rest))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the in-flight upload never finished")
	}
}

// TestKubernetesSlowStartAndTopology: an endpoint that joins ramps (slow
// start) and keeps its ramp's start through the updates that follow (its
// topology changing, another endpoint's condition flipping), while an
// endpoint coming back from not-ready ramps anew; zone, node name and
// hints.forZones reach the target's metadata.
func TestKubernetesSlowStartAndTopology(t *testing.T) {
	c := kubetest.Start(t)
	demo := kubetest.DemoService(t)
	o1, o2, o3 := kubetest.StartOrigin(t, demo, "k1"), kubetest.StartOrigin(t, demo, "k2"), kubetest.StartOrigin(t, demo, "k3")
	a := ksAPI{t, c}
	a.put("web-a", ksReady(o1), ksReady(o2))
	g := startGateway(t, ksConfigWith(c.Kubeconfig("admin", ""),
		"    slow_start: {window: 600s, aggression: 1.0, min_weight_percent: 10}"))
	cl := newClient()
	ksWaitOrigins(t, cl, g, 10*time.Second, o1, o2)
	v := dvGet(t, g, "u")
	for _, o := range []*kubetest.Origin{o1, o2} {
		if ss := v.Targets[v.target(t, o.Addr)].SlowStart; ss != nil {
			t.Errorf("%s of the first set ramps: %+v", o.Name, ss)
		}
	}

	// o3 joins: it ramps.
	a.put("web-a", ksReady(o1), ksReady(o2), ksReady(o3))
	var since time.Time
	waitFor(t, 10*time.Second, "k3 listed and ramping", func() bool {
		v := dvGet(t, g, "u")
		for _, tg := range v.Targets {
			if tg.Target == o3.Addr && tg.SlowStart != nil {
				since = tg.SlowStart.Since
				return true
			}
		}
		return false
	})

	// Its topology changes: same address, same ramp; the metadata follow.
	a.put("web-a", ksReady(o1), ksReady(o2), ksReady(o3).in("zone-b", "node-3", "zone-b", "zone-c"))
	waitFor(t, 10*time.Second, "k3's zone in the debug view", func() bool {
		v := dvGet(t, g, "u")
		return v.Targets[v.target(t, o3.Addr)].Locality["zone"] == "zone-b"
	})
	v = dvGet(t, g, "u")
	tg := v.Targets[v.target(t, o3.Addr)]
	if tg.Locality["nodeName"] != "node-3" || tg.Meta["hints.forZones"] != "zone-b,zone-c" || tg.Meta["condition"] != "ready" {
		t.Errorf("k3's locality %v, meta %v; want nodeName node-3, hints.forZones zone-b,zone-c, condition ready", tg.Locality, tg.Meta)
	}
	if tg.SlowStart == nil || !tg.SlowStart.Since.Equal(since) {
		t.Errorf("k3's ramp after its topology changed: %+v, want the one since %s kept", tg.SlowStart, since)
	}

	// o1 leaves (not ready) and comes back: it ramps from its return; o3's
	// ramp is untouched.
	a.put("web-a", ksNotReady(o1), ksReady(o2), ksReady(o3).in("zone-b", "node-3", "zone-b", "zone-c"))
	waitFor(t, 10*time.Second, "k1 at weight 0", func() bool { return ksWeights(t, g)[o1.Addr] == 0 })
	back := time.Now()
	a.put("web-a", ksReady(o1), ksReady(o2), ksReady(o3).in("zone-b", "node-3", "zone-b", "zone-c"))
	waitFor(t, 10*time.Second, "k1 back and ramping", func() bool {
		v := dvGet(t, g, "u")
		ss := v.Targets[v.target(t, o1.Addr)].SlowStart
		return ss != nil && ss.Since.After(back.Add(-time.Second))
	})
	v = dvGet(t, g, "u")
	if ss := v.Targets[v.target(t, o3.Addr)].SlowStart; ss == nil || !ss.Since.Equal(since) {
		t.Errorf("k3's ramp after k1's return: %+v, want the one since %s kept", ss, since)
	}
	if ss := v.Targets[v.target(t, o2.Addr)].SlowStart; ss != nil {
		t.Errorf("k2, listed throughout, ramps: %+v", ss)
	}
}
