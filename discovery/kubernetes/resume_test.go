package kubernetes

import (
	"context"
	"strconv"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/outrigger-gw/outrigger/internal/kubetest"
	"github.com/outrigger-gw/outrigger/internal/sourcetest"
)

// testResume: the API server ends each watch after a second (a watch
// timeout, as it does every few minutes by default): the informer watches
// again from its last resourceVersion, without listing, and a change
// written meanwhile arrives.
func testResume(t *testing.T, c *kubetest.Cluster) {
	a := api{t, c, "resume"}
	a.namespace()
	a.put(mkSlice("web-a", "web", map[string]int32{"http": 80}, ep{ip: "192.0.2.1"}))
	pool := NewPool(WithWatchTimeout(time.Second))
	r := watchSource(t, pool, SourceConfig{Kubeconfig: c.Kubeconfig("admin", "resume"), Service: "web", Port: "http"})
	r.Until("the first set", is("[192.0.2.1:80/w100/ready]"))
	sourcetest.Poll(t, wait, "two watches ended and resumed", func() bool { return pool.Stats().Watches >= 3 })
	a.put(mkSlice("web-a", "web", map[string]int32{"http": 80}, ep{ip: "192.0.2.1"}, ep{ip: "192.0.2.2"}))
	sourcetest.Poll(t, wait, "two more watches", func() bool { return pool.Stats().Watches >= 5 })
	a.put(mkSlice("web-a", "web", map[string]int32{"http": 80}, ep{ip: "192.0.2.2"}))
	r.Until("both changes", is("[192.0.2.2:80/w100/ready]"))
	if st := pool.Stats(); st.Lists != 1 {
		t.Errorf("%d lists over %d watches: a resumable watch listed again", st.Lists, st.Watches)
	}
}

// The API server runs without a watch cache for endpointslices and
// compacts etcd every second, and other writes move etcd's revision on:
// when a watch ends, the informer's resourceVersion is compacted, the next
// watch gets 410 Gone, and the informer lists again. Changes still arrive.
func TestSourceRelistsOnGone(t *testing.T) {
	c := kubetest.StartOpts(t, kubetest.Options{APIServerFlags: []string{
		"--watch-cache-sizes=endpointslices.discovery.k8s.io#0", "--etcd-compaction-interval=1s"}})
	a := api{t, c, "default"}
	a.put(mkSlice("web-a", "web", map[string]int32{"http": 80}, ep{ip: "192.0.2.1"}))
	pool := NewPool(WithWatchTimeout(2 * time.Second))
	r := watchSource(t, pool, SourceConfig{Kubeconfig: c.Kubeconfig("admin", ""), Service: "web", Port: "http"})
	r.Until("the first set", is("[192.0.2.1:80/w100/ready]"))
	list, err := c.Discovery.EndpointSlices("default").List(a.ctx(), metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sourcetest.Poll(t, wait, "a relist", func() bool {
		n++
		a.put(mkSlice("other", "other", map[string]int32{"http": 80}, ep{ip: "192.0.2.9", node: "n" + strconv.Itoa(n)}))
		return pool.Stats().Lists >= 2
	})
	if !gone(t, c, list.ResourceVersion) {
		t.Errorf("a watch from the first list's resourceVersion %s is not gone: the relist had another cause", list.ResourceVersion)
	}
	a.put(mkSlice("web-a", "web", map[string]int32{"http": 80}, ep{ip: "192.0.2.1"}, ep{ip: "192.0.2.2"}))
	r.Until("the change after the relist", is("[192.0.2.1:80/w100/ready 192.0.2.2:80/w100/ready]"))
	t.Logf("%+v after %d other writes", pool.Stats(), n)
}

// gone reports whether a watch from resourceVersion rv now fails with 410.
func gone(t *testing.T, c *kubetest.Cluster, rv string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := c.Discovery.EndpointSlices("default").Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	if err != nil {
		return apierrors.IsGone(err) || apierrors.IsResourceExpired(err)
	}
	defer w.Stop()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok || ev.Type != watch.Error {
			return false
		}
		err := apierrors.FromObject(ev.Object)
		return apierrors.IsGone(err) || apierrors.IsResourceExpired(err)
	case <-ctx.Done():
		return false
	}
}
