package config

import (
	"strings"
	"testing"
)

func TestKubernetesDiscovery(t *testing.T) {
	f := mustParse(t, `upstreams:
  - name: byname
    discovery:
      kubernetes: {service: web, port: http}
  - name: bynumber
    discovery:
      kubernetes:
        namespace: prod
        service: web
        port: 8080
        label_selector: track=stable
        kubeconfig: ${KUBECONFIG}
`, map[string]string{"KUBECONFIG": "/home/me/.kube/config"})
	k := f.Upstreams[0].Discovery.Kubernetes
	if k == nil || k.Service != "web" || k.Port != "http" || k.Namespace != "" || k.Kubeconfig != "" {
		t.Errorf("byname: %+v", k)
	}
	k = f.Upstreams[1].Discovery.Kubernetes
	if k == nil || k.Namespace != "prod" || k.Port != "8080" || k.LabelSelector != "track=stable" || k.Kubeconfig != "/home/me/.kube/config" {
		t.Errorf("bynumber: %+v", k)
	}
	if d := f.Upstreams[1].Discovery; d.EmptyGrace != DefaultEmptyGrace || d.InitialFetchTimeout != DefaultInitialFetchTimeout {
		t.Errorf("defaults: empty_grace %s, initial_fetch_timeout %s", d.EmptyGrace, d.InitialFetchTimeout)
	}
}

func TestKubernetesDiscoveryErrors(t *testing.T) {
	for _, tc := range []struct{ block, want string }{
		{`{port: http}`, "t.yaml:4:19: kubernetes: service is required"},
		{`{service: web}`, "t.yaml:4:19: kubernetes: port is required"},
		{`{service: Web_1, port: http}`, `t.yaml:4:29: service: "Web_1"`},
		{`{service: web, namespace: a.b, port: http}`, `t.yaml:4:45: namespace: "a.b"`},
		{`{service: web, port: 0}`, "t.yaml:4:40: port: 0 is not a port (1..65535)"},
		{`{service: web, port: web_http}`, `t.yaml:4:40: port: "web_http" is neither a port number nor a port name`},
		{`{service: web, port: http, label_selector: "a=(b"}`, `label_selector: "a=(b" is not a label selector`},
		{`{service: web, port: http, kubeconfig: ""}`, "kubeconfig:"},
		{`{service: web, port: http, labels: {a: b}}`, "labels"},
	} {
		src := "upstreams:\n  - name: u\n    discovery:\n      kubernetes: " + tc.block + "\n"
		_, err := Parse("t.yaml", []byte(src), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.block, err, tc.want)
		}
	}
}
