package deployments

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/outrigger-gw/outrigger/discovery"
	kube "github.com/outrigger-gw/outrigger/discovery/kubernetes"
	"github.com/outrigger-gw/outrigger/internal/kubetest"
	"github.com/outrigger-gw/outrigger/internal/sourcetest"
)

// rbacObject holds the fields rbac.yaml's objects use (decoded strictly).
type rbacObject struct {
	APIVersion                   string     `yaml:"apiVersion"`
	Kind                         string     `yaml:"kind"`
	Metadata                     objectMeta `yaml:"metadata"`
	AutomountServiceAccountToken *bool      `yaml:"automountServiceAccountToken"`
	Rules                        []struct {
		APIGroups     []string `yaml:"apiGroups"`
		Resources     []string `yaml:"resources"`
		Verbs         []string `yaml:"verbs"`
		ResourceNames []string `yaml:"resourceNames"`
	} `yaml:"rules"`
	RoleRef struct {
		APIGroup string `yaml:"apiGroup"`
		Kind     string `yaml:"kind"`
		Name     string `yaml:"name"`
	} `yaml:"roleRef"`
	Subjects []struct {
		Kind string `yaml:"kind"`
		Name string `yaml:"name"`
	} `yaml:"subjects"`
}

// TestDeploymentReadsEndpointSlicesOnly: the sidecar's service account may
// get, list and watch endpointslices in its namespace and nothing else, and
// only the outrigger container gets its token.
func TestDeploymentReadsEndpointSlicesOnly(t *testing.T) {
	objs := decodeStrict[rbacObject](t, filepath.Join("k8s", "rbac.yaml"))
	byKind := map[string][]rbacObject{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	if len(objs) != 3 || len(byKind["ServiceAccount"]) != 1 || len(byKind["Role"]) != 1 || len(byKind["RoleBinding"]) != 1 {
		t.Fatalf("rbac.yaml: want one ServiceAccount, one Role, one RoleBinding (nothing cluster-wide), got %d objects %v", len(objs), slices.Collect(func(yield func(string) bool) {
			for k := range byKind {
				if !yield(k) {
					return
				}
			}
		}))
	}
	sa, role, rb := byKind["ServiceAccount"][0], byKind["Role"][0], byKind["RoleBinding"][0]
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the service account automounts its token")
	}
	if len(role.Rules) != 1 {
		t.Fatalf("role %s has %d rules, want 1", role.Metadata.Name, len(role.Rules))
	}
	r := role.Rules[0]
	if !slices.Equal(r.APIGroups, []string{"discovery.k8s.io"}) || !slices.Equal(r.Resources, []string{"endpointslices"}) ||
		!slices.Equal(r.Verbs, []string{"get", "list", "watch"}) || len(r.ResourceNames) > 0 {
		t.Errorf("role rule %+v, want get, list, watch on discovery.k8s.io endpointslices", r)
	}
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Metadata.Name || rb.RoleRef.APIGroup != "rbac.authorization.k8s.io" ||
		len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != sa.Metadata.Name {
		t.Errorf("rolebinding %+v does not bind role %s to service account %s alone", rb, role.Metadata.Name, sa.Metadata.Name)
	}

	m := loadManifests(t)
	pod := m.dep.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Metadata.Name {
		t.Errorf("serviceAccountName %q, want %s", pod.ServiceAccountName, sa.Metadata.Name)
	}
	tokenVolume := ""
	for _, v := range pod.Volumes {
		if v.Projected == nil {
			continue
		}
		var token, ca, ns bool
		for _, s := range v.Projected.Sources {
			token = token || (s.ServiceAccountToken != nil && s.ServiceAccountToken.Path == "token")
			ca = ca || (s.ConfigMap != nil && s.ConfigMap.Name == "kube-root-ca.crt" && len(s.ConfigMap.Items) == 1 && s.ConfigMap.Items[0].Path == "ca.crt")
			ns = ns || (s.DownwardAPI != nil && len(s.DownwardAPI.Items) == 1 && s.DownwardAPI.Items[0].Path == "namespace" &&
				s.DownwardAPI.Items[0].FieldRef.FieldPath == "metadata.namespace")
		}
		if token && ca && ns {
			tokenVolume = v.Name
		}
	}
	if tokenVolume == "" {
		t.Fatal("no projected volume with the token, ca.crt and namespace")
	}
	mountedAt := func(c *k8sContainer) string {
		for _, vm := range c.VolumeMounts {
			if vm.Name == tokenVolume && vm.ReadOnly {
				return vm.MountPath
			}
		}
		return ""
	}
	if p := mountedAt(m.sidecar); p != kube.DefaultServiceAccountDir {
		t.Errorf("outrigger mounts %s at %q, want %s (where in-cluster credentials are read)", tokenVolume, p, kube.DefaultServiceAccountDir)
	}
	if p := mountedAt(m.app); p != "" {
		t.Errorf("the app mounts the sidecar's token at %s", p)
	}

	data, env := m.sidecarConfig(t)
	f := validConfig(t, "configmap.yaml outrigger.yaml", data, env)
	found := false
	for _, u := range f.Upstreams {
		if d := u.Discovery; d != nil && d.Kubernetes != nil {
			found = true
			if d.Kubernetes.Kubeconfig != "" || d.Kubernetes.Namespace != "" {
				t.Errorf("upstream %s: kubeconfig %q, namespace %q: in a pod, the service account and the pod's namespace", u.Name, d.Kubernetes.Kubeconfig, d.Kubernetes.Namespace)
			}
		}
	}
	if !found {
		t.Error("the ConfigMap's config has no kubernetes discovery")
	}
}

// applyRBAC creates rbac.yaml's objects in namespace ns, decoded strictly
// with the Kubernetes types, and returns the service account.
func applyRBAC(t *testing.T, c *kubetest.Cluster, ns string) (sa *corev1.ServiceAccount) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, doc := range strings.Split(string(readFile(t, filepath.Join("k8s", "rbac.yaml"))), "\n---\n") {
		var head struct{ Kind string }
		if err := sigsyaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatal(err)
		}
		var err error
		switch head.Kind {
		case "ServiceAccount":
			sa = &corev1.ServiceAccount{}
			if err = sigsyaml.UnmarshalStrict([]byte(doc), sa); err == nil {
				_, err = c.Core.ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
			}
		case "Role":
			var r rbacv1.Role
			if err = sigsyaml.UnmarshalStrict([]byte(doc), &r); err == nil {
				_, err = c.RBAC.Roles(ns).Create(ctx, &r, metav1.CreateOptions{})
			}
		case "RoleBinding":
			var rb rbacv1.RoleBinding
			if err = sigsyaml.UnmarshalStrict([]byte(doc), &rb); err == nil {
				_, err = c.RBAC.RoleBindings(ns).Create(ctx, &rb, metav1.CreateOptions{})
			}
		default:
			t.Fatalf("rbac.yaml: unexpected kind %q", head.Kind)
		}
		if err != nil {
			t.Fatalf("rbac.yaml %s: %v", head.Kind, err)
		}
	}
	if sa == nil {
		t.Fatal("rbac.yaml has no ServiceAccount")
	}
	return sa
}

// TestRBACManifestOnAPIServer applies rbac.yaml to a real kube-apiserver,
// and checks, as the service account (a token from the TokenRequest API,
// as the kubelet gets it), what it may do: get, list and watch
// endpointslices in its namespace, nothing else; and that this is enough
// for Outrigger's Kubernetes discovery with in-cluster credentials.
func TestRBACManifestOnAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sa := applyRBAC(t, c, "default")
	tr, err := c.Core.ServiceAccounts("default").CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3607))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{Host: c.URL, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile}}
	authz := authorizationv1client.NewForConfigOrDie(cfg)
	can := func(ns, group, resource, verb string) bool {
		r, err := authz.SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Group: group, Resource: resource, Verb: verb}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}
	for _, verb := range []string{"get", "list", "watch"} {
		if !can("default", "discovery.k8s.io", "endpointslices", verb) {
			t.Errorf("the service account may not %s endpointslices", verb)
		}
	}
	for _, d := range []struct{ ns, group, resource, verb string }{
		{"default", "discovery.k8s.io", "endpointslices", "create"},
		{"default", "discovery.k8s.io", "endpointslices", "delete"},
		{"kube-system", "discovery.k8s.io", "endpointslices", "list"},
		{"default", "", "endpoints", "list"},
		{"default", "", "pods", "list"},
		{"default", "", "secrets", "get"},
		{"default", "", "services", "list"},
	} {
		if can(d.ns, d.group, d.resource, d.verb) {
			t.Errorf("the service account may %s %s.%s in %s", d.verb, d.resource, d.group, d.ns)
		}
	}

	// Discovery with what the kubelet mounts (token, ca.crt, namespace) and
	// the environment it sets.
	dir := t.TempDir()
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"token": []byte(tr.Status.Token), "ca.crt": ca, "namespace": []byte("default")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port := int32(8080)
	if _, err := c.Discovery.EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "api-1", Labels: map[string]string{discoveryv1.LabelServiceName: "api"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		// A documentation address: it is only read back.
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.10"}}},
		Ports:     []discoveryv1.EndpointPort{{Name: ptr("http"), Port: &port}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": strconv.Itoa(c.Port())}
	pool := kube.NewPool(kube.WithServiceAccountDir(dir), kube.WithLookupEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	src, err := kube.NewSource(pool, kube.SourceConfig{Service: "api", Port: "http"})
	if err != nil {
		t.Fatal(err)
	}
	rec := sourcetest.Watch(t, src, 64, 30*time.Second)
	rec.Until("the api endpoint, read as the service account", func(u discovery.Update) bool {
		return u.Err == nil && len(u.Targets) == 1 && u.Targets[0].Addr == "192.0.2.10:8080"
	})
}

func ptr[T any](v T) *T { return &v }
