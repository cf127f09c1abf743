package kubetest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
)

func slice(name, ip string) *discoveryv1.EndpointSlice {
	port := int32(OriginPort)
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}}},
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
	}
}

// The cluster serves the API, keeps its data across an API server restart,
// and refuses loopback endpoints (why origins live in network namespaces).
func TestClusterAndOrigin(t *testing.T) {
	c := Start(t, "nobody")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := StartOrigin(t, DemoService(t), "o1")
	if _, err := c.Discovery.EndpointSlices("default").Create(ctx, slice("web-lo", "127.0.0.1"), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("a loopback endpoint: err %v, want Invalid", err)
	}
	if _, err := c.Discovery.EndpointSlices("default").Create(ctx, slice("web-a", o.IP), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + o.Addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Instance") != "o1" {
		t.Fatalf("origin answered %s %q", resp.Header.Get("X-Instance"), body)
	}

	nobody := discoveryv1client.NewForConfigOrDie(c.RESTConfig("nobody"))
	if _, err := nobody.EndpointSlices("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("an unprivileged user lists: err %v, want Forbidden", err)
	}
	c.Grant("nobody", "default", "discovery.k8s.io", "endpointslices", "list")
	if _, err := nobody.EndpointSlices("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("after Grant: %v", err)
	}

	c.StopAPIServer()
	if _, err := c.Discovery.EndpointSlices("default").Get(ctx, "web-a", metav1.GetOptions{}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("API server stopped: err %v, want connection refused", err)
	}
	c.StartAPIServer()
	if _, err := c.Discovery.EndpointSlices("default").Get(ctx, "web-a", metav1.GetOptions{}); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
}
