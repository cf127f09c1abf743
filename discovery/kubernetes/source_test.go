package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/internal/kubetest"
	"github.com/outrigger-gw/outrigger/internal/sourcetest"
)

// The endpoints' addresses are documentation addresses (192.0.2.0/24):
// these tests only read them back, nothing is sent there.

const wait = 20 * time.Second

// ep is an endpoint with conditions (nil: unset), a zone, a node and
// zone hints.
type ep struct {
	ip                          string
	ready, serving, terminating *bool
	zone, node                  string
	forZones                    []string
}

func ptr[T any](v T) *T { return &v }

func mkSlice(name, service string, ports map[string]int32, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for n, p := range ports {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr(n), Port: ptr(p), Protocol: ptr(corev1.ProtocolTCP)})
	}
	for _, e := range eps {
		x := discoveryv1.Endpoint{Addresses: []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Serving: e.serving, Terminating: e.terminating}}
		if e.zone != "" {
			x.Zone = ptr(e.zone)
		}
		if e.node != "" {
			x.NodeName = ptr(e.node)
		}
		if len(e.forZones) > 0 {
			x.Hints = &discoveryv1.EndpointHints{}
			for _, z := range e.forZones {
				x.Hints.ForZones = append(x.Hints.ForZones, discoveryv1.ForZone{Name: z})
			}
		}
		s.Endpoints = append(s.Endpoints, x)
	}
	return s
}

// api writes a test's objects.
type api struct {
	t  *testing.T
	c  *kubetest.Cluster
	ns string
}

func (a api) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	a.t.Cleanup(cancel)
	return ctx
}

func (a api) put(s *discoveryv1.EndpointSlice) {
	a.t.Helper()
	cl := a.c.Discovery.EndpointSlices(a.ns)
	old, err := cl.Get(a.ctx(), s.Name, metav1.GetOptions{})
	if err == nil {
		s.ResourceVersion = old.ResourceVersion
		_, err = cl.Update(a.ctx(), s, metav1.UpdateOptions{})
	} else {
		_, err = cl.Create(a.ctx(), s, metav1.CreateOptions{})
	}
	if err != nil {
		a.t.Fatalf("put slice %s: %v", s.Name, err)
	}
}

func (a api) del(name string) {
	a.t.Helper()
	if err := a.c.Discovery.EndpointSlices(a.ns).Delete(a.ctx(), name, metav1.DeleteOptions{}); err != nil {
		a.t.Fatalf("delete slice %s: %v", name, err)
	}
}

func (a api) namespace() {
	a.t.Helper()
	if _, err := a.c.Core.Namespaces().Create(a.ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.ns}}, metav1.CreateOptions{}); err != nil {
		a.t.Fatal(err)
	}
}

// render shows targets as "addr/wWEIGHT/condition[/zone]".
func render(u discovery.Update) string {
	if u.Err != nil {
		return "err: " + u.Err.Error()
	}
	var parts []string
	for _, t := range u.Targets {
		p := t.Addr + "/w" + strconv.Itoa(t.Weight) + "/" + t.Meta[MetaCondition]
		if z := t.Meta[MetaZone]; z != "" {
			p += "/" + z
		}
		parts = append(parts, p)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func is(want string) func(discovery.Update) bool {
	return func(u discovery.Update) bool { return u.Err == nil && render(u) == want }
}

func watchSource(t *testing.T, p *Pool, cfg SourceConfig) *sourcetest.Recorder {
	t.Helper()
	src, err := NewSource(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sourcetest.Watch(t, src, 256, wait)
}

func TestSource(t *testing.T) {
	c := kubetest.Start(t)
	pool := NewPool()
	kc := c.Kubeconfig("admin", "")

	t.Run("merges slices and keeps metadata", func(t *testing.T) {
		a := api{t, c, "merge"}
		a.namespace()
		a.put(mkSlice("web-a", "web", map[string]int32{"http": 8080, "metrics": 9090},
			ep{ip: "192.0.2.1", zone: "z1", node: "n1", forZones: []string{"z1", "z2"}}))
		a.put(mkSlice("web-b", "web", map[string]int32{"http": 8081}, ep{ip: "192.0.2.2", ready: ptr(true)}))
		a.put(mkSlice("other", "other", map[string]int32{"http": 8080}, ep{ip: "192.0.2.9"}))
		r := watchSource(t, pool, SourceConfig{Kubeconfig: kc, Namespace: "merge", Service: "web", Port: "http"})
		u, _ := r.Until("both slices", is("[192.0.2.1:8080/w100/ready/z1 192.0.2.2:8081/w100/ready]"))
		m := u.Targets[0].Meta
		if m[MetaNodeName] != "n1" || m[MetaForZones] != "z1,z2" {
			t.Errorf("meta %v, want nodeName n1 and hints.forZones z1,z2", m)
		}
		// The API server selects: the informer holds this service's slices
		// only, never the namespace's (nor the cluster's).
		pool.mu.Lock()
		var held []string
		for k, w := range pool.watches {
			if k.namespace == "merge" {
				for _, s := range w.slices() {
					held = append(held, s.Namespace+"/"+s.Name)
				}
			}
		}
		pool.mu.Unlock()
		if slices.Sort(held); !slices.Equal(held, []string{"merge/web-a", "merge/web-b"}) {
			t.Errorf("the informer's store holds %v, want merge/web-a and merge/web-b alone", held)
		}
		// By number: only the slice with that port.
		r2 := watchSource(t, pool, SourceConfig{Kubeconfig: kc, Namespace: "merge", Service: "web", Port: "9090"})
		r2.Until("the metrics port", is("[192.0.2.1:9090/w100/ready/z1]"))
		if st := pool.Stats(); st.Informers != 1 {
			t.Errorf("two sources on one service use %d informers, want 1", st.Informers)
		}
		put := time.Now()
		a.put(mkSlice("web-c", "web", map[string]int32{"http": 8080}, ep{ip: "192.0.2.3"}))
		u, _ = r.Until("a third slice", is("[192.0.2.1:8080/w100/ready/z1 192.0.2.2:8081/w100/ready 192.0.2.3:8080/w100/ready]"))
		// Observed is the event's arrival: after the write, not after the
		// emission.
		if u.Observed.Before(put) || u.Observed.After(u.At) {
			t.Errorf("update Observed %v, want between the write %v and At %v", u.Observed, put, u.At)
		}
		a.del("web-b")
		r.Until("a slice deleted", is("[192.0.2.1:8080/w100/ready/z1 192.0.2.3:8080/w100/ready]"))
		a.del("web-a")
		a.del("web-c")
		r.Until("the last slice deleted: an empty set", func(u discovery.Update) bool { return u.Err == nil && len(u.Targets) == 0 })
	})

	t.Run("conditions", func(t *testing.T) {
		a := api{t, c, "cond"}
		a.namespace()
		ports := map[string]int32{"http": 80}
		a.put(mkSlice("web-a", "web", ports,
			ep{ip: "192.0.2.1"},                    // ready nil: ready
			ep{ip: "192.0.2.2", ready: ptr(false)}, // not ready
			ep{ip: "192.0.2.3", ready: ptr(false), serving: ptr(true), terminating: ptr(true)}, // terminating, serving
			ep{ip: "192.0.2.4", ready: ptr(false), serving: ptr(false), terminating: ptr(true)},
		))
		r := watchSource(t, pool, SourceConfig{Kubeconfig: kc, Namespace: "cond", Service: "web", Port: "http"})
		r.Until("ready gets traffic, the others drain",
			is("[192.0.2.1:80/w100/ready 192.0.2.2:80/w0/not-ready 192.0.2.3:80/w0/terminating 192.0.2.4:80/w0/not-ready]"))
		// The ready endpoint turns not ready: the serving terminating one is
		// all that is left, and takes the traffic.
		a.put(mkSlice("web-a", "web", ports,
			ep{ip: "192.0.2.1", ready: ptr(false)},
			ep{ip: "192.0.2.2", ready: ptr(false)},
			ep{ip: "192.0.2.3", ready: ptr(false), serving: ptr(true), terminating: ptr(true)},
			ep{ip: "192.0.2.4", ready: ptr(false), serving: ptr(false), terminating: ptr(true)},
		))
		r.Until("only terminating-but-serving is left",
			is("[192.0.2.1:80/w0/not-ready 192.0.2.2:80/w0/not-ready 192.0.2.3:80/w100/terminating 192.0.2.4:80/w0/not-ready]"))
		// A ready endpoint in another slice takes it back.
		a.put(mkSlice("web-b", "web", ports, ep{ip: "192.0.2.5", ready: ptr(true)}))
		r.Until("a ready endpoint elsewhere",
			is("[192.0.2.1:80/w0/not-ready 192.0.2.2:80/w0/not-ready 192.0.2.3:80/w0/terminating 192.0.2.4:80/w0/not-ready 192.0.2.5:80/w100/ready]"))
		// The same address in two slices (a slice being replaced): the
		// better condition wins.
		a.put(mkSlice("web-c", "web", ports, ep{ip: "192.0.2.2", ready: ptr(true)}))
		r.Until("a duplicate address",
			is("[192.0.2.1:80/w0/not-ready 192.0.2.2:80/w100/ready 192.0.2.3:80/w0/terminating 192.0.2.4:80/w0/not-ready 192.0.2.5:80/w100/ready]"))
	})

	t.Run("label selector, protocols and address types", func(t *testing.T) {
		a := api{t, c, "sel"}
		a.namespace()
		s := mkSlice("web-a", "web", map[string]int32{"http": 80}, ep{ip: "192.0.2.1"})
		s.Labels["track"] = "canary"
		a.put(s)
		a.put(mkSlice("web-b", "web", map[string]int32{"http": 80}, ep{ip: "192.0.2.2"}))
		udp := mkSlice("web-udp", "web", nil, ep{ip: "192.0.2.3"})
		udp.Ports = []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(80)), Protocol: ptr(corev1.ProtocolUDP)}}
		a.put(udp)
		fqdn := mkSlice("web-fqdn", "web", map[string]int32{"http": 80}, ep{ip: "web.example.com"})
		fqdn.AddressType = discoveryv1.AddressTypeFQDN
		a.put(fqdn)
		r := watchSource(t, pool, SourceConfig{Kubeconfig: kc, Namespace: "sel", Service: "web", Port: "http"})
		r.Until("TCP IP slices only", is("[192.0.2.1:80/w100/ready 192.0.2.2:80/w100/ready]"))
		r2 := watchSource(t, pool, SourceConfig{Kubeconfig: kc, Namespace: "sel", Service: "web", Port: "http", LabelSelector: "track=canary"})
		r2.Until("the selected slice", is("[192.0.2.1:80/w100/ready]"))
	})

	t.Run("an ended watch resumes from its resourceVersion", func(t *testing.T) { testResume(t, c) })

	t.Run("in-cluster credentials and the pod's namespace", func(t *testing.T) {
		a := api{t, c, "pod-ns"}
		a.namespace()
		a.put(mkSlice("web-a", "web", map[string]int32{"http": 80}, ep{ip: "192.0.2.1"}))
		env := map[string]string{"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": strconv.Itoa(c.Port())}
		p := NewPool(WithServiceAccountDir(c.ServiceAccountDir("admin", "pod-ns")),
			WithLookupEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
		r := watchSource(t, p, SourceConfig{Service: "web", Port: "http"})
		r.Until("the pod's namespace", is("[192.0.2.1:80/w100/ready]"))

		// Outside a pod, without a kubeconfig: a clear error.
		outside := NewPool(WithLookupEnv(func(string) (string, bool) { return "", false }), WithBackoff(time.Hour, time.Hour))
		r2 := watchSource(t, outside, SourceConfig{Service: "web", Port: "http"})
		u, _ := r2.Until("not in a cluster", func(u discovery.Update) bool { return u.Err != nil })
		if !errors.Is(u.Err, ErrNotInCluster) {
			t.Errorf("err %v, want ErrNotInCluster", u.Err)
		}
	})
}

// The API server stops for a while: the source reports errors (the
// consumer keeps its last set), never an empty set, and after the restart
// resumes its watch and sees what changed.
func TestSourceAPIServerOutage(t *testing.T) {
	c := kubetest.Start(t)
	pool := NewPool()
	a := api{t, c, "default"}
	a.put(mkSlice("web-a", "web", map[string]int32{"http": 80}, ep{ip: "192.0.2.1"}))
	r := watchSource(t, pool, SourceConfig{Kubeconfig: c.Kubeconfig("admin", ""), Service: "web", Port: "http"})
	r.Until("the first set", is("[192.0.2.1:80/w100/ready]"))
	sourcetest.Poll(t, wait, "the watch established", func() bool { return pool.Stats().Watches >= 1 })
	before := pool.Stats()
	start := time.Now()
	c.KillAPIServer()
	stopped := time.Since(start)
	mark := r.Mark()
	_, errAfter := r.Until("an error while the API server is down", func(u discovery.Update) bool { return u.Err != nil })
	start = time.Now()
	c.StartAPIServer()
	restarted := time.Since(start)
	a.put(mkSlice("web-b", "web", map[string]int32{"http": 80}, ep{ip: "192.0.2.2"}))
	_, seen := r.Until("the new endpoint after the restart", is("[192.0.2.1:80/w100/ready 192.0.2.2:80/w100/ready]"))
	t.Logf("stop took %s, the error came %s later; restart took %s, the new endpoint was seen %s after it was written",
		stopped.Round(time.Millisecond), errAfter.Round(time.Millisecond), restarted.Round(time.Millisecond), seen.Round(time.Millisecond))
	for _, u := range r.Since(mark) {
		if u.Err == nil && len(u.Targets) < 1 {
			t.Errorf("an empty set during the outage: %s", render(u))
		}
	}
	after := pool.Stats()
	t.Logf("lists %d -> %d, watches %d -> %d", before.Lists, after.Lists, before.Watches, after.Watches)
	if after.Watches <= before.Watches {
		t.Errorf("no new watch after the restart (%d -> %d)", before.Watches, after.Watches)
	}
}

// Denials name the verb and the resource, and how to grant them.
func TestSourceRBACDenied(t *testing.T) {
	c := kubetest.Start(t, "nobody", "lister")
	c.Grant("lister", "default", "discovery.k8s.io", "endpointslices", "get", "list")
	pool := NewPool()
	for _, tc := range []struct{ user, verb string }{{"nobody", "list"}, {"lister", "watch"}} {
		r := watchSource(t, pool, SourceConfig{Kubeconfig: c.Kubeconfig(tc.user, ""), Service: "web", Port: "http"})
		u, _ := r.Until(tc.user+" denied", func(u discovery.Update) bool { return u.Err != nil })
		if tc.verb == "list" {
			// Nothing was ever read: no set (not even an empty one) may
			// come before the first list.
			for _, u := range r.Since(0) {
				if u.Err == nil {
					t.Errorf("%s: a set before any list succeeded: %s", tc.user, render(u))
				}
			}
		}
		msg := u.Err.Error()
		t.Logf("%s: %s", tc.user, msg)
		if !errors.Is(u.Err, ErrForbidden) || !strings.Contains(msg, fmt.Sprintf("grant %q on endpointslices", tc.verb)) ||
			!strings.Contains(msg, `namespace "default"`) {
			t.Errorf("%s: %v, want ErrForbidden naming %q on endpointslices in namespace default", tc.user, u.Err, tc.verb)
		}
		r.Stop()
	}
}

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  SourceConfig
		want string
	}{
		{SourceConfig{Service: "web", Port: "http"}, ""},
		{SourceConfig{Service: "web", Port: "8080", Namespace: "prod", LabelSelector: "a=b,c!=d"}, ""},
		{SourceConfig{Port: "http"}, "service is required"},
		{SourceConfig{Service: "Web", Port: "http"}, `service "Web"`},
		{SourceConfig{Service: "web"}, "port is required"},
		{SourceConfig{Service: "web", Port: "70000"}, "port 70000"},
		{SourceConfig{Service: "web", Port: "no_underscores"}, `port "no_underscores"`},
		{SourceConfig{Service: "web", Port: "http", Namespace: "a.b"}, `namespace "a.b"`},
		{SourceConfig{Service: "web", Port: "http", LabelSelector: "a=(b"}, "label_selector"},
	} {
		err := CheckConfig(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
